"""Runs the whole platform as local processes: ``python -m devtools.devstack run | up | down | status``.

``up`` migrates, starts ingest, api, the three workers and Flower (each in its own process group, logs
under the run directory), and returns once every one is healthy. ``down`` stops them by the PIDs it
recorded. ``run`` is ``up``, the sample data through the ingest API, a KPI summary, then waits for
Ctrl-C and stops everything. The test suite starts the same stack on free ports.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx

from devtools.demo import print_urls, run_demo
from devtools.settings import DevstackSettings
from shared.settings import PROJECT_ROOT

HEALTH_TIMEOUT_SECONDS = 120.0
STOP_TIMEOUT_SECONDS = 20.0


@dataclass(frozen=True)
class ProcessSpec:
    name: str
    argv: list[str]
    health_url: str | None = None
    celery_app: str | None = None
    celery_node: str | None = None


def _bin(name: str) -> str:
    return str(Path(sys.executable).parent / name)


def process_specs(settings: DevstackSettings, flower_auth: str) -> list[ProcessSpec]:
    host = "127.0.0.1"
    specs = [
        ProcessSpec(
            "ingest",
            [
                _bin("uvicorn"),
                "services.ingest.app:create_app",
                "--factory",
                "--host",
                host,
                "--port",
                str(settings.ingest_port),
                "--no-access-log",
            ],
            health_url=f"http://{host}:{settings.ingest_port}/healthz",
        ),
        ProcessSpec(
            "api",
            [
                _bin("uvicorn"),
                "services.api.app:create_app",
                "--factory",
                "--host",
                host,
                "--port",
                str(settings.api_port),
                "--no-access-log",
                # An open /v1/events stream never ends by itself: shutting down closes it after this long.
                "--timeout-graceful-shutdown",
                "5",
            ],
            health_url=f"http://{host}:{settings.api_port}/readyz",
        ),
    ]
    worker_args = {
        "transform": ["--pool", "solo"],
        "quality": ["--concurrency", "1"],
        "warehouse": ["--concurrency", "1"],
    }
    # Each worker serves its metrics on its service's port (SDP_<SERVICE>_METRICS_PORT; demo.print_urls).
    for service, extra in worker_args.items():
        app = f"services.{service}.worker:app"
        name = f"{settings.queue(service)}@{host}"
        specs.append(
            ProcessSpec(
                f"{service}-worker",
                [
                    _bin("celery"),
                    "-A",
                    app,
                    "worker",
                    "-Q",
                    settings.queue(service),
                    "-n",
                    name,
                    "--loglevel",
                    settings.log_level,
                    *extra,
                ],
                celery_app=app,
                celery_node=name,
            )
        )
    specs.append(ProcessSpec("reconciler", [sys.executable, "-m", "ops.reconciler"]))
    specs.append(
        ProcessSpec(
            "flower",
            [
                _bin("celery"),
                "-A",
                "shared.celery_app:app",
                "flower",
                f"--port={settings.flower_port}",
                f"--address={host}",
                f"--basic-auth={flower_auth}",
            ],
            health_url=f"http://{host}:{settings.flower_port}/healthcheck",
        )
    )
    return specs


class Stack:
    def __init__(self, settings: DevstackSettings, env: dict[str, str] | None = None) -> None:
        self.settings = settings
        self.run_dir = settings.run_dir
        self.env = {**os.environ, **(env or {}), "PYTHONUNBUFFERED": "1"}
        self.pid_file = self.run_dir / "pids.json"

    def _healthy(self, spec: ProcessSpec) -> bool:
        if spec.health_url is None and spec.celery_app is None:
            return True
        if spec.health_url is not None:
            try:
                return httpx.get(spec.health_url, timeout=2.0).status_code == 200
            except httpx.HTTPError:
                return False
        assert spec.celery_app is not None and spec.celery_node is not None
        try:
            result = subprocess.run(
                [_bin("celery"), "-A", spec.celery_app, "inspect", "ping", "-d", spec.celery_node, "--timeout", "2"],
                env=self.env,
                cwd=PROJECT_ROOT,
                capture_output=True,
                text=True,
                check=False,
                timeout=30,
            )
        except subprocess.TimeoutExpired:
            return False
        return result.returncode == 0 and "pong" in result.stdout

    def up(self) -> dict[str, int]:
        if self.pid_file.exists():
            raise SystemExit(f"a stack is already recorded in {self.pid_file}; run `make down` first")
        self.run_dir.mkdir(parents=True, exist_ok=True)
        (self.run_dir / "logs").mkdir(exist_ok=True)
        subprocess.run([sys.executable, "-m", "ops.admin", "migrate"], env=self.env, cwd=PROJECT_ROOT, check=True)
        auth = self.settings.flower_basic_auth or f"admin:{secrets.token_urlsafe(12)}"
        (self.run_dir / "flower-auth").write_text(auth)
        os.chmod(self.run_dir / "flower-auth", 0o600)
        specs = process_specs(self.settings, auth)
        pids: dict[str, int] = {}
        try:
            for spec in specs:
                pids[spec.name] = self._spawn(spec)
            self.pid_file.write_text(json.dumps(pids, indent=2))
            self._wait_healthy(specs, pids)
        except BaseException:
            self.down()
            raise
        return pids

    def _spawn(self, spec: ProcessSpec, extra_env: dict[str, str] | None = None) -> int:
        """Start one process as the leader of its own process group, its output appended to its log."""
        env = self.env
        if spec.name in self.settings.service_database_urls:
            env = {**env, "SDP_DATABASE_URL": self.settings.service_database_urls[spec.name]}
        with (self.run_dir / "logs" / f"{spec.name}.log").open("ab") as log:
            proc = subprocess.Popen(
                spec.argv,
                env={**env, **(extra_env or {})},
                cwd=PROJECT_ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return proc.pid

    def _spec(self, name: str) -> ProcessSpec:
        auth = (self.run_dir / "flower-auth").read_text()
        specs = {spec.name: spec for spec in process_specs(self.settings, auth)}
        if name not in specs:
            raise KeyError(f"no process {name!r}; one of {sorted(specs)}")
        return specs[name]

    def stop(self, name: str) -> None:
        """Stop one process of a running stack (its whole process group), as ``down`` stops them all."""
        pids: dict[str, int] = json.loads(self.pid_file.read_text())
        _stop_groups([pids[name]])

    def start(self, name: str, extra_env: dict[str, str] | None = None, *, wait: bool = True) -> int:
        """(Re)start one process of a running stack, with ``extra_env`` over the stack's environment.

        The new PID replaces the old one in the PID file, so ``down`` stops it. The process is expected
        stopped (``stop``, or killed by a test); ``wait`` returns once it is healthy.
        """
        spec = self._spec(name)
        pids: dict[str, int] = json.loads(self.pid_file.read_text())
        if _group_alive(pids[name]):
            raise RuntimeError(f"{name} (process group {pids[name]}) is still running")
        pids[name] = self._spawn(spec, extra_env)
        self.pid_file.write_text(json.dumps(pids, indent=2))
        if wait:
            self._wait_healthy([spec], pids)
        return pids[name]

    def restart_dead(self) -> list[str]:
        """Start again each process whose leader exited, as a container's restart policy would, after killing
        what is left of its group (a worker's Spark JVM); returns their names."""
        pids: dict[str, int] = json.loads(self.pid_file.read_text())
        dead = [name for name, pid in pids.items() if not _alive(pid)]
        for name in dead:
            _signal_group(pids[name], signal.SIGKILL)
            _stop_groups([pids[name]])
            self.start(name, wait=False)
        return dead

    def wait_healthy(self, names: list[str]) -> None:
        """Return once each named process of the running stack answers its health check."""
        pids: dict[str, int] = json.loads(self.pid_file.read_text())
        self._wait_healthy([self._spec(name) for name in names], pids)

    def _wait_healthy(self, specs: list[ProcessSpec], pids: dict[str, int]) -> None:
        deadline = time.monotonic() + HEALTH_TIMEOUT_SECONDS
        pending = list(specs)
        while pending:
            for spec in list(pending):
                if not _alive(pids[spec.name]):
                    log = self.run_dir / "logs" / f"{spec.name}.log"
                    raise RuntimeError(f"{spec.name} exited during start-up; see {log}")
                if self._healthy(spec):
                    pending.remove(spec)
            if pending and time.monotonic() > deadline:
                raise RuntimeError(f"not healthy after {HEALTH_TIMEOUT_SECONDS:.0f}s: {[s.name for s in pending]}")
            if pending:
                time.sleep(0.5)

    def down(self) -> None:
        if not self.pid_file.exists():
            return
        pids: dict[str, int] = json.loads(self.pid_file.read_text())
        _stop_groups(list(pids.values()))
        self.pid_file.unlink(missing_ok=True)

    def status(self) -> dict[str, bool]:
        if not self.pid_file.exists():
            return {}
        pids: dict[str, int] = json.loads(self.pid_file.read_text())
        return {name: _alive(pid) for name, pid in pids.items()}


def _stop_groups(pids: list[int]) -> None:
    """SIGTERM each process group, SIGKILL the groups still there after the grace period, and return once
    every process of them is gone (a worker's Spark JVM outlives the worker by a moment)."""
    for pid in pids:
        _signal_group(pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT_SECONDS
    while any(_group_alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    for pid in pids:
        if _group_alive(pid):
            _signal_group(pid, signal.SIGKILL)
    deadline = time.monotonic() + STOP_TIMEOUT_SECONDS
    while any(_group_alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.05)


def _alive(pid: int) -> bool:
    try:
        waited, _ = os.waitpid(pid, os.WNOHANG)
        if waited == pid:
            return False
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _group_alive(pgid: int) -> bool:
    """Whether any process of the group is left; reaps the leader first if it is our child and exited."""
    _alive(pgid)
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _signal_group(pid: int, sig: signal.Signals) -> None:
    """Signal the process group the PID leads (each service was started as its own session)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, sig)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devtools.devstack")
    parser.add_argument("command", choices=["run", "up", "down", "status"])
    args = parser.parse_args(argv)
    settings = DevstackSettings()
    stack = Stack(settings)
    if args.command == "down":
        stack.down()
        print("stopped")
        return 0
    if args.command == "status":
        for name, alive in stack.status().items():
            print(f"{name:18} {'running' if alive else 'stopped'}")
        return 0
    stack.up()
    print_urls(settings)
    if args.command == "up":
        return 0

    def interrupt(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt(signal.Signals(signum).name)

    # Installed explicitly: a shell starting us in the background may have set SIGINT to be ignored.
    signal.signal(signal.SIGINT, interrupt)
    signal.signal(signal.SIGTERM, interrupt)
    try:
        run_demo(settings)
        print("\nThe platform is running. Press Ctrl-C to stop it.")
        signal.pause()
    except KeyboardInterrupt:
        pass
    finally:
        print("\nstopping…")
        stack.down()
    return 0


if __name__ == "__main__":
    sys.exit(main())
