"""Settings, built once in the entrypoint and passed down.

Outside the local sandbox (a bot token for the real Bot API, or a public or webhook URL that is
not loopback) the settings are refused, whatever ``ENV`` says, with a placeholder or short
``WEB__JWT_SECRET`` or, in webhook mode, without a real ``BOT__WEBHOOK_SECRET``: either would let
anyone mint sessions or forge updates.

Environment variable names are an interface operators and deploy scripts depend on:
``DATABASE__URL``, ``REDIS__URL``, ``BOT__TOKEN`` and so on (nested with ``__``).
"""

from __future__ import annotations

import datetime as dt
import re
from enum import StrEnum
from ipaddress import IPv4Network, IPv6Network, ip_address, ip_network
from pathlib import Path
from typing import ClassVar, Literal, cast
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    Field,
    IPvAnyNetwork,
    SecretStr,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from core.providers.settings import ProvidersSettings

PLACEHOLDER_SECRETS = frozenset({"", "change-me", "changeme", "secret", "dev-only-secret"})
TOKEN_RE = re.compile(r"^\d{1,20}:[A-Za-z0-9_-]{30,64}$")
MIN_SECRET_BYTES = 32
MIN_WEBHOOK_SECRET = 16
MAKE_SECRET = "`python -c 'import secrets; print(secrets.token_urlsafe(48))'`"  # noqa: S105 (a command)  # nosec B105 # a command


def is_placeholder(secret: str) -> bool:
    """A value from the examples or the defaults, which anyone may know."""
    value = secret.strip().lower()
    return value in PLACEHOLDER_SECRETS or value.startswith(("dev-", "replace", "change"))


def is_loopback_url(url: str) -> bool:
    """Whether the URL's host is this machine (localhost or a loopback address)."""
    host = (urlsplit(url).hostname or "").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ip_address(host).is_loopback
    except ValueError:
        return False


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
    # A job untouched this long (its worker died) is run again by another worker. A live worker
    # touches its jobs every third of it, so long jobs are not affected.
    job_redeliver_seconds: float = Field(default=60.0, ge=1.0, le=3600.0)


class BotSettings(BaseModel):
    # None: `netroom run` starts the Telegram sandbox and points the bot at it.
    token: SecretStr | None = None
    api_base: str = "https://api.telegram.org"
    admin_ids: list[int] = Field(default_factory=list)
    admin_chat_id: int | None = None
    webhook_url: str | None = None
    webhook_secret: SecretStr | None = None
    webhook_path: str = "/telegram/webhook"
    # One shared send budget per bot (bot.pacing): previews give way, replies always arrive.
    send_pacing: bool = True
    # Inline mode (`@bot question` in any chat, billed to whoever asks): off unless the operator
    # turns it on here and enables inline mode and inline feedback for the bot in @BotFather.
    inline_mode: bool = False

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
    # Also check Telegram's Ed25519 signature of Mini App launch data with this public key
    # (hex): Telegram's production key is
    # e7bf03a2fa4602af4580703d88dda5bb59f32ed8b02a56c187fe7d34caed242d. Unset: HMAC only.
    init_data_ed25519_public_key: str | None = Field(default=None, pattern=r"^[0-9a-fA-F]{64}$")
    # Behind a reverse proxy: the header carrying the client's address (e.g. X-Forwarded-For),
    # honoured only on connections from TRUSTED_PROXIES. Unset: the peer address is the client.
    trusted_proxy_header: str | None = None
    trusted_proxies: list[IPvAnyNetwork] = Field(
        default_factory=lambda: [
            cast(IPvAnyNetwork, IPv4Network("127.0.0.1/32")),
            cast(IPvAnyNetwork, IPv6Network("::1/128")),
        ]
    )


class PolicySettings(BaseModel):
    # Bump the version on a material change: users are asked to accept again.
    version: str = "2026-11-01"
    date: dt.date = dt.date(2026, 11, 1)


