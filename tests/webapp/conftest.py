from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from playwright.async_api import Browser, async_playwright
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine

from core.dto import ClientInfo
from core.security.tokens import issue_access_token
from core.services import sessions
from db.engine import UnitOfWorkFactory
from db.uow import UnitOfWork
from sandbox.app import SandboxServer, start_sandbox
from tests.sandbox_web.stage import CHROMIUM, CHROMIUM_ARGS, PageServer, start_page_server
from webapp.app import create_app
from webapp.keys import WebContext

ClientMaker = Callable[..., Awaitable[TestClient[web.Request, web.Application]]]


async def web_access_token(uow: UnitOfWork, user_id: int, *, secret: str) -> str:
    """An access token of a new web session of the user, as signing in gives one."""
    now = datetime.now(UTC)
    opened = await sessions.open_session(
        uow, user_id=user_id, client=ClientInfo(platform="web"), now=now, ttl=timedelta(days=1)
    )
    token, _ = issue_access_token(
        user_id, secret=secret, now=now, ttl=timedelta(hours=1), session_id=opened.session_id
    )
    return token


def make_context(engine: AsyncEngine, redis: Redis, **overrides: object) -> WebContext:
    values: dict[str, object] = {
        "uow_factory": UnitOfWorkFactory.for_engine(engine),
        "redis": redis,
        "public_url": "http://netroom.test",
        "policy_version": "2026-11-01",
        "policy_date": "2026-11-01",
        "bot_username": "netroom_test_bot",
    }
    values.update(overrides)
    return WebContext(**values)  # type: ignore[arg-type]


@pytest.fixture
async def client(
    aiohttp_client: ClientMaker, engine: AsyncEngine, redis: Redis
) -> AsyncIterator[TestClient[web.Request, web.Application]]:
    yield await aiohttp_client(create_app(make_context(engine, redis)))


# --- the outside world and a browser, shared by the modules that need them ----------------------


@pytest.fixture(scope="module")
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=30) as client:
        yield client


@pytest.fixture(scope="module")
async def sandbox() -> AsyncIterator[SandboxServer]:
    """The sandbox (Telegram, the model providers, YooKassa, OAuth, mail) for a module's API
    tests."""
    server = await start_sandbox()
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture(scope="module")
async def page_server() -> AsyncIterator[PageServer]:
    """The sandbox with its browser pages (the Telegram client around the Mini App), for a
    module's browser tests."""
    server = await start_page_server()
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            await browser.close()


@pytest.fixture
def errors() -> Iterator[list[str]]:
    """Script errors the pages reported; any fails the test."""
    found: list[str] = []
    yield found
    assert found == [], found
