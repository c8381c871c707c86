"""Failpoints: off unless listed; ``exit`` ends the process, ``hang`` blocks it until it is killed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from shared.failpoints import EXIT_CODE, action
from shared.settings import PlatformSettings

PROGRAM = """
from shared.failpoints import hit
from shared.logs import configure_logging
from shared.settings import PlatformSettings

configure_logging("test")
hit(PlatformSettings(), "transform.before_commit")
print("passed", flush=True)
"""


def run_with(failpoints: list[str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", PROGRAM],
        env={**os.environ, "SDP_FAILPOINTS": json.dumps(failpoints)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_action_of_each_entry() -> None:
    settings = PlatformSettings(failpoints=["ingest.after_commit", "transform.before_commit:hang", "quality.x:exit"])
    assert action(settings, "ingest.after_commit") == "exit"
    assert action(settings, "transform.before_commit") == "hang"
    assert action(settings, "quality.x") == "exit"
    assert action(settings, "warehouse.before_commit") is None
    assert action(settings, "transform") is None
    assert action(PlatformSettings(), "ingest.after_commit") is None


def test_an_unknown_action_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown action 'sleep'"):
        action(PlatformSettings(failpoints=["transform.before_commit:sleep"]), "transform.before_commit")


def test_off_the_process_goes_on() -> None:
    proc = run_with(["warehouse.before_commit:hang"])
    stdout, _ = proc.communicate(timeout=30)
    assert (proc.returncode, stdout) == (0, "passed\n")


def test_exit_ends_the_process_there() -> None:
    proc = run_with(["transform.before_commit"])
    stdout, stderr = proc.communicate(timeout=30)
    assert (proc.returncode, stdout) == (EXIT_CODE, "")
    assert "failpoint.hit" in stderr


def test_hang_blocks_the_process_until_it_is_killed() -> None:
    proc = run_with(["transform.before_commit:hang"])
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()
        assert "failpoint.hang" in line and "failpoint=transform.before_commit" in line
        time.sleep(0.5)
        assert proc.poll() is None, "still held"
    finally:
        proc.kill()
    stdout, _ = proc.communicate(timeout=30)
    assert stdout == "", "never went past the failpoint"
