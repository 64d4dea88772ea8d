"""Mini App sign-in and the account API, through create_app() with real Postgres and Redis."""

from __future__ import annotations

import secrets
import time
from datetime import timedelta
from pathlib import Path

from aiohttp import web
from aiohttp.test_utils import TestClient
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine

from core.media import LocalMediaStore
from core.security.initdata import InitDataVerifier
from core.services import billing
from db.engine import UnitOfWorkFactory
from sandbox.telegram.initdata import sign_init_data
from tests.factories import register, telegram_id
from tests.webapp.conftest import ClientMaker, make_context
from webapp.app import create_app

Client = TestClient[web.Request, web.Application]
BOT_TOKEN = "7000000001:" + "A" * 35
SECRET = "s" * 40


async def _client(aiohttp_client: ClientMaker, engine: AsyncEngine, redis: Redis) -> Client:
    ctx = make_context(
        engine,
        redis,
        init_data=InitDataVerifier(BOT_TOKEN, timedelta(hours=1)),
        jwt_secret=SECRET,
    )
    return await aiohttp_client(create_app(ctx))


def _init_data(tg_id: int, *, auth_date: int | None = None, token: str = BOT_TOKEN) -> str:
    return sign_init_data(
        token,
        user={"id": tg_id, "first_name": "Mina", "language_code": "en"},
        auth_date=auth_date or int(time.time()),
    )


async def _account(engine: AsyncEngine, *, money: int = 0) -> tuple[int, int]:
    factory = UnitOfWorkFactory.for_engine(engine)
    async with factory() as uow:
        tg = telegram_id()
        user = (await register(uow, tg_id=tg, first_name="Mina")).user
        if money:
            await billing.credit(
                uow, user_id=user.id, amount=money, category="topup", key=secrets.token_hex(8)
            )
    return tg, user.id


async def test_valid_launch_data_signs_in_and_shows_the_account(
    aiohttp_client: ClientMaker, engine: AsyncEngine, redis: Redis
) -> None:
    tg, user_id = await _account(engine, money=12_345)
    client = await _client(aiohttp_client, engine, redis)
    response = await client.post(
        "/api/auth/telegram",
        headers={"Authorization": f"tma {_init_data(tg)}", "User-Agent": "Mozilla/5.0 (iPhone)"},
    )
    assert response.status == 200
    body = await response.json()
    assert body["token_type"] == "bearer"
    assert 0 < body["expires_in"] <= 12 * 3600
    assert body["refresh_token"]
    me = await client.get("/api/me", headers={"Authorization": f"Bearer {body['access_token']}"})
    assert me.status == 200
    data = await me.json()
    assert (data["id"], data["balance_kopecks"], data["name"]) == (user_id, 12_345, "Mina")
    # A Telegram account has no sign-in address.
    assert data["email"] is None
    factory = UnitOfWorkFactory.for_engine(engine)
    async with factory() as uow:
        row = await uow.users.get(user_id)
        assert row is not None
        assert (row.last_auth_platform, row.last_auth_os) == ("telegram", "iOS")


async def test_forged_stale_replayed_or_missing_launch_data_is_401(
    aiohttp_client: ClientMaker, engine: AsyncEngine, redis: Redis
) -> None:
    tg, _ = await _account(engine)
    client = await _client(aiohttp_client, engine, redis)
    cases = {
        "missing": {},
        "forged": {"Authorization": f"tma {_init_data(tg, token='7000000002:' + 'B' * 35)}"},
        "stale": {"Authorization": f"tma {_init_data(tg, auth_date=int(time.time()) - 7200)}"},
        "garbage": {"Authorization": "tma %%%"},
    }
    for name, headers in cases.items():
        response = await client.post("/api/auth/telegram", headers=headers)
        assert response.status == 401, name
        body = await response.json()
        assert set(body) == {"error", "message"}, name
    once = _init_data(tg)
    first = await client.post("/api/auth/telegram", headers={"Authorization": f"tma {once}"})
    again = await client.post("/api/auth/telegram", headers={"Authorization": f"tma {once}"})
    assert (first.status, again.status) == (200, 401)


async def test_a_new_user_accepts_the_policy_in_the_mini_app_and_is_registered(
    aiohttp_client: ClientMaker, engine: AsyncEngine, redis: Redis
) -> None:
    client = await _client(aiohttp_client, engine, redis)
    _, inviter_id = await _account(engine)
    factory = UnitOfWorkFactory.for_engine(engine)
    async with factory() as uow:
        inviter = await uow.users.get(inviter_id)
        assert inviter is not None
        code = inviter.referral_code
    tg = telegram_id()
    launch = sign_init_data(
        BOT_TOKEN,
        user={"id": tg, "first_name": "Nova", "language_code": "ru"},
        auth_date=int(time.time()),
        start_param=f"ref_{code}",
    )
    headers = {"Authorization": f"tma {launch}"}
    # Without acceptance nothing is stored, and the launch data is not used up.
    refused = await client.post("/api/auth/telegram", headers=headers)
    assert refused.status == 403
    assert (await refused.json())["error"] == "consent_required"
    async with factory() as uow:
        assert await uow.users.by_telegram_id(tg) is None
    accepted = await client.post(
        "/api/auth/telegram", headers=headers, json={"accept_policy": True}
    )
    assert accepted.status == 200
    token = (await accepted.json())["access_token"]
    me = await (await client.get("/api/me", headers={"Authorization": f"Bearer {token}"})).json()
    assert me["language"] == "ru" and me["name"] == "Nova"
    async with factory() as uow:
        user = await uow.users.by_telegram_id(tg)
        assert user is not None and user.invited_by == inviter_id
        assert await uow.users.latest_consent_version(user.id) == "2026-11-01"
    # And the same launch data cannot sign in a second time.
    again = await client.post("/api/auth/telegram", headers=headers, json={"accept_policy": True})
    assert again.status == 401


