"""The web app while Postgres or Redis is unreachable: a polite 503 the client can retry, never
a 500, an ``unavailable`` event in a streaming chat, and /healthz naming what is down. The dead
dependencies are real: ports nothing listens on, so every connection is refused, or a
connection to the test database cut in the middle of a reply."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from redis.asyncio import Redis
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from core.providers.registry import ProviderRegistry
from core.providers.settings import sandbox_providers
from core.security.tokens import issue_access_token
from core.services import billing
from core.services.chat import ModelMenu, ModelTerms
from core.services.tariffs import Tariffs
from db.engine import UnitOfWorkFactory, create_engine
from sandbox.app import SandboxServer
from tests.factories import register
from tests.webapp.conftest import ClientMaker, make_context, web_access_token
from tests.webapp.test_chat_api import read_events
from webapp.app import create_app

SECRET = "outage-test-secret-of-at-least-32-bytes!"


@pytest.fixture
async def dead_engine() -> AsyncIterator[AsyncEngine]:
    engine = create_engine("postgresql://postgres@127.0.0.1:1/netroom", pool_size=1)
    yield engine
    await engine.dispose()


@pytest.fixture
async def dead_redis() -> AsyncIterator[Redis]:
    client = Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=1)
    yield client
    await client.aclose()


async def test_an_api_request_while_postgres_is_down_is_a_translated_503(
    aiohttp_client: ClientMaker, dead_engine: AsyncEngine, redis: Redis
) -> None:
    client = await aiohttp_client(create_app(make_context(dead_engine, redis, jwt_secret=SECRET)))
    token, _ = issue_access_token(
        1, secret=SECRET, now=datetime.now(UTC), ttl=timedelta(hours=1), session_id="s"
    )
    headers = {"Authorization": f"Bearer {token}"}

    response = await client.get("/api/me", headers=headers)
    assert response.status == 503
    assert response.headers["Retry-After"] == "10"
    assert await response.json() == {
        "error": "unavailable",
        "message": "The service is busy for a moment, please try again in a minute.",
    }

    russian = await client.get("/api/me?lang=ru", headers=headers)
    assert russian.status == 503
    assert (await russian.json())["message"] == (
        "Сервис ненадолго занят, попробуйте ещё раз через минуту."
    )

    health = await client.get("/healthz")
    assert health.status == 200
    assert await health.json() == {"status": "degraded", "postgres": "down", "redis": "ok"}


async def test_an_api_request_while_redis_is_down_is_a_503_and_postgres_still_serves(
    aiohttp_client: ClientMaker, engine: AsyncEngine, dead_redis: Redis
) -> None:
    factory = UnitOfWorkFactory.for_engine(engine)
    async with factory() as uow:
        user = (await register(uow)).user
        token = await web_access_token(uow, user.id, secret=SECRET)
    headers = {"Authorization": f"Bearer {token}"}
    client = await aiohttp_client(create_app(make_context(engine, dead_redis, jwt_secret=SECRET)))

    # Stop is a flag in Redis.
    stop = await client.post(f"/api/chat/{secrets.token_hex(8)}/stop", headers=headers)
    assert stop.status == 503
    assert (await stop.json())["error"] == "unavailable"

    # What needs only Postgres goes on working.
    me = await client.get("/api/me", headers=headers)
    assert me.status == 200
    assert (await me.json())["id"] == user.id


class Cable:
    """A proxy between the web app and the test database that the test can cut, as a network
    failure or a dead server would: open connections are reset and new ones refused."""

    def __init__(self, database_url: str) -> None:
        url = make_url(database_url)
        self.target_host = url.host
        self.target_port = url.port or 5432
        socket_dir = url.query.get("host")
        self.target_socket = (
            f"{socket_dir}/.s.PGSQL.{self.target_port}" if isinstance(socket_dir, str) else None
        )
        self.url = url
        self.server: asyncio.Server | None = None
        self.pipes: set[asyncio.StreamWriter] = set()

    async def start(self) -> str:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self.server.sockets[0].getsockname()[1]
        via = self.url.set(host="127.0.0.1", port=port, query={})
        return via.render_as_string(hide_password=False)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.target_socket is not None:
            up_reader, up_writer = await asyncio.open_unix_connection(self.target_socket)
        else:
            up_reader, up_writer = await asyncio.open_connection(self.target_host, self.target_port)
        self.pipes |= {writer, up_writer}

        async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.close()

        await asyncio.gather(pump(reader, up_writer), pump(up_reader, writer))

    async def cut(self) -> None:
        assert self.server is not None
        self.server.close()
        for pipe in self.pipes:
            pipe.transport.abort()
        self.pipes.clear()


async def test_a_reply_whose_storing_meets_a_postgres_outage_ends_with_an_unavailable_event(
    aiohttp_client: ClientMaker,
    engine: AsyncEngine,
    redis: Redis,
    database_url: str,
    sandbox: SandboxServer,
    http: httpx.AsyncClient,
) -> None:
    model = ModelTerms(
        id="outage-gpt",
        provider="openai",
        provider_model=f"gpt-outage-{secrets.token_hex(4)}",
        context_window=16_000,
        input_per_1k=10,
        output_per_1k=30,
    )
    cable = Cable(database_url)
    cut_engine = create_engine(await cable.start(), pool_size=2)
    try:
        async with UnitOfWorkFactory.for_engine(engine)() as uow:
            user = (await register(uow)).user
            await billing.credit(
                uow, user_id=user.id, amount=100_000, category="topup", key=secrets.token_hex(8)
            )
            token = await web_access_token(uow, user.id, secret=SECRET)
        client = await aiohttp_client(
            create_app(
                make_context(
                    cut_engine,
                    redis,
                    jwt_secret=SECRET,
                    models=ModelMenu(models=(model,), default_id=model.id),
                    model_names={model.id: "Outage GPT"},
                    providers=ProviderRegistry(sandbox_providers(sandbox.url), http),
                    tariffs=Tariffs(free_limits={}, timezone="Europe/Moscow"),
                )
            )
        )
        scripted = await http.post(
            f"{sandbox.url}/sandbox/api/providers/script",
            json={
                "provider": "openai",
                "model": model.provider_model,
                "reply": "slow " * 100,
                "chunk_size": 5,
                "chunk_delay_ms": 20,
            },
        )
        assert scripted.status_code == 201, scripted.text
        response = await client.post(
            "/api/chat",
            json={"text": "Tell me a story", "conversation_id": None},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert response.status == 200
        events = read_events(response)
        name, _ = await anext(events)
        assert name == "start"
        name, _ = await anext(events)
        assert name == "delta"
        # Postgres goes away while the reply streams: it cannot be stored or settled now.
        await cable.cut()
        rest = [event async for event in events]
        name, data = rest[-1]
        assert name == "error"
        assert data == {
            "code": "unavailable",
            "message": "The service is busy for a moment, please try again in a minute.",
        }
        assert all(name == "delta" for name, _ in rest[:-1])
        # The hold of this turn is left to the release of stale holds: settling it once
        # Postgres is back is the settlement's own business, not this message's.
    finally:
        await cut_engine.dispose()
