"""Security headers through create_app(): nosniff on everything, a Content-Security-Policy on
every HTML page saying who may frame it (the app: only Telegram's web clients), and no caching of
API answers, token answers first."""

from __future__ import annotations

import httpx
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine

from sandbox.app import SandboxServer
from tests.factories import register, telegram_id
from tests.webapp.authkit import Kit, make_kit, new_email
from tests.webapp.conftest import ClientMaker, make_context
from webapp.app import create_app

Client = TestClient[web.Request, web.Application]


def _directives(policy: str) -> dict[str, str]:
    parts = (p.strip().split(None, 1) for p in policy.split(";") if p.strip())
    return {p[0]: p[1] if len(p) > 1 else "" for p in parts}


@pytest.fixture
async def kit(
    aiohttp_client: ClientMaker,
    engine: AsyncEngine,
    redis: Redis,
    sandbox: SandboxServer,
    http: httpx.AsyncClient,
) -> Kit:
    return await make_kit(aiohttp_client, engine, redis, sandbox, http)


@pytest.mark.parametrize(
    "path",
    [
        "/",
        "/privacy/",
        "/app",
        "/static/app.js",
        "/static/style.css",
        "/healthz",
        "/api/me",
        "/nowhere",
        "/s/" + "x" * 20,
        "/media/" + "0" * 32 + ".png",
    ],
)
async def test_every_response_forbids_content_sniffing(client: Client, path: str) -> None:
    response = await client.get(path, allow_redirects=False)
    assert response.headers.get("X-Content-Type-Options") == "nosniff", response.status


@pytest.mark.parametrize("path", ["/", "/privacy/", "/?lang=ru"])
async def test_every_html_page_has_a_policy_that_no_site_may_frame_it(
    client: Client, path: str
) -> None:
    response = await client.get(path)
    assert (response.status, response.content_type) == (200, "text/html")
    policy = _directives(response.headers["Content-Security-Policy"])
    assert policy["frame-ancestors"] == "'none'"
    assert policy["script-src"] == "'self'"
    assert policy["object-src"] == "'none'"
    assert response.headers["X-Frame-Options"] == "DENY"


async def test_the_app_may_be_framed_only_by_telegrams_web_clients(client: Client) -> None:
    response = await client.get("/app")
    policy = _directives(response.headers["Content-Security-Policy"])
    assert policy["frame-ancestors"] == "https://web.telegram.org"
    assert policy["script-src"] == "'self'"
    # X-Frame-Options cannot name an allowed site; it would forbid Telegram too.
    assert "X-Frame-Options" not in response.headers


async def test_only_plain_origins_are_allowed_to_frame_the_app(
    aiohttp_client: ClientMaker, engine: AsyncEngine, redis: Redis
) -> None:
    framers = ("https://web.telegram.org", "http://127.0.0.1:8081", "https://x.test; script-src *")
    client = await aiohttp_client(create_app(make_context(engine, redis, app_framers=framers)))
    policy = _directives((await client.get("/app")).headers["Content-Security-Policy"])
    assert policy["frame-ancestors"] == "https://web.telegram.org http://127.0.0.1:8081"
    assert policy["script-src"] == "'self'"


async def test_a_shared_page_keeps_its_own_stricter_policy(client: Client) -> None:
    response = await client.get("/s/" + "x" * 20)
    assert response.content_type == "text/html"
    policy = _directives(response.headers["Content-Security-Policy"])
    assert policy["default-src"] == "'none'" and policy["frame-ancestors"] == "'none'"


async def test_token_answers_are_never_cached(kit: Kit) -> None:
    async with kit.factory() as uow:
        tg = telegram_id()
        await register(uow, tg_id=tg)
    tokens = await kit.telegram(tg)
    answers = {
        "refresh": await kit.post("/api/auth/refresh", {"refresh_token": tokens["refresh_token"]}),
        "me": await kit.get(
            "/api/me", headers={"Authorization": f"Bearer {tokens['access_token']}"}
        ),
        "refused sign-in": await kit.sign_in(new_email(), "wrong password"),
    }
    email = new_email()
    await kit.signed_up(email)
    answers["sign-in"] = await kit.sign_in(email, "correct horse battery")
    assert answers["sign-in"].status == 200
    for name, response in answers.items():
        assert response.headers.get("Cache-Control") == "no-store", name
