"""Settings. This is the only module that reads the environment."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from omnibank.errors import ConfigError


class Settings(BaseSettings):
    """Runtime configuration, read from ``OMNIBANK_*`` environment variables."""

    model_config = SettingsConfigDict(env_prefix="OMNIBANK_", extra="ignore")

    home: Path = Field(
        default=Path(".omnibank"), description="Data home: database, event log, keys, reports."
    )
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL of the operational store; default a SQLite file in the home.",
    )
    timezone: str = Field(default="Asia/Shanghai", description="The bank's time zone: days, weeks, months.")
    master_key: SecretStr | None = Field(
        default=None, description="Base64 of a 32-byte master key; default a key file created in the home."
    )
    actor: str | None = Field(default=None, description="Who the CLI acts as, for the audit trail.")
    api_cors_origins: list[str] = Field(
        default_factory=list,
        description="Origins allowed to call the API from a browser (JSON list); none by default.",
    )
    api_rate_per_minute: int = Field(
        default=600, ge=1, description="Requests a minute per token or user (bursts up to the same number)."
    )
    api_login_per_minute: int = Field(
        default=10, ge=1, description="Sign-in attempts a minute per client address and per user name."
    )

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r} (OMNIBANK_TIMEZONE)") from exc
        return value

    @property
    def home_dir(self) -> Path:
        return self.home.expanduser().resolve()

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def db_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.home_dir / 'omnibank.db'}"

    @property
    def event_log_dir(self) -> Path:
        return self.home_dir / "events"

    @property
    def loads_dir(self) -> Path:
        return self.home_dir / "loads"

    @property
    def key_file(self) -> Path:
        return self.home_dir / "keys" / "master.key"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    try:
        return Settings()
    except ValidationError as exc:
        problems = "; ".join(
            f"OMNIBANK_{'_'.join(str(p) for p in e['loc']).upper()}: {e['msg'].removeprefix('Value error, ')}"
            for e in exc.errors()
        )
        raise ConfigError(f"bad configuration: {problems}") from None


def reset_settings() -> None:
    """Forget cached settings (tests and the CLI change the environment)."""
    get_settings.cache_clear()
