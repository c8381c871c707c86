"""The quality config in effect, as the API reports it: its checks per dataset and its version."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from shared.http import ApiError
from shared.quality_config import CHECK_TYPES, load_quality_config


def configured_checks(path: Path) -> dict[str, Any]:
    try:
        loaded = load_quality_config(path)
    except (OSError, ValueError) as exc:
        raise ApiError(503, "quality_config_invalid", f"the quality config cannot be read: {exc}") from exc
    document = loaded.config.model_dump(mode="json", by_alias=True)
    return {
        "version": loaded.version,
        "declared_version": loaded.config.version,
        "check_types": list(CHECK_TYPES),
        "datasets": document["datasets"],
    }


def config_version(path: Path) -> str | None:
    """The version of the config in effect; None when it cannot be read (the status reports, never fails)."""
    try:
        return load_quality_config(path).version
    except (OSError, ValueError):
        return None
