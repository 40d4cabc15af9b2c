"""Settings. This is the only module that reads the environment."""

from __future__ import annotations

import re
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, SecretStr, ValidationError, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from omnibank.errors import ConfigError
from omnibank.kit.delivery import CHANNELS, parse_quiet_hours

_SUPPLIER_ID = re.compile(r"^[A-Za-z0-9_.-]{1,32}$")


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
    key_path: Path | None = Field(
        default=None,
        description="The key ring file; default <home>/keys/master.key. Keep it off the data volume (a "
        "secrets mount, say): whoever holds it and the data files can read and rewrite everything.",
    )
    actor: str | None = Field(default=None, description="Who the CLI acts as, for the audit trail.")
    event_registry: Path | None = Field(
        default=None,
        description="The bank's event-type registry (YAML, see examples/events/registry.yaml): which fields "
        "of its own event types are personal data, kept out of the event log.",
    )
    holidays_file: Path | None = Field(
        default=None,
        description="The bank's holiday file (YAML, see examples/service/holidays-2027.yaml): working "
        "hours, and per year statutory holidays, adjusted working days (调休) and the bank's own closures; "
        "it extends and overrides the chinese-calendar package, whose data ends with 2026.",
    )
    sla_file: Path | None = Field(
        default=None,
        description="The service desk's SLA policy (YAML, see examples/service/sla.yaml); default: "
        "complaints resolved within 15 calendar days, inquiries answered within 4 business hours.",
    )
    routing_file: Path | None = Field(
        default=None,
        description="The service desk's queues, routing rules, shifts, surge alerts and supplier response "
        "targets (YAML, see examples/service/routing.yaml); default: one queue of every service agent.",
    )
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
    api_threads: int = Field(
        default=16,
        ge=1,
        le=256,
        description="Requests one API server process works on at once (the rest queue).",
    )
    api_db_connections: int = Field(
        default=6,
        ge=1,
        le=100,
        description="PostgreSQL connections of one API server process for the coupon fast path (issue, "
        "claim, redeem: one statement each); a few keep the database busy without crowding it.",
    )
    api_tune_gc: bool = Field(
        default=True,
        description="An API server process freezes what it holds at start-up out of Python's garbage "
        "collector and collects less often (about 15% less CPU a request).",
    )
    invite_window_days: int = Field(
        default=30,
        ge=0,
        le=3650,
        description="An invite code binds a customer only if used within this many days after the customer "
        "registered (later: refused as outside_window).",
    )
    api_idempotency_ttl_hours: int = Field(
        default=24, ge=1, description="How long an Idempotency-Key's stored answer is replayed (then pruned)."
    )
    api_auth_cache_seconds: float = Field(
        default=5.0,
        ge=0,
        le=60,
        description="How long an API server reuses a checked token (0: never); a revocation or lock made "
        "by another process takes effect within it.",
    )

    # the web console (omnibank.console)
    console_secure_cookies: bool = Field(
        default=True,
        description="Console cookies only over HTTPS (browsers treat http://localhost as secure too); turn "
        "off only behind a proxy that speaks plain HTTP to clients, which a bank should not run.",
    )
    console_idle_minutes: int = Field(
        default=15,
        ge=1,
        le=480,
        description="A console session left alone this long after its 15-minute access token expired "
        "signs out by itself.",
    )
    console_session_hours: int = Field(
        default=12, ge=1, le=168, description="A console session ends this many hours after sign-in."
    )

    # share links and posters (omnibank.invites.share)
    public_url: str = Field(
        default="http://127.0.0.1:8000",
        description="The public base URL of this server, as customers reach it: share links are "
        "<public_url>/s/<token>, and a benefit's landing page is under it.",
    )
    share_bank_url: str = Field(
        default="https://www.example.com",
        description="The bank's own site: the landing pages of products, campaigns, scenes and home.",
    )
    share_landing: dict[str, str] = Field(
        default_factory=dict,
        description="Target kind → landing page template (JSON), with {id}, {bank_url} and {public_url}; "
        "kinds not named keep their default.",
    )
    share_rate_per_minute: int = Field(
        default=120, ge=1, description="/s/ link requests a minute per client address (bursts up to it)."
    )
    share_flush_seconds: float = Field(
        default=1.0, ge=0, le=60, description="Seconds a server holds share clicks before writing them."
    )
    share_cache_seconds: float = Field(
        default=30.0, ge=0, le=3600, description="Seconds a server reuses a share link's landing."
    )
    poster_font: Path | None = Field(
        default=None, description="A font with Chinese glyphs for posters; default one fontconfig finds."
    )

    # audit checkpoints (omnibank.audit): exported by a running server or worker, kept off the data volume
    audit_checkpoint_path: Path | None = Field(
        default=None,
        description="A file outside the data home that a running server or worker appends an audit "
        "checkpoint to (one JSON line) every OMNIBANK_AUDIT_CHECKPOINT_SECONDS.",
    )
    audit_checkpoint_url: str | None = Field(
        default=None, description="An http(s) URL a running server or worker POSTs each audit checkpoint to."
    )
    audit_checkpoint_seconds: float = Field(
        default=300.0, ge=1, le=86_400, description="Seconds between audit checkpoints (path or URL)."
    )

    # the answering assistant (omnibank.assistant)
    faq_dir: Path | None = Field(
        default=None,
        description="The folder of the assistant's FAQ files (YAML or Markdown); default the examples/faq "
        "of a source checkout, when there is one.",
    )

    # contact policy (omnibank.contact)
    quiet_hours: str = Field(
        default="21:00-08:00",
        description="Bank-local quiet hours HH:MM-HH:MM (may wrap midnight) or off: sends are deferred to "
        "their end.",
    )
    cap_channel_day: int = Field(
        default=1, ge=0, le=1000, description="Marketing sends per customer per channel per bank-local day."
    )
    cap_week: int = Field(
        default=3, ge=0, le=10000, description="Marketing sends per customer per natural week, all channels."
    )
    survey_gap_days: int = Field(
        default=30,
        ge=0,
        le=3660,
        description="At most one survey per customer in this many days, across all surveys (a survey may set "
        "its own gap).",
    )
    surveys_file: Path | None = Field(
        default=None,
        description="The bank's surveys (YAML, e.g. examples/cx/surveys.yaml): what each asks, its channel, "
        "what triggers it.",
    )
    cx_alerts_file: Path | None = Field(
        default=None,
        description="The customer-experience alert rules (YAML, e.g. examples/cx/alerts.yaml) the worker "
        "evaluates as events arrive; none: no alerts.",
    )
    cx_maps_dir: Path | None = Field(
        default=None,
        description="The folder of journey maps (*_map.yaml) the console shows; default the examples/cx of a "
        "source checkout, when there is one.",
    )
    contact_webhooks: dict[str, str] = Field(
        default_factory=dict,
        description='Channel → gateway URL (JSON, e.g. {"sms": "https://gw.bank/sms"}); channels not named '
        "use the sandbox.",
    )
    contact_webhook_secret: SecretStr | None = Field(
        default=None,
        validate_default=True,
        description="Secret for the HMAC-SHA256 signature of webhook bodies.",
    )
    contact_webhook_timeout: float = Field(
        default=5.0, gt=0, le=120, description="Seconds before a gateway call counts as failed."
    )
    supplier_webhooks: dict[str, str] = Field(
        default_factory=dict,
        description='Supplier id → https URL its service-desk tickets are posted to (JSON, e.g. {"acme": '
        '"https://acme.example/omnibank"}); a supplier not named is not told (its tickets wait).',
    )
    supplier_webhook_secret: SecretStr | None = Field(
        default=None,
        validate_default=True,
        description="Secret for the HMAC-SHA256 signature of supplier webhook bodies and callbacks.",
    )
    contact_sandbox_click_rate: Decimal = Field(
        default=Decimal("0"), ge=0, le=1, description="Share of sandbox deliveries that also click (demos)."
    )

    @field_validator("quiet_hours")
    @classmethod
    def _quiet_hours(cls, value: str) -> str:
        try:
            parse_quiet_hours(value)
        except ValueError as exc:
            raise ValueError(str(exc)) from None
        return value

    @field_validator("contact_webhooks")
    @classmethod
    def _webhooks(cls, value: dict[str, str]) -> dict[str, str]:
        for channel, url in value.items():
            if channel not in CHANNELS:
                raise ValueError(f"channel {channel!r} is not one of {', '.join(CHANNELS)}")
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.netloc:
                raise ValueError(f"{channel}: {url!r} is not an http(s) URL")
        return value

    @field_validator("contact_webhook_secret")
    @classmethod
    def _webhook_secret(cls, value: SecretStr | None, info: ValidationInfo) -> SecretStr | None:
        if info.data.get("contact_webhooks") and (value is None or not value.get_secret_value()):
            raise ValueError("needed when OMNIBANK_CONTACT_WEBHOOKS is set: webhook bodies are signed")
        return value

    @field_validator("supplier_webhooks")
    @classmethod
    def _supplier_webhooks(cls, value: dict[str, str]) -> dict[str, str]:
        for supplier, url in value.items():
            if not _SUPPLIER_ID.match(supplier):
                raise ValueError(f"{supplier!r} is not a supplier id (1 to 32 letters, digits, _ . or -)")
            parts = urlsplit(url)
            if parts.scheme != "https" or not parts.netloc:
                raise ValueError(f"{supplier}: {url!r} is not an https URL")
        return value

    @field_validator("supplier_webhook_secret")
    @classmethod
    def _supplier_webhook_secret(cls, value: SecretStr | None, info: ValidationInfo) -> SecretStr | None:
        if info.data.get("supplier_webhooks") and (value is None or not value.get_secret_value()):
            raise ValueError("needed when OMNIBANK_SUPPLIER_WEBHOOKS is set: webhook bodies are signed")
        return value

    @field_validator("audit_checkpoint_path")
    @classmethod
    def _checkpoint_path(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        if value is None:
            return None
        path = value.expanduser().resolve()
        home = Path(info.data.get("home") or ".omnibank").expanduser().resolve()
        if path == home or home in path.parents:
            raise ValueError(f"{path} is inside the data home {home}: keep checkpoints off the data volume")
        return path

    @field_validator("audit_checkpoint_url")
    @classmethod
    def _checkpoint_url(cls, value: str | None) -> str | None:
        if value is not None:
            parts = urlsplit(value)
            if parts.scheme not in ("http", "https") or not parts.netloc:
                raise ValueError(f"{value!r} is not an http(s) URL")
        return value

    @field_validator("public_url", "share_bank_url")
    @classmethod
    def _base_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
            raise ValueError(f"{value!r} is not an http(s) base URL")
        return value.rstrip("/")

    @field_validator("share_landing")
    @classmethod
    def _landing(cls, value: dict[str, str]) -> dict[str, str]:
        for kind, template in value.items():
            if not template.startswith(("http://", "https://", "{bank_url}", "{public_url}")):
                raise ValueError(
                    f"{kind}: {template!r} must start with http(s):// or {{bank_url}}/{{public_url}}"
                )
        return value

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
    def faq_folder(self) -> Path | None:
        """The assistant's FAQ folder: OMNIBANK_FAQ_DIR, else a source checkout's examples/faq, else none."""
        if self.faq_dir is not None:
            return self.faq_dir.expanduser().resolve()
        shipped = Path(__file__).resolve().parents[2] / "examples" / "faq"
        return shipped if shipped.is_dir() else None

    def cx_maps_folder(self) -> Path | None:
        """The journey maps' folder: OMNIBANK_CX_MAPS_DIR, else a source checkout's examples/cx, else none."""
        if self.cx_maps_dir is not None:
            return self.cx_maps_dir.expanduser().resolve()
        shipped = Path(__file__).resolve().parents[2] / "examples" / "cx"
        return shipped if shipped.is_dir() else None

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
        if self.key_path is not None:
            return self.key_path.expanduser().resolve()
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
