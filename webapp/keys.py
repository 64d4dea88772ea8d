"""Every typed key of the web app."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from ipaddress import IPv4Network, IPv6Network

from aiohttp import web
from redis.asyncio import Redis

from core.clock import Clock, utcnow
from core.errors import DomainError
from core.mail import Mailer
from core.media import MediaStore
from core.oauth import OAuthClient
from core.payments.yookassa import YooKassaClient
from core.ports import JobQueue
from core.providers.registry import ProviderRegistry
from core.security.initdata import InitDataVerifier
from core.services.auth import LoginLimits
from core.services.chat import ModelMenu, display_name
from core.services.files import Embedder, FileLimits
from core.services.images import ImageTerms
from core.services.payments import InvoiceLinks, PaymentTerms
from core.services.subscriptions import RenewalSwitch
from core.services.tariffs import Tariffs
from core.services.videos import VideoTerms
from core.services.voice import TranscriptionTerms
from db.engine import UnitOfWorkFactory


@dataclass(frozen=True)
class WebContext:
    uow_factory: UnitOfWorkFactory
    redis: Redis
    public_url: str
    policy_version: str
    policy_date: str
    bot_username: str | None = None
    # Mini App sign-in: checks initData against the bot's token (None: no bot configured).
    init_data: InitDataVerifier | None = None
    jwt_secret: str = field(default="", repr=False)
    access_ttl: timedelta = timedelta(hours=12)
    clock: Clock = utcnow
    # This process, as the owner of the holds it makes (core/owners.py); None outside a service.
    owner: str | None = None
    media_store: MediaStore | None = None
    # Behind a reverse proxy: the header with the client's address, believed from these only.
    trusted_proxy_header: str | None = None
    trusted_proxies: tuple[IPv4Network | IPv6Network, ...] = ()
    # Rouble top-ups: the client, the amounts offered (roubles) and where notifications may
    # come from (None: not offered).
    yookassa: YooKassaClient | None = None
    yookassa_packages: tuple[int, ...] = ()
    yookassa_networks: Sequence[IPv4Network | IPv6Network] = ()
    payment_terms: PaymentTerms | None = None
    # Background work (telling a user in Telegram that a card payment arrived).
    jobs: JobQueue | None = None
    # Documents uploaded from the web app.
    file_limits: FileLimits = field(default_factory=FileLimits)
    # Web sign-in: how long a session lasts unused, whether an emailed link must confirm the
    # address before the password works, failed-attempt limits.
    session_ttl: timedelta = timedelta(days=30)
    email_confirmation: bool = True
    confirmation_ttl: timedelta = timedelta(hours=48)
    login_limits: LoginLimits = field(default_factory=LoginLimits)
    # Who may frame the app (origins): Telegram's web clients, and the local sandbox's client
    # when the bot runs on it.
    app_framers: tuple[str, ...] = ("https://web.telegram.org",)
    # Outgoing mail (None: email sign-up needs no mail only when confirmation is off).
    mailer: Mailer | None = None
    # Google and Yandex sign-in (None: not offered).
    oauth: OAuthClient | None = None
    # Chat from the web app: the text models on offer (None: no chat), their display names by
    # id, the provider adapters, the free tier and plans, and the embeddings model for searching
    # attached documents by meaning (None: by words only).
    models: ModelMenu | None = None
    model_names: Mapping[str, str] = field(default_factory=dict)
    providers: ProviderRegistry | None = None
    tariffs: Tariffs | None = None
    embedder: Embedder | None = None
    # Pictures and videos made from the web app (empty: not offered); videos also need ``jobs``
    # (the worker watches them).
    image_models: tuple[ImageTerms, ...] = ()
    video_models: tuple[VideoTerms, ...] = ()
    # The microphone in the chat: recordings transcribed with this model (None: not offered).
    transcription: TranscriptionTerms | None = None
    # The bot reads replies aloud for users who ask (the setting is shown only then).
    read_aloud_offered: bool = False
    # Telegram Stars top-ups from the Mini App: invoice links made by the bot (None: not offered).
    stars_invoice_links: InvoiceLinks | None = None
    # Cancelling and resuming subscription renewals from the web app: told to Telegram by the
    # bot (None: plans are bought and managed in the bot only).
    subscription_renewals: RenewalSwitch | None = None
    # The bot's username when it is not configured above: asked of Telegram once, then kept.
    bot_username_lookup: Callable[[], Awaitable[str | None]] | None = None
    # Readiness: asks the Bot API who the bot is (getMe), raising when it cannot (None: no bot).
    bot_api_probe: Callable[[], Awaitable[object]] | None = None
    # /metrics: the bearer token that may read them from anywhere (None: this machine only),
    # and what brings gauges up to date before a scrape (the job queue's depth).
    metrics_token: str | None = field(default=None, repr=False)
    metrics_refreshers: tuple[Callable[[], Awaitable[None]], ...] = ()

    def model_name(self, model_id: str | None) -> str | None:
        """A model as people read it (``core.services.chat.display_name``); None for none."""
        return None if model_id is None else display_name(self.model_names, model_id, self.models)

    async def resolved_bot_username(self) -> str | None:
        """The bot's username, configured or asked of Telegram (None: no bot, or not known)."""
        if self.bot_username:
            return self.bot_username
        if self.bot_username_lookup is not None:
            return await self.bot_username_lookup()
        return None


CONTEXT = web.AppKey("context", WebContext)
# The signed-in user of a request, once a route has checked its token.
USER_ID = web.RequestKey("user_id", int)
# The session of a request's access token (tokens from before sessions carry none).
SESSION_ID = web.RequestKey("session_id", str)
# Why a request's bearer token was refused; raised when a route asks for the user.
AUTH_FAILURE = web.RequestKey("auth_failure", DomainError)
