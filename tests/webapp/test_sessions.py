"""Sessions through create_app() with real Postgres and Redis: the Mini App's sign-in opens one,
refresh tokens rotate (an old one ends its session), signing out here or everywhere, the
sessions list and its ownership, cookie sessions with their CSRF token, and the end of every
session for account deletion."""

from __future__ import annotations

import logging
import secrets
from datetime import UTC, datetime, timedelta

import httpx
import jwt
import pytest
from redis.asyncio import Redis
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncEngine

from core.security.tokens import session_tag
from core.services import sessions
from db.models import Session
from sandbox.app import SandboxServer
from tests.factories import register, telegram_id
from tests.webapp.authkit import (
    SECRET,
    Kit,
    cookie_headers,
    make_kit,
    new_email,
    set_cookies,
)
from tests.webapp.conftest import ClientMaker
from webapp.cookies import csrf_token

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


async def _telegram_user(kit: Kit) -> tuple[int, int]:
    async with kit.factory() as uow:
        tg = telegram_id()
        user = (await register(uow, tg_id=tg)).user
    return tg, user.id


def _bearer(tokens: dict[str, object]) -> dict[str, str]:
    return {"Authorization": f"Bearer {tokens['access_token']}"}


async def test_the_mini_app_sign_in_opens_a_session_with_a_refresh_token(kit: Kit) -> None:
    tg, user_id = await _telegram_user(kit)
    tokens = await kit.telegram(tg)
    assert set(tokens) == {"access_token", "token_type", "expires_in", "refresh_token"}
    header = jwt.get_unverified_header(str(tokens["access_token"]))
    claims = jwt.decode(
        str(tokens["access_token"]), SECRET, algorithms=["HS256"], audience="netroom"
    )
    assert header["alg"] == "HS256"
    assert {"sub", "iat", "exp", "aud", "jti", "sid"} <= set(claims)
    assert claims["sub"] == str(user_id)
    listed = await (await kit.get("/api/sessions", headers=_bearer(tokens))).json()
    assert [(s["id"], s["platform"], s["current"]) for s in listed["sessions"]] == [
        (claims["sid"], "telegram", True)
    ]


async def test_a_refresh_token_works_once_and_its_reuse_ends_the_session(kit: Kit) -> None:
    tg, _ = await _telegram_user(kit)
    first = await kit.telegram(tg)
    renewed = await kit.post("/api/auth/refresh", {"refresh_token": first["refresh_token"]})
    assert renewed.status == 200
    second = await renewed.json()
    assert await kit.me(str(second["access_token"])) == 200
    # The access token issued before the refresh belongs to the same, still live session.
    assert await kit.me(str(first["access_token"])) == 200

    replay = await kit.post("/api/auth/refresh", {"refresh_token": first["refresh_token"]})
    assert (replay.status, (await replay.json())["error"]) == (401, "session_invalid")
    for token in (first["access_token"], second["access_token"]):
        assert await kit.me(str(token)) == 401
    later = await kit.post("/api/auth/refresh", {"refresh_token": second["refresh_token"]})
    assert later.status == 401


async def test_malformed_or_unknown_refresh_tokens_are_refused(kit: Kit) -> None:
    for token in ("", "x", "0" * 32 + "." + "A" * 43, "not-a-token." + "A" * 43):
        response = await kit.post("/api/auth/refresh", {"refresh_token": token})
        assert response.status in (400, 401), token
    assert (await kit.post("/api/auth/refresh")).status == 401


async def test_signing_out_ends_only_this_session(kit: Kit) -> None:
    tg, _ = await _telegram_user(kit)
    here = await kit.telegram(tg)
    there = await kit.telegram(tg)
    assert (await kit.post("/api/auth/sign-out", headers=_bearer(here))).status == 204
    assert await kit.me(str(here["access_token"])) == 401
    assert await kit.me(str(there["access_token"])) == 200
    refused = await kit.post("/api/auth/refresh", {"refresh_token": here["refresh_token"]})
    assert refused.status == 401
    assert (await kit.post("/api/auth/sign-out", headers=_bearer(here))).status == 401


async def test_signing_out_everywhere_ends_every_session(kit: Kit) -> None:
    tg, _ = await _telegram_user(kit)
    one, two = await kit.telegram(tg), await kit.telegram(tg)
    ended = await kit.post("/api/auth/sign-out-everywhere", headers=_bearer(two))
    assert (ended.status, await ended.json()) == (200, {"ended_sessions": 2})
    for tokens in (one, two):
        assert await kit.me(str(tokens["access_token"])) == 401
        again = await kit.post("/api/auth/refresh", {"refresh_token": tokens["refresh_token"]})
        assert again.status == 401