class PlanSettings(BaseModel):
    """A subscription plan paid in Stars every 30 days, and its perks while it is active."""

    # At most 24 characters: the invoice title "NetRoom <Plan>" must fit Telegram's 32.
    id: str = Field(pattern=r"^[a-z][a-z0-9_]{0,23}$")
    stars: int = Field(gt=0, le=10_000)
    # Free requests per free-tier period for each model class, instead of the base allowance.
    free_tier: dict[str, int] = Field(default_factory=dict)
    # A discount on every paid request while the plan is active.
    discount_percent: int = Field(default=0, ge=0, le=100)


class PaymentsSettings(BaseModel):
    # What one Telegram Star buys on the balance, in kopecks.
    kopecks_per_star: int = Field(default=130, gt=0)
    # Star packages offered for top-ups.
    star_packages: list[int] = Field(default_factory=lambda: [50, 100, 250, 500, 1000])
    # Share of an invitee's paid top-ups credited to the inviter (level 1) and to the
    # inviter's inviter (level 2), in percent.
    referral_level1_percent: int = Field(default=10, ge=0, le=50)
    referral_level2_percent: int = Field(default=3, ge=0, le=50)
    # Subscription plans offered by /subscribe (Stars every 30 days).
    plans: list[PlanSettings] = Field(
        default_factory=lambda: [
            PlanSettings(
                id="plus", stars=250, free_tier={"basic": 200, "standard": 30}, discount_percent=10
            )
        ]
    )

    @field_validator("star_packages")
    @classmethod
    def _packages(cls, value: list[int]) -> list[int]:
        if not value or any(not 1 <= stars <= 10_000 for stars in value):
            raise ValueError("PAYMENTS__STAR_PACKAGES must be 1-10000 Stars each")
        return sorted(set(value))


class FreeTierSettings(BaseModel):
    # Free requests per period for each model class (the catalogue's `free_tier` field).
    limits: dict[str, int] = Field(default_factory=lambda: {"basic": 20, "standard": 3})
    period: Literal["day", "week", "month"] = "day"
    # Counters reset at midnight in this time zone (Monday for weeks, the 1st for months).
    timezone: str = "Europe/Moscow"

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"FREE_TIER__TIMEZONE: unknown time zone {value!r}") from exc
        return value


YOOKASSA_NETWORKS: list[IPvAnyNetwork] = [
    cast(IPvAnyNetwork, ip_network(n))
    for n in (
        "185.71.76.0/27",
        "185.71.77.0/27",
        "77.75.153.0/25",
        "77.75.156.11/32",
        "77.75.156.35/32",
        "77.75.154.128/25",
        "2a02:5180::/32",
    )
]


class YooKassaSettings(BaseModel):
    # Unset: YooKassa top-ups are not offered (`netroom run` uses the sandbox's shop).
    shop_id: str | None = None
    secret_key: SecretStr | None = None
    api_base: str = "https://api.yookassa.ru/v3"
    # Top-up amounts offered, in roubles.
    packages: list[int] = Field(default_factory=lambda: [100, 300, 500, 1000, 3000])
    # Where notifications may come from: YooKassa's published sender networks.
    notification_networks: list[IPvAnyNetwork] = Field(default_factory=lambda: YOOKASSA_NETWORKS)

    @property
    def enabled(self) -> bool:
        return bool(self.shop_id and self.secret_key)

    @field_validator("packages")
    @classmethod
    def _packages(cls, value: list[int]) -> list[int]:
        if not value or any(not 1 <= rub <= 300_000 for rub in value):
            raise ValueError("YOOKASSA__PACKAGES must be 1-300000 roubles each")
        return sorted(set(value))


