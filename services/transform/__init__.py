"""The transform service."""
