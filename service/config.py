"""One validated settings object, read from the environment (and an optional `.env`)."""

from __future__ import annotations

from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Literal, get_args

from pydantic import Field, SecretStr, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from domain.budget import DEFAULT_CATEGORIES
from domain.service_request import Priority

DEV_JWT_SECRET = "opsledger-development-secret-change-me-0123456789"
MIN_SECRET_LENGTH = 32  # HS256 keys of at least 256 bits (RFC 7518 §3.2)
# Ed25519 seed (base64) signing the Merkle digests in development; refused in production.
DEV_SIGNING_KEY = "VHR2xJq7aQMm4IPQdQ2wjJUypgdG6iAdxdvfQfiKnto="

# Service-request SLA targets in hours by priority (SPEC §3): first response, and resolution.
# A setting names only the priorities it changes; the others keep these defaults.
DEFAULT_SLA_FIRST_RESPONSE_HOURS = {"urgent": Decimal("1"), "high": Decimal("4"),
                                    "normal": Decimal("8"), "low": Decimal("24")}
DEFAULT_SLA_RESOLUTION_HOURS = {"urgent": Decimal("8"), "high": Decimal("24"),
                                "normal": Decimal("72"), "low": Decimal("120")}


class Settings(BaseSettings):
    """Every variable is documented in the README's configuration table."""

    model_config = SettingsConfigDict(env_prefix="OPSLEDGER_", env_file=".env", extra="ignore")

    mode: Literal["development", "production"] = "development"
    # DATABASE_URL has no prefix: it is the variable every platform sets.
    database_url: str | None = Field(default=None, validation_alias="DATABASE_URL")
    data_dir: Path = Path(".opsledger")
    host: str = "127.0.0.1"
    port: int = 8000
    pool_size: int = 10

    jwt_secret: SecretStr = SecretStr(DEV_JWT_SECRET)
    jwt_jwks_url: str | None = None
    jwt_audience: str = "opsledger"
    jwt_issuer: str | None = None

    snapshot_interval: int = 100
    aggregate_cache_size: int = 5000
    run_projector: bool = True
    projection_batch_size: int = 1000
    rebuild_batch_size: int = 2000
    projection_gather_ms: float = 5.0  # after a batch, let commits gather this long
    ready_max_lag: int = 10_000
    read_your_writes_timeout: float = 5.0
    command_retries: int = 5
    max_body_bytes: int = 1_048_576  # a larger request body is refused with 413
    # SPEC §5: the categories a budget line may use (JSON list in the environment).
    budget_categories: tuple[str, ...] = DEFAULT_CATEGORIES
    sla_first_response_hours: dict[str, Decimal] = Field(
        default_factory=lambda: dict(DEFAULT_SLA_FIRST_RESPONSE_HOURS))
    sla_resolution_hours: dict[str, Decimal] = Field(
        default_factory=lambda: dict(DEFAULT_SLA_RESOLUTION_HOURS))

    # Event streams for integrations (README "Event streams").
    stream_source: str = "/opsledger"  # the CloudEvents `source` of every published event
    stream_heartbeat_seconds: float = 15.0
    stream_poll_interval: float = 1.0  # how soon commits of other processes are noticed
    stream_retry_ms: int = 2000
    run_stream_workers: bool = True  # NATS publisher and webhook dispatcher, where projecting
    nats_url: str | None = None  # e.g. nats://127.0.0.1:4222; unset: no NATS publisher
    nats_stream: str = "OPSLEDGER"
    nats_subject_prefix: str = "opsledger"
    nats_batch_size: int = 100
    nats_duplicate_window_seconds: float = 600.0
    webhook_signing_key: SecretStr | None = None  # default: derived from the JWT secret
    webhook_max_attempts: int = 8
    webhook_retry_base_seconds: float = 5.0
    webhook_retry_max_seconds: float = 3600.0
    webhook_timeout_seconds: float = 10.0
    webhook_concurrency: int = 8

    # Tamper evidence (README "Tamper evidence").
    signing_key: SecretStr = SecretStr(DEV_SIGNING_KEY)  # Ed25519: base64 seed, or PKCS#8 PEM
    trusted_digest_keys: tuple[str, ...] = ()  # earlier public keys (base64 or PEM): rotation
    digest_interval_seconds: float = 60.0  # periodic signed digest when new events exist; 0 off
    retention_days: int = 183  # archival refuses events younger than max(6 months, this)
    service_role: str | None = None  # role granted SELECT/INSERT only on the event tables
    create_schema: bool = True  # create tables at start (off when running as service_role)

    # Logs (README "Operating it"): JSON lines on stderr with trace and correlation ids.
    log_level: str = "INFO"
    log_format: Literal["json", "text"] = "json"
    log_levels: dict[str, str] = Field(default_factory=dict)  # per logger, e.g. DEBUG for one

    @field_validator("log_level", mode="after")
    @classmethod
    def _log_level(cls, value: str) -> str:
        return _level(value)

    @field_validator("log_levels", mode="after")
    @classmethod
    def _log_levels(cls, value: dict[str, str]) -> dict[str, str]:
        return {name: _level(level) for name, level in value.items()}

    @field_validator("sla_first_response_hours", "sla_resolution_hours", mode="after")
    @classmethod
    def _sla_targets(cls, value: dict[str, Decimal], info: ValidationInfo) -> dict[str, Decimal]:
        known = get_args(Priority)
        unknown = sorted(set(value) - set(known))
        if unknown:
            raise ValueError(f"unknown priorities {unknown}; known: {list(known)}")
        if any(not hours.is_finite() or hours <= 0 for hours in value.values()):
            raise ValueError("SLA targets are positive numbers of hours")
        defaults = (DEFAULT_SLA_RESOLUTION_HOURS if info.field_name == "sla_resolution_hours"
                    else DEFAULT_SLA_FIRST_RESPONSE_HOURS)
        return {**defaults, **value}

    @model_validator(mode="after")
    def _no_default_secrets_in_production(self) -> Settings:
        if self.mode == "production":
            if self.jwt_jwks_url is None and self.jwt_secret.get_secret_value() == DEV_JWT_SECRET:
                raise ValueError("OPSLEDGER_JWT_SECRET (or OPSLEDGER_JWT_JWKS_URL) must be set "
                                 "in production mode; the development default is refused")
            if self.database_url is None:
                raise ValueError("DATABASE_URL must be set in production mode")
            if self.signing_key.get_secret_value() == DEV_SIGNING_KEY:
                raise ValueError("OPSLEDGER_SIGNING_KEY must be set in production mode; the "
                                 "development digest-signing key is refused")
            # Placeholders ("replace-me") and short keys are as guessable as the defaults.
            weak = [name for name, secret in (
                ("OPSLEDGER_JWT_SECRET", None if self.jwt_jwks_url else self.jwt_secret),
                ("OPSLEDGER_WEBHOOK_SIGNING_KEY", self.webhook_signing_key))
                if secret is not None and len(secret.get_secret_value()) < MIN_SECRET_LENGTH]
            if weak:
                raise ValueError(f"{', '.join(weak)}: at least {MIN_SECRET_LENGTH} characters in "
                                 "production mode (e.g. openssl rand -base64 32)")
        return self


def _level(value: str) -> str:
    level = value.strip().upper()
    if level not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
        raise ValueError(f"unknown log level '{value}': DEBUG, INFO, WARNING, ERROR or CRITICAL")
    return level


@lru_cache
def get_settings() -> Settings:
    return Settings()
