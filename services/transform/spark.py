"""The worker's one SparkSession: started once per process and kept warm between batches."""

from __future__ import annotations

import os
import threading

from pyspark.sql import SparkSession

from services.transform.settings import TransformSettings

PARALLEL_GC = "-XX:+UseParallelGC"

_lock = threading.Lock()
_session: SparkSession | None = None


def get_spark(settings: TransformSettings) -> SparkSession:
    global _session
    with _lock:
        if _session is None:
            # Read by Spark's launcher script before the JVM starts; binding to loopback avoids a
            # hostname lookup and keeps the driver off external interfaces.
            os.environ.setdefault("SPARK_LOCAL_IP", settings.spark_local_ip)
            _session = (
                SparkSession.builder.master(settings.spark_master)
                .appName("salesdp-transform")
                .config("spark.driver.memory", settings.spark_driver_memory)
                .config("spark.executor.memory", settings.spark_executor_memory)
                .config("spark.sql.shuffle.partitions", str(settings.spark_shuffle_partitions))
                .config("spark.sql.session.timeZone", "UTC")
                # Column names are exact (DESIGN §3): `status` and `STATUS` are two columns.
                .config("spark.sql.caseSensitive", "true")
                .config("spark.sql.adaptive.enabled", "true")
                # The JVM does not compile methods above 8,000 bytes of bytecode; a stage whose generated
                # code is larger runs operator by operator, which beats running it interpreted.
                .config("spark.sql.codegen.hugeMethodLimit", "8000")
                # A batch's rows are cached once and read a few times within seconds: compressing the
                # cache costs more than it saves.
                .config("spark.sql.inMemoryColumnarStorage.compressed", "false")
                # Silver Parquet carries instants as Parquet's own UTC timestamps, not the legacy INT96.
                .config("spark.sql.parquet.outputTimestampType", "TIMESTAMP_MICROS")
                # Batches want throughput, not short pauses: the parallel collector has no concurrent marking
                # and cheaper write barriers than the default G1.
                .config("spark.driver.extraJavaOptions", PARALLEL_GC)
                .config("spark.ui.enabled", "false")
                .config("spark.ui.showConsoleProgress", "false")
                .config("spark.driver.bindAddress", settings.spark_local_ip)
                .config("spark.driver.host", settings.spark_local_ip)
                .getOrCreate()
            )
            _session.sparkContext.setLogLevel("WARN")
        return _session
