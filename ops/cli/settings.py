"""The CLI's settings: flags, then ``SALESDP_*`` environment variables, then the config file.

A client's settings, not a service's: they name where the platform is and the key to use, so they do not sit on
the services' ``SDP_`` base. The file is TOML (``url``, ``ingest_url``, ``api_key``, ``retries``) at
``~/.config/salesdp/config.toml`` or where ``SALESDP_CONFIG`` points.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from pydantic import SecretStr, ValidationError
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

DEFAULT_CONFIG = Path("~/.config/salesdp/config.toml")


class SettingsError(Exception):
    """A config file that cannot be read or settings of the wrong type."""


class ConfigLocation(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SALESDP_", extra="ignore")

    config: Path = DEFAULT_CONFIG

    @property
    def path(self) -> Path:
        return self.config.expanduser()


class CliSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SALESDP_", extra="ignore")

    url: str = "http://127.0.0.1:8000"
    ingest_url: str = "http://127.0.0.1:8001"
    api_key: SecretStr | None = None
    # Answers of 503 (a dependency of the service is down) are retried this many times, after Retry-After.
    retries: int = 5
    # Seconds to wait for a connection and for each read of an answer.
    timeout: float = 60.0

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return init_settings, env_settings, TomlConfigSettingsSource(settings_cls, ConfigLocation().path)


def load_settings(**flags: Any) -> CliSettings:
    """The settings with the flags given (those not None) taking precedence."""
    given = {name: value for name, value in flags.items() if value is not None}
    path = ConfigLocation().path
    try:
        return CliSettings(**given)
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"cannot read the config file {path}: {exc}") from exc
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise SettingsError(f"invalid settings (environment or {path}): {problems}") from exc