async def test_the_api_refuses_requests_without_a_valid_token(
    aiohttp_client: ClientMaker, engine: AsyncEngine, redis: Redis
) -> None:
    client = await _client(aiohttp_client, engine, redis)
    for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": "Basic abc"}):
        response = await client.get("/api/me", headers=headers)
        assert response.status == 401


async def test_the_mini_app_page_loads_only_its_own_scripts(
    aiohttp_client: ClientMaker, engine: AsyncEngine, redis: Redis
) -> None:
    client = await _client(aiohttp_client, engine, redis)
    response = await client.get("/app")
    assert response.status == 200
    html = await response.text()
    assert '<script type="module" src="/static/app.js">' in html
    assert "https://" not in html
    assert "script-src 'self'" in response.headers["Content-Security-Policy"]
    script = await client.get("/static/app.js")
    assert script.status == 200
    assert "innerHTML" not in await script.text()


async def test_generated_media_is_served_by_its_random_link_only(
    aiohttp_client: ClientMaker, engine: AsyncEngine, redis: Redis, tmp_path: Path
) -> None:
    store = LocalMediaStore(tmp_path)
    key = await store.save(b"\x89PNG fake picture", "image/png")
    client = await aiohttp_client(create_app(make_context(engine, redis, media_store=store)))
    response = await client.get(f"/media/{key}")
    assert response.status == 200
    assert response.headers["Content-Type"] == "image/png"
    assert await response.read() == b"\x89PNG fake picture"
    for wrong in ("0" * 32 + ".png", "..%2F..%2Fetc%2Fpasswd", key.upper()):
        assert (await client.get(f"/media/{wrong}")).status == 404
    await store.delete(key)
    assert (await client.get(f"/media/{key}")).status == 404


async def test_uploaded_documents_are_never_served_by_their_media_key(
    aiohttp_client: ClientMaker, engine: AsyncEngine, redis: Redis, tmp_path: Path
) -> None:
    store = LocalMediaStore(tmp_path)
    client = await aiohttp_client(create_app(make_context(engine, redis, media_store=store)))
    for mime in ("application/pdf", "text/plain", "application/octet-stream"):
        key = await store.save(b"%PDF-1.7 the contract", mime)
        assert key.endswith(".bin")
        response = await client.get(f"/media/{key}")
        assert response.status == 404, mime
        assert b"contract" not in await response.read()
        assert await store.load(key) == b"%PDF-1.7 the contract"
        # On disk too, only the service's user may read it.
        path = tmp_path / key[:2] / key
        assert (path.stat().st_mode & 0o777, path.parent.stat().st_mode & 0o777) == (0o600, 0o700)


async def test_requests_are_logged_by_route_without_ids_or_tokens(
    aiohttp_client: ClientMaker, engine: AsyncEngine, redis: Redis
) -> None:
    from sqlalchemy import select

    from db.models import RequestLog

    tg, user_id = await _account(engine)
    client = await _client(aiohttp_client, engine, redis)
    signed = await client.post(
        "/api/auth/telegram", headers={"Authorization": f"tma {_init_data(tg)}"}
    )
    token = (await signed.json())["access_token"]
    await client.get("/api/me", headers={"Authorization": f"Bearer {token}"})
    await client.get("/static/style.css")
    factory = UnitOfWorkFactory.for_engine(engine)
    async with factory() as uow:
        rows = (
            await uow.session.execute(
                select(RequestLog.method, RequestLog.endpoint, RequestLog.status).where(
                    RequestLog.user_id == user_id
                )
            )
        ).all()
    assert [tuple(r) for r in rows] == [("GET", "/api/me", 200)]


async def test_a_token_of_an_erased_account_is_worth_nothing(
    aiohttp_client: ClientMaker, engine: AsyncEngine, redis: Redis
) -> None:
    from datetime import UTC, datetime

    from core.services import privacy

    tg, user_id = await _account(engine)
    client = await _client(aiohttp_client, engine, redis)
    signed = await client.post(
        "/api/auth/telegram", headers={"Authorization": f"tma {_init_data(tg)}"}
    )
    token = (await signed.json())["access_token"]
    async with UnitOfWorkFactory.for_engine(engine)() as uow:
        await privacy.delete_user(uow, user_id, now=datetime.now(UTC))
    response = await client.get("/api/me", headers={"Authorization": f"Bearer {token}"})
    assert response.status == 401
