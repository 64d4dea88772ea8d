"""``GET /api/auth/methods`` through create_app() with real Postgres and Redis and the sandbox's
OAuth providers over real HTTP: what an account signs in with, as its owner sees it, and never
another account's."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine

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
    oauth = await oauth_clients(sandbox, http)
    return await make_kit(aiohttp_client, engine, redis, sandbox, http, oauth=oauth)


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def _methods(kit: Kit, token: str) -> dict[str, Any]:
    response = await kit.get("/api/auth/methods", headers=_bearer(token))
    assert response.status == 200, await response.text()
    return dict(await response.json())


async def _email_account(kit: Kit) -> tuple[str, str]:
    """A confirmed email account, signed in: its address and an access token."""
    email = new_email()
    await kit.signed_up(email, PASSWORD)
    response = await kit.sign_in(email, PASSWORD)
    assert response.status == 200
    return email, str((await response.json())["access_token"])


async def _telegram_account(kit: Kit) -> str:
    async with kit.factory() as uow:
        tg = telegram_id()
        await register(uow, tg_id=tg)
    return str((await kit.telegram(tg))["access_token"])


async def _link(kit: Kit, provider: str, token: str, *, verified: bool = True) -> str:
    """Link a new account of the provider's to the signed-in user, as the browser would: the
    start URL, the provider's consent, the callback with the flow's cookie. Its address."""
    created = await kit.control(
        "/accounts",
        {"provider": provider, "email": new_email(), "email_verified": verified, "name": "Ada"},
    )
    account = created["account"]
    start = await kit.get(f"/api/auth/{provider}/start?link=1", headers=_bearer(token))
    assert start.status == 302, await start.text()
    nonce = set_cookies(start)["__Host-netroom_oauth"].value
    approved = await kit.control(
        "/approve", {"authorize_url": start.headers["Location"], "subject": account["subject"]}
    )
    callback = await kit.callback(str(approved["redirect_url"]), nonce)
    assert callback.headers["Location"].endswith(f"/app#linked={provider}")
    return str(account["email"])


async def test_an_email_account_shows_its_address_and_its_password(kit: Kit) -> None:
    email, token = await _email_account(kit)
    assert await _methods(kit, token) == {
        "email": email.lower(),
        "password": True,
        "google": False,
        "yandex": False,
        "telegram": False,
        "google_email": None,
        "yandex_email": None,
        "oauth_offered": ["google", "yandex"],
    }


async def test_a_telegram_account_has_no_email_and_no_password(kit: Kit) -> None:
    token = await _telegram_account(kit)
    methods = await _methods(kit, token)
    assert (methods["telegram"], methods["email"], methods["password"]) == (True, None, False)
    assert (methods["google"], methods["yandex"]) == (False, False)


async def test_linked_providers_show_with_their_verified_addresses_only(kit: Kit) -> None:
    _, token = await _email_account(kit)
    yandex_email = await _link(kit, "yandex", token)
    await _link(kit, "google", token, verified=False)
    methods = await _methods(kit, token)
    assert (methods["google"], methods["yandex"]) == (True, True)
    assert methods["yandex_email"] == yandex_email.lower()
    # Google did not vouch for the address: it is not shown as the account's.
    assert methods["google_email"] is None


async def test_each_user_sees_only_their_own_methods(kit: Kit) -> None:
    ann_email, ann = await _email_account(kit)
    bob = await _telegram_account(kit)
    bobs_google = await _link(kit, "google", bob)
    anns = await _methods(kit, ann)
    bobs = await _methods(kit, bob)
    assert (anns["email"], anns["google"], anns["google_email"], anns["telegram"]) == (
        ann_email.lower(),
        False,
        None,
        False,
    )
    assert (bobs["email"], bobs["password"], bobs["google_email"]) == (
        None,
        False,
        bobs_google.lower(),
    )
    assert ann_email.lower() not in str(bobs) and bobs_google.lower() not in str(anns)


async def test_the_methods_need_a_signed_in_user(kit: Kit) -> None:
    _, token = await _email_account(kit)
    for headers in ({}, {"Authorization": "Bearer not.a.token"}):
        response = await kit.get("/api/auth/methods", headers=headers)
        assert response.status == 401
        assert (await response.json())["error"] in ("unauthorized", "session_invalid")
    await kit.post("/api/auth/sign-out", headers=_bearer(token))
    assert (await kit.get("/api/auth/methods", headers=_bearer(token))).status == 401


async def test_nothing_is_offered_to_link_without_oauth_configured(
    aiohttp_client: ClientMaker,
    engine: AsyncEngine,
    redis: Redis,
    sandbox: SandboxServer,
    http: httpx.AsyncClient,
) -> None:
    plain = await make_kit(aiohttp_client, engine, redis, sandbox, http)
    _, token = await _email_account(plain)
    assert (await _methods(plain, token))["oauth_offered"] == []
