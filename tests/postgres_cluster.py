"""A PostgreSQL server of a test's own (a Debian cluster on a free port), for tests that stop and restart
it: the machine's server is never touched."""

from __future__ import annotations

import shutil
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import free_port

POSTGRES_VERSIONS = Path("/usr/lib/postgresql")


@dataclass(frozen=True)
class OwnPostgres:
    version: str
    name: str
    port: int

    @property
    def url(self) -> str:
        """The server's URL without a database name."""
        return f"postgresql://postgres@127.0.0.1:{self.port}"

    def start(self) -> None:
        subprocess.run(["pg_ctlcluster", self.version, self.name, "start"], check=True, capture_output=True)

    def crash(self) -> None:
        """Stop at once, as a crash would: no checkpoint, every connection cut."""
        subprocess.run(
            ["pg_ctlcluster", self.version, self.name, "stop", "-m", "immediate"], check=True, capture_output=True
        )


@contextmanager
def own_postgres() -> Iterator[OwnPostgres]:
    """A started cluster trusting loopback connections, dropped afterwards; skips where Debian's cluster
    tools are missing."""
    if shutil.which("pg_createcluster") is None or not POSTGRES_VERSIONS.is_dir():
        pytest.skip("Debian's pg_createcluster is not installed")
    version = max((p.name for p in POSTGRES_VERSIONS.iterdir() if p.name.isdigit()), key=int)
    server = OwnPostgres(version, f"sdp-test-{uuid.uuid4().hex[:8]}", free_port())
    subprocess.run(
        ["pg_createcluster", version, server.name, "--port", str(server.port), "--", "--auth=trust"],
        check=True,
        capture_output=True,
    )
    try:
        server.start()
        yield server
    finally:
        subprocess.run(["pg_dropcluster", version, server.name, "--stop"], check=False, capture_output=True)
