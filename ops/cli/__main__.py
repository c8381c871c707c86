"""``python -m ops.cli``: the same program as the ``salesdp`` entry point."""

from ops.cli import main

main()
