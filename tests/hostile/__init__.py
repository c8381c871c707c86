"""Hostile upload corpus for end-to-end tests."""
