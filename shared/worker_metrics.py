"""Prometheus metrics of a Celery worker: tasks by name and state, their durations and failures.

Tasks run in the pool's processes (prefork children for quality and warehouse, the main process for the
transform's solo pool), while one port serves the worker's metrics. So the metrics use
prometheus_client's multiprocess mode: every process writes its values to files of its own in a directory
of this worker, made empty when the worker starts, and the main process's HTTP server merges them at scrape
time. A port that cannot be bound costs the metrics, never the worker.
"""

from __future__ import annotations

import os
import shutil
import threading
import time
from pathlib import Path
from typing import Any

from celery import Celery
from celery.signals import (
    task_failure,
    task_postrun,
    task_prerun,
    worker_init,
    worker_process_shutdown,
    worker_ready,
    worker_shutdown,
)
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, multiprocess, start_http_server, values

from shared.logs import get_logger
from shared.settings import PlatformSettings

log = get_logger(__name__)

# prometheus_client reads the directory from this variable whenever a process opens its files.
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
TASK_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0)
# Celery's states after a task ran, as the label values of sdp_worker_tasks_total.
FINISHED_STATES = {"SUCCESS": "succeeded", "FAILURE": "failed", "RETRY": "retried", "REJECTED": "rejected"}


class TaskMetrics:
    def __init__(self) -> None:
        self.tasks = Counter(
            "sdp_worker_tasks_total",
            "Tasks by name and state (started, then how each ended)",
            ["service", "task", "state"],
        )
        self.seconds = Histogram("sdp_worker_task_seconds", "Task run time", ["service", "task"], buckets=TASK_BUCKETS)
        self.failures = Counter(
            "sdp_worker_task_failures_total", "Tasks that raised, by exception type", ["service", "task", "exception"]
        )
        self.running = Gauge(
            "sdp_worker_tasks_running", "Tasks running now", ["service", "task"], multiprocess_mode="livesum"
        )


class WorkerMetrics:
    """Connects one worker app's signals; created with the app, active only in a process running it."""

    def __init__(self, celery: Celery, service: str, settings: PlatformSettings) -> None:
        self.celery = celery
        self.service = service
        self.settings = settings
        self.directory: Path | None = None
        self.metrics: TaskMetrics | None = None
        self.server: Any = None
        self.started: dict[str, float] = {}
        self.lock = threading.Lock()
        worker_init.connect(self._init, weak=False)
        worker_ready.connect(self._serve, weak=False)
        worker_shutdown.connect(self._shutdown, weak=False)
        worker_process_shutdown.connect(self._process_shutdown, weak=False)
        task_prerun.connect(self._prerun, weak=False)
        task_postrun.connect(self._postrun, weak=False)
        task_failure.connect(self._failure, weak=False)

    def _ours(self, sender: Any) -> bool:
        return self.metrics is not None and getattr(sender, "app", None) is self.celery

    def _init(self, sender: Any = None, **_: Any) -> None:
        """In the worker's main process, before the pool's children fork: they inherit the metrics, and
        each opens files of its own at its first value (prometheus_client notices the new pid)."""
        if getattr(sender, "app", None) is not self.celery:
            return
        directory = self.settings.work_dir / "metrics" / f"{self.service}-{os.getpid()}"
        shutil.rmtree(directory, ignore_errors=True)
        directory.mkdir(parents=True)
        # Not a setting: the library's own switch, set for this process and the children it forks.
        os.environ[MULTIPROC_ENV] = str(directory)
        values.ValueClass = values.MultiProcessValue()
        self.directory = directory
        self.metrics = TaskMetrics()

    def _serve(self, sender: Any = None, **_: Any) -> None:
        port = self.settings.metrics_port(self.service)
        if self.directory is None or port == 0 or getattr(sender, "app", None) is not self.celery:
            return
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=str(self.directory))
        try:
            self.server, _thread = start_http_server(port, self.settings.worker_metrics_address, registry=registry)
        except OSError as exc:
            log.warning("worker.metrics_unavailable", port=port, error=str(exc))
            return
        log.info("worker.metrics_serving", address=self.settings.worker_metrics_address, port=port)

    def _shutdown(self, **_: Any) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server = None
        if self.directory is not None:
            shutil.rmtree(self.directory, ignore_errors=True)

    def _process_shutdown(self, pid: int | None = None, **_: Any) -> None:
        # A child that exits takes its running tasks with it; its counters stay in their files.
        if self.directory is not None:
            multiprocess.mark_process_dead(pid or os.getpid(), path=str(self.directory))

    def _prerun(self, sender: Any = None, task_id: str = "", **_: Any) -> None:
        if not self._ours(sender) or self.metrics is None:
            return
        with self.lock:
            self.started[task_id] = time.perf_counter()
        self.metrics.tasks.labels(self.service, sender.name, "started").inc()
        self.metrics.running.labels(self.service, sender.name).inc()

    def _postrun(self, sender: Any = None, task_id: str = "", state: str | None = None, **_: Any) -> None:
        if not self._ours(sender) or self.metrics is None:
            return
        with self.lock:
            started = self.started.pop(task_id, None)
        if started is not None:
            self.metrics.seconds.labels(self.service, sender.name).observe(time.perf_counter() - started)
        outcome = FINISHED_STATES.get(state or "", (state or "unknown").lower())
        self.metrics.tasks.labels(self.service, sender.name, outcome).inc()
        self.metrics.running.labels(self.service, sender.name).dec()

    def _failure(self, sender: Any = None, exception: BaseException | None = None, **_: Any) -> None:
        if not self._ours(sender) or self.metrics is None:
            return
        self.metrics.failures.labels(self.service, sender.name, type(exception).__name__).inc()
