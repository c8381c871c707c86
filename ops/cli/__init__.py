"""``salesdp``, the platform's command-line client: uploads, batches, rejects, KPIs and admin actions over the
services' HTTP APIs only (it imports nothing of the services), with rich tables and progress bars."""

from ops.cli.app import main

__all__ = ["main"]