async def test_the_sessions_list_shows_only_ones_own_live_sessions(kit: Kit) -> None:
    tg, _ = await _telegram_user(kit)
    mine = await kit.telegram(tg)
    ended = await kit.telegram(tg)
    await kit.post("/api/auth/sign-out", headers=_bearer(ended))
    other_tg, _ = await _telegram_user(kit)
    await kit.telegram(other_tg)
    response = await kit.get("/api/sessions", headers=_bearer(mine))
    listed = (await response.json())["sessions"]
    assert len(listed) == 1
    item = listed[0]
    assert (item["platform"], item["device"], item["os"], item["browser"], item["ip"]) == (
        "telegram",
        "desktop",
        "Linux",
        "Chrome",
        kit.ip,
    )
    assert {"created_at", "last_used_at", "expires_at", "current", "id"} <= set(item)
    assert (await kit.get("/api/sessions")).status == 401


async def test_a_user_cannot_end_another_users_session(kit: Kit) -> None:
    tg, _ = await _telegram_user(kit)
    victim_tg, _ = await _telegram_user(kit)
    mine = await kit.telegram(tg)
    victims = await kit.telegram(victim_tg)
    victim_sid = jwt.decode(str(victims["access_token"]), options={"verify_signature": False})[
        "sid"
    ]
    response = await kit.client.delete(
        f"/api/sessions/{victim_sid}", headers=kit.headers(_bearer(mine))
    )
    assert (response.status, (await response.json())["error"]) == (404, "not_found")
    assert await kit.me(str(victims["access_token"])) == 200
    unknown = await kit.client.delete(
        "/api/sessions/" + "0" * 32, headers=kit.headers(_bearer(mine))
    )
    assert unknown.status == 404


async def test_ending_one_of_ones_own_sessions_by_id(kit: Kit) -> None:
    tg, _ = await _telegram_user(kit)
    keep, drop = await kit.telegram(tg), await kit.telegram(tg)
    sid = jwt.decode(str(drop["access_token"]), options={"verify_signature": False})["sid"]
    response = await kit.client.delete(f"/api/sessions/{sid}", headers=kit.headers(_bearer(keep)))
    assert response.status == 204
    assert await kit.me(str(drop["access_token"])) == 401
    assert await kit.me(str(keep["access_token"])) == 200
    again = await kit.client.delete(f"/api/sessions/{sid}", headers=kit.headers(_bearer(keep)))
    assert again.status == 404


async def test_an_expired_or_revoked_session_refuses_its_access_token(kit: Kit) -> None:
    tg, _ = await _telegram_user(kit)
    tokens = await kit.telegram(tg)
    sid = jwt.decode(str(tokens["access_token"]), options={"verify_signature": False})["sid"]
    async with kit.factory() as uow:
        await uow.session.execute(
            update(Session)
            .where(Session.id == sid)
            .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )
        await uow.commit()
    assert await kit.me(str(tokens["access_token"])) == 401
    refused = await kit.post("/api/auth/refresh", {"refresh_token": tokens["refresh_token"]})
    assert refused.status == 401


async def test_revoke_all_ends_every_session_for_account_deletion(kit: Kit) -> None:
    tg, user_id = await _telegram_user(kit)
    one, two = await kit.telegram(tg), await kit.telegram(tg)
    async with kit.factory() as uow:
        assert await sessions.revoke_all(uow, user_id, datetime.now(UTC)) == 2
    for tokens in (one, two):
        assert await kit.me(str(tokens["access_token"])) == 401


async def _browser_session(kit: Kit) -> tuple[str, str, str]:
    """Email sign-in in a browser: the refresh cookie, the CSRF cookie and the session id."""
    email = new_email()
    await kit.signed_up(email, PASSWORD)
    response = await kit.sign_in(email, PASSWORD)
    cookies = set_cookies(response)
    refresh = cookies["__Host-netroom_refresh"].value
    return refresh, cookies["__Host-netroom_csrf"].value, refresh.split(".")[0]


async def test_a_cookie_refresh_needs_the_matching_csrf_token(kit: Kit) -> None:
    refresh, csrf, sid = await _browser_session(kit)
    forged = "A" * len(csrf)
    cases = {
        "no header": cookie_headers(refresh, csrf, None),
        "wrong header": cookie_headers(refresh, csrf, forged),
        "header without cookie": cookie_headers(refresh, None, csrf),
        # Both sides agreeing is not enough: the token must be the session's own.
        "planted pair": cookie_headers(refresh, forged, forged),
        "another session's token": cookie_headers(
            refresh, csrf_token(SECRET, "f" * 32), csrf_token(SECRET, "f" * 32)
        ),
    }
    for name, headers in cases.items():
        response = await kit.post("/api/auth/refresh", headers=headers)
        assert response.status == 403, name
        assert (await response.json())["error"] == "csrf_failed", name

    ok = await kit.post("/api/auth/refresh", headers=cookie_headers(refresh, csrf, csrf))
    assert ok.status == 200
    body = await ok.json()
    assert "refresh_token" not in body and await kit.me(str(body["access_token"])) == 200
    rotated = set_cookies(ok)["__Host-netroom_refresh"].value
    assert rotated != refresh and rotated.startswith(sid + ".")
    assert set_cookies(ok)["__Host-netroom_csrf"].value == csrf
    # The replaced cookie ends the session when presented again.
    stale = await kit.post("/api/auth/refresh", headers=cookie_headers(refresh, csrf, csrf))
    assert stale.status == 401
    dead = await kit.post("/api/auth/refresh", headers=cookie_headers(rotated, csrf, csrf))
    assert dead.status == 401