class FilesSettings(BaseModel):
    """Documents users upload to ask questions about."""

    # Telegram bots can download at most 20 MB.
    max_file_mb: int = Field(default=20, ge=1, le=20)
    # All of one user's files together.
    quota_mb: int = Field(default=200, ge=1)
    max_pages: int = Field(default=500, ge=1)
    max_chars: int = Field(default=2_000_000, ge=1_000)
    # Passages put into a request, at most this many tokens.
    context_tokens: int = Field(default=2_000, ge=100, le=32_000)
    # Search by meaning too: an OpenAI-compatible embeddings model of the provider named here
    # (it needs that provider's key, and the pgvector extension in Postgres).
    embeddings_provider: str = "openai"
    embeddings_model: str = "text-embedding-3-small"
    embeddings_dimensions: int = Field(default=256, ge=16, le=3072)
    # What indexing costs the user, in kopecks per 1 000 embedded tokens (0: free).
    embeddings_price_1k: int = Field(default=1, ge=0)
    # A file left queued or indexing this long by a worker that stopped is queued again, and
    # failed (the user is told why) once indexing has started this many times.
    index_deadline_seconds: float = Field(default=300.0, ge=1.0)
    index_attempts: int = Field(default=3, ge=1, le=20)
    # Each document is read in a child process limited to this much memory (its whole address
    # space) and CPU time; a file that needs more is refused as too complex.
    read_memory_mb: int = Field(default=768, ge=256)
    read_cpu_seconds: int = Field(default=20, ge=1)


class BackupSettings(BaseModel):
    """Scheduled backups of an installation with embedded Postgres (`netroom backup` works
    everywhere; with your own Postgres, back it up the way you back up the rest)."""

    # Every day at this hour (UTC), when Postgres is embedded.
    daily: bool = True
    # Where the archives go (default: DATA_DIR/backups) and how many of the newest are kept.
    dir: Path | None = None
    keep: int = Field(default=7, ge=1)


class JobsSettings(BaseModel):
    """Periodic jobs. A job's schedule is a five-field cron expression (UTC) or an interval
    such as ``30s``, ``10m`` or ``2h``; overrides replace the built-in schedule of a job by name,
    e.g. ``{"retention.purge_expired": "5m"}``."""

    schedule_overrides: dict[str, str] = Field(default_factory=dict)

    @field_validator("schedule_overrides")
    @classmethod
    def _valid_schedules(cls, value: dict[str, str]) -> dict[str, str]:
        from core.services.job_runs import parse_schedule

        for name, spec in value.items():
            try:
                parse_schedule(spec)
            except ValueError as exc:
                raise ValueError(f"JOBS__SCHEDULE_OVERRIDES: {name}: {exc}") from exc
        return value


class SandboxSettings(BaseModel):
    host: str = "127.0.0.1"
    port: int = 8081


class ShutdownSettings(BaseModel):
    # On SIGTERM/SIGINT, replies being written get this long to finish; the rest are cut short
    # (the user is told and pays for what was delivered). Keep it under the supervisor's own
    # stop timeout (Docker: 10 s by default, `stop_grace_period`; systemd: TimeoutStopSec).
    grace_seconds: float = Field(default=25.0, ge=0, le=600)


class HoldSettings(BaseModel):
    # Each process's heartbeat in Redis: it lives this long and is renewed three times as often.
    heartbeat_ttl_seconds: float = Field(default=30.0, gt=0, le=600)
    # How often holds of stopped processes are looked for (and kept settlements applied).
    sweep_seconds: float = Field(default=30.0, gt=0, le=600)
    # A hold without an owner process is released after this long.
    ownerless_seconds: float = Field(default=120.0, gt=0, le=86_400)


