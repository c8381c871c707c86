"""``python -m ops.metabase provision``: see ops/metabase/provision.py."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import httpx

from ops.metabase.provision import MetabaseError, MetabaseSettings, provision


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ops.metabase")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser(
        "provision",
        help="create (or find) the analytics data source, a collection, the cards and the Sales overview dashboard",
    )
    parser.parse_args(argv)
    settings = MetabaseSettings()
    try:
        result = provision(settings)
    except (MetabaseError, httpx.HTTPError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for line in result.actions:
        print(line, file=sys.stderr if line.startswith("warning") else sys.stdout)
    print(f"dashboard: {settings.metabase_url.rstrip('/')}/dashboard/{result.dashboard_id}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
