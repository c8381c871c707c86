"""Running ``salesdp`` as the entry point does, in a process of its own."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from shared.settings import PROJECT_ROOT


def salesdp(
    *args: str, env: dict[str, str] | None = None, config: Path | None = None, timeout: float = 300.0
) -> subprocess.CompletedProcess[str]:
    """``salesdp ARGS`` as ``python -m ops.cli`` (what the ``[project.scripts]`` entry runs), with only the
    given settings: a config file only when one is passed, never the user's."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("SALESDP_")}
    full_env = {
        **base,
        "PYTHONPATH": str(PROJECT_ROOT),
        # Wide enough that no table cell the tests look for is folded.
        "COLUMNS": "250",
        "SALESDP_CONFIG": str(config or PROJECT_ROOT / "tests" / "ops" / "cli" / "no-such-config.toml"),
        **(env or {}),
    }
    return subprocess.run(
        [sys.executable, "-m", "ops.cli", *args],
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
