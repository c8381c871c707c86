"""Settings of the transform service."""

from shared.settings import PlatformSettings


class TransformSettings(PlatformSettings):
    spark_master: str = "local[2]"
    spark_driver_memory: str = "1g"
    spark_executor_memory: str = "1g"
    spark_shuffle_partitions: int = 2
    spark_local_ip: str = "127.0.0.1"
