"""Prometheus metrics of uploads, on the registry that ``shared.http.install_metrics`` serves."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

from services.ingest.service import Accepted


class UploadMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.uploads = Counter("sdp_ingest_uploads_total", "Files accepted", ["dataset", "outcome"], registry=registry)
        self.bytes = Counter("sdp_ingest_bytes_total", "Bytes of new batches", ["dataset"], registry=registry)
        self.rejected = Counter("sdp_ingest_rejections_total", "Uploads refused", ["code"], registry=registry)
        self.seconds = Histogram(
            "sdp_ingest_upload_seconds",
            "Time to accept a file",
            ["dataset"],
            buckets=(0.01, 0.05, 0.1, 0.5, 1, 5, 15, 60, 300, 1800),
            registry=registry,
        )

    def observe(self, accepted: Accepted, seconds: float) -> None:
        """An accepted upload: a new batch counts its bytes, a duplicate only itself."""
        dataset = accepted.dataset.value
        self.uploads.labels(dataset, "created" if accepted.created else "duplicate").inc()
        self.bytes.labels(dataset).inc(accepted.size_bytes if accepted.created else 0)
        self.seconds.labels(dataset).observe(seconds)