class AuthSettings(BaseModel):
    """Signing in to the web app: sessions, email and password, failed-attempt limits."""

    # How long an access token lasts. Every request also checks its session, so signing out
    # ends a token at once whatever its lifetime; the session (refresh token) outlasts it.
    access_ttl_seconds: int = Field(default=43_200, ge=60, le=86_400)
    # A session ends after this many days without use.
    session_ttl_days: int = Field(default=30, ge=1, le=365)
    # Until the emailed link is opened, signing in with the password is refused.
    email_confirmation: bool = True
    confirmation_ttl_hours: int = Field(default=48, ge=1, le=720)
    # Failed sign-ins, counted over LOCKOUT_MINUTES: on one account from one address, and from
    # one address on any accounts, each locks that address when reached.
    max_failures_per_account: int = Field(default=5, ge=1)
    max_failures_per_ip: int = Field(default=20, ge=1)
    lockout_minutes: int = Field(default=15, ge=1, le=1440)
    # On one account from all addresses: past this many, an address that fails waits
    # SLOW_DOWN_SECONDS before its next try. Never locks the owner out.
    slow_down_after: int = Field(default=10, ge=1)
    slow_down_seconds: int = Field(default=30, ge=1, le=3600)


class EmailSettings(BaseModel):
    """Outgoing mail (address confirmation). No host: email sign-up is not offered."""

    model_config = {"populate_by_name": True}

    smtp_host: str | None = None
    smtp_port: int = 587
    smtp_user: str | None = None
    smtp_password: SecretStr | None = None
    # EMAIL__FROM (``from`` is a Python keyword, hence the attribute's name).
    from_: str = Field(default="NetRoom <noreply@netroom.local>", alias="from")
    starttls: bool = True


class OAuthProviderSettings(BaseModel):
    # No client id: signing in with this provider is not offered.
    client_id: str | None = None
    client_secret: SecretStr | None = None
    auth_url: str
    token_url: str
    userinfo_url: str

    @property
    def enabled(self) -> bool:
        return bool(self.client_id and self.client_secret)


class GoogleOAuthSettings(OAuthProviderSettings):
    auth_url: str = "https://accounts.google.com/o/oauth2/v2/auth"
    token_url: str = "https://oauth2.googleapis.com/token"  # noqa: S105 (a URL)
    userinfo_url: str = "https://openidconnect.googleapis.com/v1/userinfo"


class YandexOAuthSettings(OAuthProviderSettings):
    auth_url: str = "https://oauth.yandex.ru/authorize"
    token_url: str = "https://oauth.yandex.ru/token"  # noqa: S105 (a URL)
    userinfo_url: str = "https://login.yandex.ru/info"


class OAuthSettings(BaseModel):
    google: GoogleOAuthSettings = Field(default_factory=GoogleOAuthSettings)
    yandex: YandexOAuthSettings = Field(default_factory=YandexOAuthSettings)


class MetricsSettings(BaseModel):
    """Prometheus metrics (core/metrics.py): the web app serves them at /metrics; `netroom bot`
    and `netroom worker` on PORT (unset: not served). Readable from this machine without a
    proxy in between, or by anyone with `Authorization: Bearer <TOKEN>`."""

    token: SecretStr | None = None
    host: str = "127.0.0.1"
    port: int | None = Field(default=None, ge=1, le=65_535)


