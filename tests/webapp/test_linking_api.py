"""Linking from the web through create_app() with real Postgres, Redis and the sandbox's mail:
a Telegram account adds email and password (confirmed by the mailed link), and a web account
asks for the one-time deep link that the bot confirms."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine

from core.services import billing, linking
from sandbox.app import SandboxServer
from tests.factories import register, telegram_id
from tests.webapp.authkit import Kit, make_kit, new_email, oauth_clients, set_cookies
from tests.webapp.conftest import ClientMaker

PASSWORD = "correct horse battery"


@pytest.fixture
async def kit(
    aiohttp_client: ClientMaker,
    engine: AsyncEngine,
    redis: Redis,
    sandbox: SandboxServer,
    http: httpx.AsyncClient,
) -> Kit:
    return await make_kit(aiohttp_client, engine, redis, sandbox, http)


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def _telegram_account(kit: Kit) -> tuple[int, str]:
    async with kit.factory() as uow:
        tg = telegram_id()
        user_id = (await register(uow, tg_id=tg)).user.id
    return user_id, str((await kit.telegram(tg))["access_token"])


async def _methods(kit: Kit, token: str) -> dict[str, Any]:
    response = await kit.get("/api/auth/methods", headers=_bearer(token))
    assert response.status == 200
    return dict(await response.json())


async def _me(kit: Kit, token: str) -> int:
    response = await kit.get("/api/me", headers=_bearer(token))
    assert response.status == 200
    return int((await response.json())["id"])


async def test_a_telegram_account_adds_email_and_signs_in_with_it_once_confirmed(
    kit: Kit,
) -> None:
    user_id, token = await _telegram_account(kit)
    email = new_email()
    added = await kit.post(
        "/api/auth/email/add", {"email": email, "password": PASSWORD}, headers=_bearer(token)
    )
    assert added.status == 202, await added.text()
    # Not confirmed yet: the password does not sign in.
    assert (await kit.sign_in(email, PASSWORD)).status == 403
    confirm = await kit.post("/api/auth/confirm", {"token": await kit.confirmation_token(email)})
    assert confirm.status == 200
    signed_in = await kit.sign_in(email, PASSWORD)
    assert signed_in.status == 200
    web_token = str((await signed_in.json())["access_token"])
    # The same account, on the web now, with both ways in.
    assert await _me(kit, web_token) == user_id
    methods = await _methods(kit, web_token)
    linked = (methods["email"], methods["password"], methods["telegram"])
    assert linked == (email.lower(), True, True)
    again = await kit.post(
        "/api/auth/email/add", {"email": new_email(), "password": PASSWORD}, headers=_bearer(token)
    )
    assert again.status == 400
    assert (await again.json())["error"] == "email_already_set"


async def test_adding_another_accounts_address_attaches_nothing_and_tells_its_owner(
    kit: Kit,
) -> None:
    owner = new_email()
    await kit.signed_up(owner, PASSWORD)
    _, token = await _telegram_account(kit)
    before = len(await kit.mails(owner))
    added = await kit.post(
        "/api/auth/email/add",
        {"email": owner, "password": "another long password"},
        headers=_bearer(token),
    )
    # The same answer as for a free address: whether it has an account is not told.
    assert added.status == 202
    mails = await kit.mails(owner)
    assert len(mails) == before + 1 and "/app#confirm=" not in mails[-1]["text"]
    assert (await _methods(kit, token))["email"] is None
    assert (await kit.sign_in(owner, "another long password")).status == 401
    assert (await kit.sign_in(owner, PASSWORD)).status == 200


async def test_a_web_account_gets_a_one_time_telegram_deep_link(kit: Kit, redis: Redis) -> None:
    email = new_email()
    await kit.signed_up(email, PASSWORD)
    token = str((await (await kit.sign_in(email, PASSWORD)).json())["access_token"])
    response = await kit.post("/api/link/telegram", headers=_bearer(token))
    assert response.status == 200, await response.text()
    body = await response.json()
    assert body["expires_in"] == 600
    assert re.fullmatch(r"[A-Za-z0-9_-]{16}", body["code"])
    assert body["deep_link"] == f"https://t.me/netroom_test_bot?start=link-{body['code']}"
    assert 0 < await redis.ttl(f"{linking.KEY}:{body['code']}") <= 600


async def test_the_code_tells_the_page_what_the_bot_did_even_after_a_sign_out(
    kit: Kit, redis: Redis
) -> None:
    email = new_email()
    await kit.signed_up(email, PASSWORD)
    token = str((await (await kit.sign_in(email, PASSWORD)).json())["access_token"])
    code = (await (await kit.post("/api/link/telegram", headers=_bearer(token))).json())["code"]
    waiting = await kit.get(f"/api/link/telegram/{code}")
    assert waiting.status == 200
    assert await waiting.json() == {
        "linked": False,
        "web_signed_out": False,
        "history_moved": False,
    }
    # The Telegram user has an account of their own with money: the web account joins it.
    tg_id, _ = await _telegram_account(kit)
    async with kit.factory() as uow:
        await billing.credit(uow, user_id=tg_id, amount=1_000, category="topup", key=code)
        await uow.commit()
        tg = (await uow.users.get(tg_id)).telegram_id
        await linking.confirm_telegram_link(
            uow, redis, code=code, telegram_id=tg, username=None, now=datetime.now(UTC)
        )
    assert (await kit.get("/api/auth/methods", headers=_bearer(token))).status == 401
    # Asked with the ended session's token still attached, as the page does.
    done = await kit.get(f"/api/link/telegram/{code}", headers=_bearer(token))
    assert done.status == 200
    assert await done.json() == {"linked": True, "web_signed_out": True, "history_moved": False}
    unknown = await kit.get("/api/link/telegram/nosuchcode12345")
    assert unknown.status == 400
    assert (await unknown.json())["error"] == "link_code_invalid"


async def test_an_account_with_telegram_gets_no_telegram_link(kit: Kit) -> None:
    _, token = await _telegram_account(kit)
    response = await kit.post("/api/link/telegram", headers=_bearer(token))
    assert response.status == 409
    assert (await response.json())["error"] == "telegram_already_linked"


async def test_linking_needs_a_signed_in_user(kit: Kit) -> None:
    assert (await kit.post("/api/link/telegram")).status == 401
    add = await kit.post("/api/auth/email/add", {"email": new_email(), "password": PASSWORD})
    assert add.status == 401


@pytest.fixture
async def oauth_kit(
    aiohttp_client: ClientMaker,
    engine: AsyncEngine,
    redis: Redis,
    sandbox: SandboxServer,
    http: httpx.AsyncClient,
) -> Kit:
    oauth = await oauth_clients(sandbox, http)
    return await make_kit(aiohttp_client, engine, redis, sandbox, http, oauth=oauth)


async def test_a_telegram_account_links_google_through_a_handoff_to_the_browser(
    oauth_kit: Kit,
) -> None:
    kit = oauth_kit
    _, token = await _telegram_account(kit)
    handoff = await kit.post("/api/auth/google/link-handoff", headers=_bearer(token))
    assert handoff.status == 200, await handoff.text()
    url = str((await handoff.json())["url"])
    assert url.startswith("http://netroom.test/api/auth/google/start?handoff=")
    created = await kit.control(
        "/accounts",
        {"provider": "google", "email": new_email(), "email_verified": True, "name": "Mina"},
    )
    # The phone's browser: no bearer token, no cookies of the Mini App.
    path = url.removeprefix("http://netroom.test")
    start = await kit.get(path)
    assert start.status == 302, await start.text()
    nonce = set_cookies(start)["__Host-netroom_oauth"].value
    approved = await kit.control(
        "/approve",
        {"authorize_url": start.headers["Location"], "subject": created["account"]["subject"]},
    )
    callback = await kit.callback(str(approved["redirect_url"]), nonce)
    assert callback.headers["Location"].endswith("/app#linked=google")
    methods = await _methods(kit, token)
    assert (methods["google"], methods["google_email"], methods["telegram"]) == (
        True,
        created["account"]["email"].lower(),
        True,
    )
    # The handoff worked once.
    again = await kit.get(path, headers={"Accept": "application/json"})
    assert again.status == 400
    assert (await again.json())["error"] == "oauth_state_invalid"


async def test_codes_asked_for_too_often_are_refused_for_a_while(kit: Kit) -> None:
    email = new_email()
    await kit.signed_up(email, PASSWORD)
    token = str((await (await kit.sign_in(email, PASSWORD)).json())["access_token"])
    for _ in range(20):
        assert (await kit.post("/api/link/telegram", headers=_bearer(token))).status == 200
    refused = await kit.post("/api/link/telegram", headers=_bearer(token))
    assert refused.status == 429
    assert int(refused.headers["Retry-After"]) > 0
