"""Settings, built once in the entrypoint and passed down.

Environment variable names are an interface operators and deploy scripts depend on:
``DATABASE__URL``, ``REDIS__URL``, ``BOT__TOKEN`` and so on (nested with ``__``).
"""

from __future__ import annotations

import datetime as dt
import re
from enum import StrEnum
from pathlib import Path

from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from core.providers.settings import ProvidersSettings

PLACEHOLDER_SECRETS = frozenset({"", "change-me", "changeme", "secret", "dev-only-secret"})
TOKEN_RE = re.compile(r"^\d{1,20}:[A-Za-z0-9_-]{30,64}$")


class Environment(StrEnum):
    DEV = "dev"
    SANDBOX = "sandbox"
    PRODUCTION = "production"


class DatabaseSettings(BaseModel):
    # None: an embedded Postgres under DATA_DIR is started.
    url: str | None = None
    pool_size: int = 10
    max_overflow: int = 10


class RedisSettings(BaseModel):
    # None: an embedded Redis under DATA_DIR is started.
    url: str | None = None


class BotSettings(BaseModel):
    # None: `netroom run` starts the Telegram sandbox and points the bot at it.
    token: SecretStr | None = None
    api_base: str = "https://api.telegram.org"
    admin_ids: list[int] = Field(default_factory=list)
    admin_chat_id: int | None = None
    webhook_url: str | None = None
    webhook_secret: SecretStr | None = None
    webhook_path: str = "/telegram/webhook"

    @field_validator("token")
    @classmethod
    def _token_shape(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not TOKEN_RE.match(value.get_secret_value()):
            raise ValueError("BOT__TOKEN does not look like a Telegram bot token")
        return value

    @field_validator("webhook_secret")
    @classmethod
    def _secret_shape(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not re.fullmatch(
            r"[A-Za-z0-9_-]{1,256}", value.get_secret_value()
        ):
            raise ValueError(
                "BOT__WEBHOOK_SECRET may hold only A-Z, a-z, 0-9, _ and -, 1-256 chars"
            )
        return value


class WebSettings(BaseModel):
    host: str = "127.0.0.1"
    port: int = 8080
    public_url: str = "http://127.0.0.1:8080"
    jwt_secret: SecretStr = SecretStr("dev-only-secret")
    init_data_max_age_seconds: int = 3600


class PolicySettings(BaseModel):
    # Bump the version on a material change: users are asked to accept again.
    version: str = "2026-11-01"
    date: dt.date = dt.date(2026, 11, 1)


class PaymentsSettings(BaseModel):
    # What one Telegram Star buys on the balance, in kopecks.
    kopecks_per_star: int = Field(default=130, gt=0)
    # Star packages offered for top-ups.
    star_packages: list[int] = Field(default_factory=lambda: [50, 100, 250, 500, 1000])
    # Share of an invitee's paid top-ups credited to the inviter (level 1) and to the
    # inviter's inviter (level 2), in percent.
    referral_level1_percent: int = Field(default=10, ge=0, le=50)
    referral_level2_percent: int = Field(default=3, ge=0, le=50)

    @field_validator("star_packages")
    @classmethod
    def _packages(cls, value: list[int]) -> list[int]:
        if not value or any(not 1 <= stars <= 10_000 for stars in value):
            raise ValueError("PAYMENTS__STAR_PACKAGES must be 1-10000 Stars each")
        return sorted(set(value))


class SandboxSettings(BaseModel):
    host: str = "127.0.0.1"
    port: int = 8081


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_nested_delimiter="__",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
    )

    env: Environment = Environment.DEV
    data_dir: Path = Path(".data")
    # The model catalogue (TOML); unset: the one shipped in core/catalogue.toml.
    catalogue_path: Path | None = None
    log_level: str = "INFO"
    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    redis: RedisSettings = Field(default_factory=RedisSettings)
    bot: BotSettings = Field(default_factory=BotSettings)
    web: WebSettings = Field(default_factory=WebSettings)
    policy: PolicySettings = Field(default_factory=PolicySettings)
    sandbox: SandboxSettings = Field(default_factory=SandboxSettings)
    payments: PaymentsSettings = Field(default_factory=PaymentsSettings)
    # No key anywhere: `netroom run` points every provider at the sandbox's fakes.
    providers: ProvidersSettings = Field(default_factory=ProvidersSettings)

    @model_validator(mode="after")
    def _no_placeholder_secrets_in_production(self) -> Settings:
        if self.env is Environment.PRODUCTION:
            secret = self.web.jwt_secret.get_secret_value()
            if secret in PLACEHOLDER_SECRETS or len(secret.encode()) < 32:
                raise ValueError("WEB__JWT_SECRET must be a real secret of at least 32 bytes")
            if self.bot.token is None:
                raise ValueError("BOT__TOKEN is required in production")
            if self.bot.webhook_url and self.bot.webhook_secret is None:
                raise ValueError("BOT__WEBHOOK_SECRET is required with BOT__WEBHOOK_URL")
        return self

    @property
    def policy_url(self) -> str:
        return self.web.public_url.rstrip("/") + "/privacy/"
