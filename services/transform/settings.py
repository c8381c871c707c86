"""Settings of the transform service."""

from shared.jsonlimits import MAX_JSON_DEPTH, MAX_JSON_RECORD_BYTES
from shared.settings import PlatformSettings


class TransformSettings(PlatformSettings):
    spark_master: str = "local[2]"
    spark_driver_memory: str = "1g"
    spark_executor_memory: str = "1g"
    spark_shuffle_partitions: int = 2
    spark_local_ip: str = "127.0.0.1"
    # A JSON or NDJSON record nested deeper, or longer, is rejected as malformed_row instead of parsed.
    transform_max_json_depth: int = MAX_JSON_DEPTH
    transform_max_json_record_bytes: int = MAX_JSON_RECORD_BYTES
