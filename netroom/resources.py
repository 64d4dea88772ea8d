"""Every long-lived resource, built from the settings in one place and closed on shutdown."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import httpx
from httpx_aiohttp import HttpxAiohttpClient
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine

from core.config import Settings
from core.payments.yookassa import YooKassaClient
from core.providers.registry import ProviderRegistry
from core.providers.settings import ProvidersSettings
from db.engine import UnitOfWorkFactory, create_engine
from netroom.embedded import EmbeddedPostgres, EmbeddedRedis
from netroom.supervise import EmbeddedServer, ServerWatch

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Endpoints:
    database_url: str
    redis_url: str


@contextlib.contextmanager
def database_service(settings: Settings) -> Iterator[str]:
    """The configured Postgres, or the embedded one under DATA_DIR: its URL."""
    if settings.database.url is not None:
        yield settings.database.url
        return
    postgres = EmbeddedPostgres(settings.data_dir)
    try:
        yield postgres.start()
    finally:
        postgres.stop()


@contextlib.contextmanager
def backing_services(settings: Settings, *, supervised: bool = False) -> Iterator[Endpoints]:
    """The configured Postgres and Redis, or embedded ones under DATA_DIR for the unset ones.

    Embedded servers are stopped on exit; a server left behind by a killed run is picked up again.
    ``supervised`` (the long-running commands): an embedded server that dies meanwhile is
    started again on the same data and socket.
    """
    with contextlib.ExitStack() as stack:
        embedded: dict[str, EmbeddedServer] = {}
        database_url = settings.database.url
        if database_url is None:
            postgres = EmbeddedPostgres(settings.data_dir)
            database_url = postgres.start()
            stack.callback(postgres.stop)
            embedded["postgres"] = postgres
        redis_url = settings.redis.url
        if redis_url is None:
            redis = EmbeddedRedis(settings.data_dir)
            redis_url = redis.start()
            stack.callback(redis.stop)
            embedded["redis"] = redis
        if supervised and embedded:
            watch = ServerWatch(embedded)
            watch.start()
            # Unwound first: no restart races the deliberate stop of the servers.
            stack.callback(watch.stop)
        yield Endpoints(database_url=database_url, redis_url=redis_url)


@dataclass(frozen=True)
class Resources:
    settings: Settings
    endpoints: Endpoints
    engine: AsyncEngine
    uow_factory: UnitOfWorkFactory
    redis: Redis
    http: httpx.AsyncClient
    providers: ProviderRegistry
    # The providers are the sandbox's fakes (the offline demo).
    sandbox_providers: bool = False
    # Card top-ups (None: YooKassa is not configured).
    yookassa: YooKassaClient | None = None


def yookassa_client(settings: Settings, http: httpx.AsyncClient) -> YooKassaClient | None:
    y = settings.yookassa
    if not y.shop_id or y.secret_key is None:
        return None
    return YooKassaClient(http, y.shop_id, y.secret_key.get_secret_value(), y.api_base)


def outbound_http() -> httpx.AsyncClient:
    """The HTTP client for the AI providers, YooKassa and the OAuth sign-in services.

    Every streaming reply holds a provider connection for its whole length: the pool must not be
    what limits how many people are answered at once. Requests go through aiohttp's transport
    (``httpx-aiohttp``, what the OpenAI SDK offers for the same reason): reading a stream through
    httpx's own transport (httpcore, h11, anyio) cost the bot more CPU than anything else in a
    chat turn, and the same streams take about 40 % less through aiohttp's parser. The adapters
    keep httpx's interface and its exceptions."""
    # Built as a client of its own rather than httpx's client with a transport passed in: that
    # way the proxies named by HTTP_PROXY / HTTPS_PROXY / NO_PROXY are still honoured.
    return HttpxAiohttpClient(
        timeout=httpx.Timeout(30.0, connect=10.0),
        limits=httpx.Limits(max_connections=1_000, max_keepalive_connections=100),
    )


@contextlib.asynccontextmanager
async def open_resources(
    settings: Settings,
    endpoints: Endpoints,
    providers: ProvidersSettings | None = None,
    *,
    sandbox_providers: bool = False,
) -> AsyncIterator[Resources]:
    engine = create_engine(
        endpoints.database_url,
        pool_size=settings.database.pool_size,
        max_overflow=settings.database.max_overflow,
    )
    redis = Redis.from_url(endpoints.redis_url)
    http = outbound_http()
    try:
        yield Resources(
            settings=settings,
            endpoints=endpoints,
            engine=engine,
            uow_factory=UnitOfWorkFactory.for_engine(engine),
            redis=redis,
            http=http,
            providers=ProviderRegistry(providers or settings.providers, http),
            sandbox_providers=sandbox_providers,
            yookassa=yookassa_client(settings, http),
        )
    finally:
        await http.aclose()
        await redis.aclose()
        await engine.dispose()
