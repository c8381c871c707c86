"""Operator programs: database migrations and API keys, backups, and the long-running reconciler."""
