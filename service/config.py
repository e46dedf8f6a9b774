"""One validated settings object, read from the environment (and an optional `.env`)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEV_JWT_SECRET = "opsledger-development-secret-change-me-0123456789"


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
    ready_max_lag: int = 10_000
    read_your_writes_timeout: float = 5.0
    command_retries: int = 5

    @model_validator(mode="after")
    def _no_default_secrets_in_production(self) -> Settings:
        if self.mode == "production":
            if self.jwt_jwks_url is None and self.jwt_secret.get_secret_value() == DEV_JWT_SECRET:
                raise ValueError("OPSLEDGER_JWT_SECRET (or OPSLEDGER_JWT_JWKS_URL) must be set "
                                 "in production mode; the development default is refused")
            if self.database_url is None:
                raise ValueError("DATABASE_URL must be set in production mode")
        return self


@lru_cache
def get_settings() -> Settings:
    return Settings()