def secret_values(model: BaseModel) -> list[str]:
    """Every secret in the settings (for the log's redaction), wherever it is nested."""
    found: list[str] = []
    for name in type(model).model_fields:
        value = getattr(model, name)
        if isinstance(value, SecretStr):
            found.append(value.get_secret_value())
        elif isinstance(value, BaseModel):
            found.extend(secret_values(value))
    return found


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
    # text: for people; json: one JSON object per line, for log collectors.
    log_format: Literal["text", "json"] = "text"
    metrics: MetricsSettings = Field(default_factory=MetricsSettings)
    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    redis: RedisSettings = Field(default_factory=RedisSettings)
    bot: BotSettings = Field(default_factory=BotSettings)
    web: WebSettings = Field(default_factory=WebSettings)
    policy: PolicySettings = Field(default_factory=PolicySettings)
    sandbox: SandboxSettings = Field(default_factory=SandboxSettings)
    payments: PaymentsSettings = Field(default_factory=PaymentsSettings)
    free_tier: FreeTierSettings = Field(default_factory=FreeTierSettings)
    yookassa: YooKassaSettings = Field(default_factory=YooKassaSettings)
    files: FilesSettings = Field(default_factory=FilesSettings)
    backup: BackupSettings = Field(default_factory=BackupSettings)
    jobs: JobsSettings = Field(default_factory=JobsSettings)
    # No key anywhere: `netroom run` points every provider at the sandbox's fakes.
    providers: ProvidersSettings = Field(default_factory=ProvidersSettings)
    auth: AuthSettings = Field(default_factory=AuthSettings)
    email: EmailSettings = Field(default_factory=EmailSettings)
    oauth: OAuthSettings = Field(default_factory=OAuthSettings)
    shutdown: ShutdownSettings = Field(default_factory=ShutdownSettings)
    holds: HoldSettings = Field(default_factory=HoldSettings)

    # The rules below refuse to build unsafe settings; `netroom check` reads the settings
    # without them (UncheckedSettings) so that it can name every problem at once.
    enforce_deployment_rules: ClassVar[bool] = True

    @model_validator(mode="after")
    def _no_placeholder_secrets_outside_the_sandbox(self) -> Settings:
        # Whatever ENV says: a deployment that real users can reach gets real secrets.
        if self.enforce_deployment_rules and (
            self.env is Environment.PRODUCTION or self.reachable_from_outside
        ):
            for problem in (jwt_secret_problem(self), webhook_secret_problem(self)):
                if problem is not None:
                    raise ValueError(problem)
        if self.enforce_deployment_rules and (problem := bot_token_problem(self)) is not None:
            raise ValueError(problem)
        return self

    @property
    def reachable_from_outside(self) -> bool:
        """Real Telegram (a bot token for a non-loopback Bot API), or a web app or webhook
        published at a non-loopback address: anyone may then reach what these secrets guard."""
        if self.bot.token is not None and not is_loopback_url(self.bot.api_base):
            return True
        if self.bot.webhook_url and not is_loopback_url(self.bot.webhook_url):
            return True
        return not is_loopback_url(self.web.public_url)

    @property
    def policy_url(self) -> str:
        return self.web.public_url.rstrip("/") + "/privacy/"


class UncheckedSettings(Settings):
    """The same settings, built even when they break the deployment rules, for a preflight that
    reports each problem (``jwt_secret_problem`` and the rest) instead of stopping at the first."""

    enforce_deployment_rules: ClassVar[bool] = False


def jwt_secret_problem(settings: Settings) -> str | None:
    """Why WEB__JWT_SECRET may not guard a deployment real users reach, if it may not."""
    secret = settings.web.jwt_secret.get_secret_value()
    if is_placeholder(secret) or len(secret.encode()) < MIN_SECRET_BYTES:
        return (
            f"WEB__JWT_SECRET must be a random secret of at least {MIN_SECRET_BYTES} "
            f"bytes outside the local sandbox; make one with {MAKE_SECRET}"
        )
    return None


def webhook_secret_problem(settings: Settings) -> str | None:
    """In webhook mode, why BOT__WEBHOOK_SECRET does not keep forged updates out, if it does not."""
    hook_secret = settings.bot.webhook_secret
    if settings.bot.webhook_url and (
        hook_secret is None
        or is_placeholder(hook_secret.get_secret_value())
        or len(hook_secret.get_secret_value()) < MIN_WEBHOOK_SECRET
    ):
        return (
            "BOT__WEBHOOK_SECRET is required with BOT__WEBHOOK_URL outside the local "
            f"sandbox: at least {MIN_WEBHOOK_SECRET} random characters of A-Z, a-z, "
            f"0-9, _ and -; make one with {MAKE_SECRET}"
        )
    return None


def bot_token_problem(settings: Settings) -> str | None:
    if settings.env is Environment.PRODUCTION and settings.bot.token is None:
        return "BOT__TOKEN is required in production"
    return None