async def test_a_cookie_sign_out_needs_the_csrf_token_and_clears_the_cookies(kit: Kit) -> None:
    refresh, csrf, _ = await _browser_session(kit)
    refused = await kit.post("/api/auth/sign-out", headers=cookie_headers(refresh, csrf, None))
    assert refused.status == 403
    everywhere = await kit.post(
        "/api/auth/sign-out-everywhere", headers=cookie_headers(refresh, csrf, "wrong")
    )
    assert everywhere.status == 403
    out = await kit.post("/api/auth/sign-out", headers=cookie_headers(refresh, csrf, csrf))
    assert out.status == 204
    cleared = set_cookies(out)
    assert cleared["__Host-netroom_refresh"].value == ""
    assert cleared["__Host-netroom_refresh"]["max-age"] == "0"
    after = await kit.post("/api/auth/refresh", headers=cookie_headers(refresh, csrf, csrf))
    assert after.status == 401


async def test_bearer_requests_need_no_csrf_token(kit: Kit) -> None:
    tg, _ = await _telegram_user(kit)
    tokens = await kit.telegram(tg)
    assert not set_cookies(await kit.post("/api/auth/refresh", {"refresh_token": "x"}))
    out = await kit.post("/api/auth/sign-out-everywhere", headers=_bearer(tokens))
    assert out.status == 200


async def test_a_refresh_with_a_wrong_secret_is_refused_and_leaves_the_session_alone(
    kit: Kit,
) -> None:
    tg, _ = await _telegram_user(kit)
    tokens = await kit.telegram(tg)
    # Anyone can read the session id in an access token.
    sid = jwt.decode(str(tokens["access_token"]), options={"verify_signature": False})["sid"]
    for garbage in ("A" * 43, secrets.token_urlsafe(32), secrets.token_urlsafe(40)):
        forged = await kit.post("/api/auth/refresh", {"refresh_token": f"{sid}.{garbage}"})
        assert (forged.status, (await forged.json())["error"]) == (401, "session_invalid")
    # The victim's tokens still work, and the session still rotates as usual.
    assert await kit.me(str(tokens["access_token"])) == 200
    renewed = await kit.post("/api/auth/refresh", {"refresh_token": tokens["refresh_token"]})
    assert renewed.status == 200
    assert await kit.me(str((await renewed.json())["access_token"])) == 200


async def test_any_replaced_refresh_token_coming_back_ends_the_session(kit: Kit) -> None:
    tg, _ = await _telegram_user(kit)
    first = await kit.telegram(tg)
    chain = [str(first["refresh_token"])]
    for _ in range(3):
        renewed = await kit.post("/api/auth/refresh", {"refresh_token": chain[-1]})
        assert renewed.status == 200
        chain.append(str((await renewed.json())["refresh_token"]))
    # The oldest of the replaced tokens, not just the last one, gives the theft away.
    replay = await kit.post("/api/auth/refresh", {"refresh_token": chain[0]})
    assert replay.status == 401
    current = await kit.post("/api/auth/refresh", {"refresh_token": chain[-1]})
    assert current.status == 401
    assert await kit.me(str(first["access_token"])) == 401


async def test_logs_never_name_a_session_id(kit: Kit, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    email = new_email()
    await kit.signed_up(email, PASSWORD)
    signed_in = await kit.sign_in(email, PASSWORD)
    refresh = set_cookies(signed_in)["__Host-netroom_refresh"].value
    body = await signed_in.json()
    sid = refresh.split(".")[0]
    renewed = await kit.post("/api/auth/refresh", {"refresh_token": body["refresh_token"]})
    assert renewed.status == 200
    # Refusals log why: a forged secret, a replayed token, a dead session, another's session.
    forged = await kit.post("/api/auth/refresh", {"refresh_token": f"{sid}.{'B' * 43}"})
    replay = await kit.post("/api/auth/refresh", {"refresh_token": body["refresh_token"]})
    dead = await kit.me(str((await renewed.json())["access_token"]))
    other = await kit.client.delete(f"/api/sessions/{sid}", headers=kit.headers())
    assert (forged.status, replay.status, dead, other.status) == (401, 401, 401, 401)
    assert caplog.records, "nothing was logged"
    assert session_tag(sid) in caplog.text
    # The test server's access log is left out: the service runs without one (its request log
    # names the route's pattern, never the path).
    for record in [r for r in caplog.records if r.name != "aiohttp.access"]:
        assert sid not in record.getMessage(), record.getMessage()
        assert sid not in str(record.args) and sid not in str(record.exc_info)
