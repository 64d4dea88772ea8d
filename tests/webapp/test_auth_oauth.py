"""Google and Yandex sign-in through create_app() and the sandbox's providers over real HTTP:
authorization code with PKCE and a single-use state bound to the browser, accounts keyed by the
provider's user id, sign-up only after accepting the policy, linking only by a signed-in user."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from redis.asyncio import Redis
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from db.models import Identity
from sandbox.app import SandboxServer
from tests.webapp.authkit import (
    PUBLIC_URL,
    Kit,
    cookie_headers,
    make_kit,
    new_email,
    oauth_clients,
    set_cookies,
)
from tests.webapp.conftest import ClientMaker

PROVIDERS = ("google", "yandex")


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


async def _account(kit: Kit, provider: str, email: str | None = None) -> dict[str, Any]:
    created = await kit.control(
        "/accounts", {"provider": provider, "email": email or new_email(), "name": "Ada Byron"}
    )
    return dict(created["account"])


async def _start(
    kit: Kit, provider: str, *, query: str = "accept_policy=1", bearer: str | None = None
) -> tuple[str, str]:
    """The provider's authorize URL and the browser's flow cookie."""
    headers = {"Authorization": f"Bearer {bearer}"} if bearer else None
    response = await kit.get(f"/api/auth/{provider}/start?{query}", headers=headers)
    assert response.status == 302, await response.text()
    return response.headers["Location"], set_cookies(response)["__Host-netroom_oauth"].value


async def _approve(kit: Kit, authorize_url: str, subject: str) -> str:
    approved = await kit.control("/approve", {"authorize_url": authorize_url, "subject": subject})
    return str(approved["redirect_url"])


async def _flow(kit: Kit, provider: str, subject: str, **start: Any) -> Any:
    url, nonce = await _start(kit, provider, **start)
    return await kit.callback(await _approve(kit, url, subject), nonce)


async def _identity(kit: Kit, provider: str, subject: str) -> tuple[int, str | None, bool] | None:
    async with kit.factory() as uow:
        row = await uow.session.scalar(
            select(Identity).where(Identity.provider == provider, Identity.subject == subject)
        )
        return None if row is None else (row.user_id, row.email, row.email_verified)


async def _access_token(kit: Kit, callback: Any) -> str:
    """What the page does after the redirect: refresh with the cookie and the CSRF token."""
    cookies = set_cookies(callback)
    refresh, csrf = cookies["__Host-netroom_refresh"].value, cookies["__Host-netroom_csrf"].value
    response = await kit.post("/api/auth/refresh", headers=cookie_headers(refresh, csrf, csrf))
    assert response.status == 200
    return str((await response.json())["access_token"])


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_start_redirects_to_the_provider_with_pkce_and_state(kit: Kit, provider: str) -> None:
    url, nonce = await _start(kit, provider)
    parts = urlsplit(url)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == (
        f"{kit.sandbox.url}/oauth/{provider}/authorize"
    )
    assert query["response_type"] == "code"
    assert query["redirect_uri"] == f"{PUBLIC_URL}/api/auth/{provider}/callback"
    assert query["code_challenge_method"] == "S256" and len(query["code_challenge"]) == 43
    assert len(query["state"]) >= 43 and query["client_id"] and nonce
    assert "email" in query["scope"]
    page = await kit.http.get(url)
    assert page.status_code == 200 and "<form" in page.text


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_signing_up_with_a_provider_creates_an_account_and_signs_in(
    kit: Kit, provider: str
) -> None:
    account = await _account(kit, provider)
    callback = await _flow(kit, provider, account["subject"])
    assert callback.status == 302, await callback.text()
    assert callback.headers["Location"] == f"{PUBLIC_URL}/app#signed_in={provider}"
    assert set_cookies(callback)["__Host-netroom_oauth"].value == ""
    access = await _access_token(kit, callback)
    me = await kit.get("/api/me", headers={"Authorization": f"Bearer {access}"})
    assert me.status == 200
    user_id = (await me.json())["id"]
    assert await _identity(kit, provider, account["subject"]) == (
        user_id,
        account["email"].lower(),
        True,
    )
    # Signing in again finds the same account.
    again = await _flow(kit, provider, account["subject"], query="")
    assert again.status == 302
    second = await kit.get(
        "/api/me", headers={"Authorization": f"Bearer {await _access_token(kit, again)}"}
    )
    assert (await second.json())["id"] == user_id


async def test_a_new_identity_without_accepting_the_policy_creates_nothing(kit: Kit) -> None:
    account = await _account(kit, "google")
    callback = await _flow(kit, "google", account["subject"], query="")
    assert (callback.status, (await callback.json())["error"]) == (400, "consent_required")
    assert await _identity(kit, "google", account["subject"]) is None


async def test_a_wrong_or_absent_state_is_refused(kit: Kit) -> None:
    account = await _account(kit, "google")
    url, nonce = await _start(kit, "google")
    redirect = await _approve(kit, url, account["subject"])
    code = parse_qs(urlsplit(redirect).query)["code"][0]
    for query in (f"code={code}&state=forged-state", f"code={code}"):
        response = await kit.get(
            f"/api/auth/google/callback?{query}",
            headers={"Cookie": f"__Host-netroom_oauth={nonce}"},
        )
        assert (response.status, (await response.json())["error"]) == (400, "oauth_state_invalid")
    # The state of one provider does not finish the other's flow.
    state = parse_qs(urlsplit(redirect).query)["state"][0]
    crossed = await kit.get(
        f"/api/auth/yandex/callback?code={code}&state={state}",
        headers={"Cookie": f"__Host-netroom_oauth={nonce}"},
    )
    assert crossed.status == 400


async def test_a_replayed_state_is_refused(kit: Kit) -> None:
    account = await _account(kit, "yandex")
    url, nonce = await _start(kit, "yandex")
    redirect = await _approve(kit, url, account["subject"])
    assert (await kit.callback(redirect, nonce)).status == 302
    replayed = await kit.callback(redirect, nonce)
    assert (replayed.status, (await replayed.json())["error"]) == (400, "oauth_state_invalid")


async def test_a_callback_in_another_browser_is_refused(kit: Kit) -> None:
    account = await _account(kit, "google")
    url, _ = await _start(kit, "google")
    redirect = await _approve(kit, url, account["subject"])
    for nonce in (None, "someone-elses-nonce"):
        refused = await kit.callback(redirect, nonce)
        assert refused.status == 400


async def test_a_callback_from_another_browser_does_not_use_up_the_owners_flow(kit: Kit) -> None:
    account = await _account(kit, "google")
    url, nonce = await _start(kit, "google")
    redirect = await _approve(kit, url, account["subject"])
    for forged in (None, "someone-elses-nonce", "x" * 300):
        refused = await kit.callback(redirect, forged)
        assert (refused.status, (await refused.json())["error"]) == (400, "oauth_state_invalid")
    # The browser that started the flow still finishes it, once.
    finished = await kit.callback(redirect, nonce)
    assert finished.status == 302
    assert finished.headers["Location"].endswith("#signed_in=google")
    assert (await kit.callback(redirect, nonce)).status == 400


async def test_a_replayed_code_is_refused(kit: Kit) -> None:
    account = await _account(kit, "google")
    url, nonce = await _start(kit, "google")
    redirect = await _approve(kit, url, account["subject"])
    assert (await kit.callback(redirect, nonce)).status == 302
    used_code = parse_qs(urlsplit(redirect).query)["code"][0]
    url2, nonce2 = await _start(kit, "google")
    state2 = parse_qs(urlsplit(url2).query)["state"][0]
    replay = await kit.get(
        f"/api/auth/google/callback?code={used_code}&state={state2}",
        headers={"Cookie": f"__Host-netroom_oauth={nonce2}"},
    )
    assert (replay.status, (await replay.json())["error"]) == (400, "oauth_rejected")


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_a_code_with_another_flows_verifier_is_refused(kit: Kit, provider: str) -> None:
    """PKCE: a code obtained for one flow cannot be redeemed by another (its verifier differs)."""
    account = await _account(kit, provider)
    url_a, _ = await _start(kit, provider)
    url_b, nonce_b = await _start(kit, provider)
    code_a = parse_qs(urlsplit(await _approve(kit, url_a, account["subject"])).query)["code"][0]
    state_b = parse_qs(urlsplit(url_b).query)["state"][0]
    response = await kit.get(
        f"/api/auth/{provider}/callback?code={code_a}&state={state_b}",
        headers={"Cookie": f"__Host-netroom_oauth={nonce_b}"},
    )
    assert (response.status, (await response.json())["error"]) == (400, "oauth_rejected")
    assert await _identity(kit, provider, account["subject"]) is None


async def test_a_denied_consent_is_refused(kit: Kit) -> None:
    url, nonce = await _start(kit, "yandex")
    denied = await kit.control("/deny", {"authorize_url": url})
    response = await kit.callback(str(denied["redirect_url"]), nonce)
    assert (response.status, (await response.json())["error"]) == (400, "oauth_rejected")


async def test_an_email_account_is_never_linked_silently_by_address(kit: Kit) -> None:
    email = new_email()
    await kit.signed_up(email)
    email_user = await kit.sign_in(email, "correct horse battery")
    email_access = str((await email_user.json())["access_token"])
    email_id = (
        await (await kit.get("/api/me", headers={"Authorization": f"Bearer {email_access}"})).json()
    )["id"]
    account = await _account(kit, "google", email=email.lower())
    callback = await _flow(kit, "google", account["subject"])
    assert callback.status == 302
    found = await _identity(kit, "google", account["subject"])
    assert found is not None and found[0] != email_id
    async with kit.factory() as uow:
        mine = await uow.session.scalars(
            select(Identity.provider).where(Identity.user_id == email_id)
        )
        assert list(mine) == ["email"]


async def test_a_signed_in_user_links_a_provider_account(kit: Kit) -> None:
    email = new_email()
    await kit.signed_up(email)
    tokens = await (await kit.sign_in(email, "correct horse battery")).json()
    me = await kit.get("/api/me", headers={"Authorization": f"Bearer {tokens['access_token']}"})
    user_id = (await me.json())["id"]
    account = await _account(kit, "yandex")
    linked = await _flow(
        kit, "yandex", account["subject"], query="link=1", bearer=str(tokens["access_token"])
    )
    assert linked.status == 302
    assert linked.headers["Location"] == f"{PUBLIC_URL}/app#linked=yandex"
    assert "__Host-netroom_refresh" not in set_cookies(linked)
    assert await _identity(kit, "yandex", account["subject"]) == (
        user_id,
        account["email"].lower(),
        True,
    )
    # Signing in with Yandex now reaches the same account, without accepting anything again.
    signed = await _flow(kit, "yandex", account["subject"], query="")
    access = await _access_token(kit, signed)
    again = await kit.get("/api/me", headers={"Authorization": f"Bearer {access}"})
    assert (await again.json())["id"] == user_id


async def test_an_identity_linked_to_another_account_is_a_conflict(kit: Kit) -> None:
    account = await _account(kit, "google")
    assert (await _flow(kit, "google", account["subject"])).status == 302
    email = new_email()
    await kit.signed_up(email)
    tokens = await (await kit.sign_in(email, "correct horse battery")).json()
    conflict = await _flow(
        kit, "google", account["subject"], query="link=1", bearer=str(tokens["access_token"])
    )
    assert (conflict.status, (await conflict.json())["error"]) == (409, "identity_taken")


async def test_linking_needs_a_signed_in_user(kit: Kit) -> None:
    response = await kit.get("/api/auth/google/start?link=1")
    assert response.status == 401
    stale = await kit.get(
        "/api/auth/google/start?link=1", headers={"Authorization": "Bearer not.a.token"}
    )
    assert stale.status == 401


async def test_a_link_flow_dies_with_the_session_that_started_it(kit: Kit) -> None:
    email = new_email()
    await kit.signed_up(email)
    tokens = await (await kit.sign_in(email, "correct horse battery")).json()
    bearer = str(tokens["access_token"])
    account = await _account(kit, "google")
    url, nonce = await _start(kit, "google", query="link=1", bearer=bearer)
    redirect = await _approve(kit, url, account["subject"])
    await kit.post("/api/auth/sign-out", headers={"Authorization": f"Bearer {bearer}"})
    response = await kit.callback(redirect, nonce)
    assert response.status == 401
    assert await _identity(kit, "google", account["subject"]) is None


async def test_an_unconfigured_provider_is_not_found(
    aiohttp_client: ClientMaker,
    engine: AsyncEngine,
    redis: Redis,
    sandbox: SandboxServer,
    http: httpx.AsyncClient,
) -> None:
    plain = await make_kit(aiohttp_client, engine, redis, sandbox, http)
    for path in ("/api/auth/google/start", "/api/auth/github/start", "/api/auth/yandex/callback"):
        assert (await plain.get(path)).status == 404
