"""Email and password through create_app(), the sandbox's SMTP sink and real Postgres and
Redis: sign-up with consent, confirmation by the emailed link, sign-in with generic errors and
attempt limits, sessions after sign-in, password change."""

from __future__ import annotations

import base64
import re
import time
from datetime import UTC, datetime, timedelta
from urllib.parse import unquote

import httpx
import pytest
from redis.asyncio import Redis
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from core.security.tokens import issue_access_token, issue_signed
from core.services.auth import CONFIRMATION, LoginLimits
from core.services.auth import SIGN_IN_LINK as SIGN_IN_LINK_PURPOSE
from db.models import Consent, Identity, Session, SignupAttribution, User
from sandbox.app import SandboxServer
from tests.webapp.authkit import (
    SECRET,
    Kit,
    make_kit,
    new_email,
    set_cookies,
)
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


async def _user_of(kit: Kit, email: str) -> User:
    async with kit.factory() as uow:
        identity = await uow.session.scalar(
            select(Identity).where(Identity.provider == "email", Identity.subject == email.lower())
        )
        assert identity is not None
        user = await uow.users.get(identity.user_id)
        assert user is not None
        uow.session.expunge(user)
        return user


async def test_register_confirm_sign_in_refresh_and_sign_out_end_to_end(kit: Kit) -> None:
    email = new_email()
    registered = await kit.register(email, PASSWORD)
    assert registered.status == 202
    assert await registered.json() == {"status": "confirmation_sent"}

    refused = await kit.sign_in(email, PASSWORD)
    assert refused.status == 403
    assert (await refused.json())["error"] == "email_not_confirmed"

    token = await kit.confirmation_token(email)
    confirmed = await kit.post("/api/auth/confirm", {"token": token})
    assert (confirmed.status, await confirmed.json()) == (200, {"confirmed": True})

    signed = await kit.sign_in(email, PASSWORD)
    assert signed.status == 200
    first = await signed.json()
    assert set(first) == {"access_token", "token_type", "expires_in", "refresh_token"}
    assert await kit.me(first["access_token"]) == 200

    refreshed = await kit.post("/api/auth/refresh", {"refresh_token": first["refresh_token"]})
    assert refreshed.status == 200
    second = await refreshed.json()
    assert second["refresh_token"] != first["refresh_token"]
    assert await kit.me(second["access_token"]) == 200

    # The old refresh token is refused, and presenting it ends the session it belonged to.
    reused = await kit.post("/api/auth/refresh", {"refresh_token": first["refresh_token"]})
    assert reused.status == 401
    assert await kit.me(second["access_token"]) == 401
    after = await kit.post("/api/auth/refresh", {"refresh_token": second["refresh_token"]})
    assert after.status == 401

    again = await (await kit.sign_in(email, PASSWORD)).json()
    out = await kit.post(
        "/api/auth/sign-out", headers={"Authorization": f"Bearer {again['access_token']}"}
    )
    assert out.status == 204
    assert await kit.me(again["access_token"]) == 401
    gone = await kit.post("/api/auth/refresh", {"refresh_token": again["refresh_token"]})
    assert gone.status == 401


async def test_registration_creates_an_account_with_consent_referral_code_and_email_identity(
    kit: Kit,
) -> None:
    email = new_email()
    assert (await kit.register(email, PASSWORD, language="ru")).status == 202
    user = await _user_of(kit, email)
    async with kit.factory() as uow:
        identity = await uow.session.scalar(select(Identity).where(Identity.user_id == user.id))
        consent = await uow.session.scalar(select(Consent).where(Consent.user_id == user.id))
        attribution = await uow.session.get(SignupAttribution, user.id)
        assert identity is not None and consent is not None and attribution is not None
        uow.session.expunge_all()
    assert (identity.provider, identity.subject, identity.email) == (
        "email",
        email.lower(),
        email.lower(),
    )
    assert identity.email_verified is False
    assert identity.password_hash is not None
    algorithm, iterations, salt, digest = identity.password_hash.split("$")
    assert (algorithm, iterations) == ("pbkdf2_sha256", "600000")
    assert (len(base64.b64decode(salt)), len(base64.b64decode(digest))) == (16, 32)
    assert PASSWORD not in identity.password_hash
    assert user.referral_code and user.telegram_id is None and user.language == "ru"
    assert (consent.policy_version, consent.platform) == ("2026-11-01", "web")
    assert attribution.platform == "web" and attribution.browser == "Chrome"


async def test_registration_without_accepting_the_policy_is_refused_and_creates_nothing(
    kit: Kit,
) -> None:
    email = new_email()
    for body in (
        {"email": email, "password": PASSWORD},
        {"email": email, "password": PASSWORD, "accept_policy": False},
        {"email": email, "password": PASSWORD, "accept_policy": "yes"},
    ):
        response = await kit.post("/api/auth/register", body)
        assert response.status == 400
        assert (await response.json())["error"] == "consent_required"
    async with kit.factory() as uow:
        count = await uow.session.scalar(
            select(func.count()).select_from(Identity).where(Identity.subject == email.lower())
        )
    assert count == 0
    assert await kit.mails(email) == []


async def test_password_rules_are_enforced_at_registration(kit: Kit) -> None:
    for password in ("short12", " " * 12, "\t\n " * 4, "x" * 129):
        response = await kit.register(new_email(), password)
        assert response.status == 400, password
        assert (await response.json())["error"] == "weak_password"
    # Characters, not bytes: eight Cyrillic letters are sixteen bytes and fine.
    assert (await kit.register(new_email(), "пароль12")).status == 202
    assert (await kit.register(new_email(), "x" * 128)).status == 202


async def test_invalid_addresses_are_refused(kit: Kit) -> None:
    for email in ("no-at-sign", "two@@example.test", "a@b", "spaces in@example.test"):
        response = await kit.register(email, PASSWORD)
        assert response.status == 400, email
        assert (await response.json())["error"] == "invalid_email"


async def test_unknown_email_and_wrong_password_get_the_same_answer_in_similar_time(
    kit: Kit,
) -> None:
    email = new_email()
    await kit.signed_up(email)
    wrong_times, unknown_times = [], []
    # The fastest of several tries: the machine may be busy with other work in between.
    for _ in range(5):
        started = time.perf_counter()
        wrong = await kit.sign_in(email, "not the password")
        wrong_times.append(time.perf_counter() - started)
        started = time.perf_counter()
        unknown = await kit.sign_in(new_email(), "not the password")
        unknown_times.append(time.perf_counter() - started)
        assert wrong.status == unknown.status == 401
        assert await wrong.json() == await unknown.json()
    assert (await wrong.json())["error"] == "bad_credentials"
    wrong_time, unknown_time = min(wrong_times), min(unknown_times)
    # Both paths compute one full hash.
    assert unknown_time > 0.5 * wrong_time and wrong_time > 0.5 * unknown_time


async def test_five_failures_lock_the_account_from_that_address_only(kit: Kit) -> None:
    email = new_email()
    await kit.signed_up(email)
    for _ in range(5):
        assert (await kit.sign_in(email, "wrong password")).status == 401
    # Locked from this address: even the right password waits.
    locked = await kit.sign_in(email, PASSWORD)
    assert locked.status == 429
    assert (await locked.json())["error"] == "too_many_attempts"
    assert 800 <= int(locked.headers["Retry-After"]) <= 900
    # The owner, from an address of their own, is not locked out.
    owner = Kit(kit.client, kit.sandbox, kit.http, kit.factory)
    assert (await owner.sign_in(email, PASSWORD)).status == 200
    # Another account from the locked address is not affected.
    second = new_email()
    await kit.signed_up(second)
    assert (await kit.sign_in(second, PASSWORD)).status == 200


async def test_failures_from_many_addresses_slow_them_down_but_never_lock_the_owner(
    aiohttp_client: ClientMaker,
    engine: AsyncEngine,
    redis: Redis,
    sandbox: SandboxServer,
    http: httpx.AsyncClient,
) -> None:
    kit = await make_kit(
        aiohttp_client,
        engine,
        redis,
        sandbox,
        http,
        login_limits=LoginLimits(slow_after=3, slow_delay=timedelta(seconds=60)),
    )
    email = new_email()
    await kit.signed_up(email)
    attackers = [Kit(kit.client, kit.sandbox, kit.http, kit.factory) for _ in range(6)]
    for attacker in attackers:
        assert (await attacker.sign_in(email, "guess")).status == 401
    # Past three failures on the account, each address that failed waits before its next try.
    slowed = await attackers[-1].sign_in(email, "another guess")
    assert slowed.status == 429
    assert 1 <= int(slowed.headers["Retry-After"]) <= 60
    # The owner's own address signs in at once, however many addresses failed before.
    assert (await kit.sign_in(email, PASSWORD)).status == 200


async def test_a_successful_sign_in_clears_the_account_counter(kit: Kit) -> None:
    email = new_email()
    await kit.signed_up(email)
    for _ in range(4):
        assert (await kit.sign_in(email, "wrong password")).status == 401
    assert (await kit.sign_in(email, PASSWORD)).status == 200
    for _ in range(4):
        assert (await kit.sign_in(email, "wrong password")).status == 401
    assert (await kit.sign_in(email, PASSWORD)).status == 200


async def test_an_address_is_locked_after_too_many_failures(
    aiohttp_client: ClientMaker,
    engine: AsyncEngine,
    redis: Redis,
    sandbox: SandboxServer,
    http: httpx.AsyncClient,
) -> None:
    kit = await make_kit(
        aiohttp_client,
        engine,
        redis,
        sandbox,
        http,
        login_limits=LoginLimits(per_account=50, per_ip=4, window=timedelta(minutes=15)),
    )
    email = new_email()
    await kit.signed_up(email)
    for _ in range(4):
        assert (await kit.sign_in(new_email(), "guess")).status == 401
    locked = await kit.sign_in(email, PASSWORD)
    assert locked.status == 429
    assert int(locked.headers["Retry-After"]) > 0
    # The same account from another address signs in.
    other = Kit(kit.client, kit.sandbox, kit.http, kit.factory)
    assert (await other.sign_in(email, PASSWORD)).status == 200


async def test_confirmation_can_be_switched_off_by_the_operator(
    aiohttp_client: ClientMaker,
    engine: AsyncEngine,
    redis: Redis,
    sandbox: SandboxServer,
    http: httpx.AsyncClient,
) -> None:
    kit = await make_kit(
        aiohttp_client, engine, redis, sandbox, http, email_confirmation=False, mailer=None
    )
    email = new_email()
    registered = await kit.register(email, PASSWORD)
    assert (registered.status, await registered.json()) == (201, {"status": "registered"})
    assert (await kit.sign_in(email, PASSWORD)).status == 200
    taken = await kit.register(email.upper(), PASSWORD)
    assert (taken.status, (await taken.json())["error"]) == (409, "email_taken")


async def test_forged_foreign_or_expired_confirmation_links_are_refused(kit: Kit) -> None:
    email = new_email()
    assert (await kit.register(email, PASSWORD)).status == 202
    token = await kit.confirmation_token(email)
    user = await _user_of(kit, email)
    now = datetime.now(UTC)
    access, _ = issue_access_token(user.id, secret=SECRET, now=now, ttl=timedelta(hours=1))
    expired = issue_signed(
        CONFIRMATION,
        {"sub": str(user.id), "email": email.lower(), "pwf": "x"},
        secret=SECRET,
        now=now - timedelta(days=3),
        ttl=timedelta(hours=48),
    )
    forged = issue_signed(
        CONFIRMATION,
        {"sub": str(user.id), "email": email.lower(), "pwf": "x"},
        secret="another-secret-of-at-least-32-bytes!!",
        now=now,
        ttl=timedelta(hours=1),
    )
    for bad in (token[:-3] + "abc", access, expired, forged, "garbage"):
        response = await kit.post("/api/auth/confirm", {"token": bad})
        assert response.status == 400
        assert (await response.json())["error"] == "confirmation_invalid"
    assert (await kit.sign_in(email, PASSWORD)).status == 403


async def test_registering_an_unconfirmed_address_again_kills_the_earlier_link(kit: Kit) -> None:
    """Someone registering another's address first cannot keep their password: the owner's
    later registration replaces it, and a link mailed earlier no longer confirms anything."""
    email = new_email()
    assert (await kit.register(email, "the squatter's password")).status == 202
    squatter_link = await kit.confirmation_token(email)
    assert (await kit.register(email, PASSWORD)).status == 202
    owner_link = await kit.confirmation_token(email)
    assert owner_link != squatter_link
    stale = await kit.post("/api/auth/confirm", {"token": squatter_link})
    assert stale.status == 400
    assert (await kit.post("/api/auth/confirm", {"token": owner_link})).status == 200
    assert (await kit.sign_in(email, "the squatter's password")).status == 401
    assert (await kit.sign_in(email, PASSWORD)).status == 200


async def test_registering_a_confirmed_address_again_reveals_nothing_and_changes_nothing(
    kit: Kit,
) -> None:
    email = new_email()
    await kit.signed_up(email)
    again = await kit.register(email, "another password entirely")
    assert (again.status, await again.json()) == (202, {"status": "confirmation_sent"})
    mails = await kit.mails(email)
    assert "already have an account" in mails[-1]["text"]
    assert "#confirm=" not in mails[-1]["text"]
    assert (await kit.sign_in(email, PASSWORD)).status == 200
    assert (await kit.sign_in(email, "another password entirely")).status == 401


async def test_a_new_confirmation_link_can_be_asked_for(kit: Kit) -> None:
    email = new_email()
    assert (await kit.register(email, PASSWORD)).status == 202
    resent = await kit.post("/api/auth/confirm/resend", {"email": email})
    assert resent.status == 202
    assert len(await kit.mails(email)) == 2
    link = await kit.confirmation_token(email)
    assert (await kit.post("/api/auth/confirm", {"token": link})).status == 200
    unknown = await kit.post("/api/auth/confirm/resend", {"email": new_email()})
    assert (unknown.status, await unknown.json()) == (202, await resent.json())


async def test_sign_in_records_the_latest_authentication(kit: Kit) -> None:
    email = new_email()
    await kit.signed_up(email)
    assert (await kit.sign_in(email, PASSWORD)).status == 200
    user = await _user_of(kit, email)
    assert (user.last_auth_platform, user.last_auth_browser, user.last_auth_os) == (
        "web",
        "Chrome",
        "Linux",
    )
    assert str(user.last_auth_ip) == kit.ip
    assert user.last_auth_user_agent and "Chrome/131.0" in user.last_auth_user_agent
    assert user.last_auth_at is not None
    async with kit.factory() as uow:
        session = await uow.session.scalar(select(Session).where(Session.user_id == user.id))
        assert session is not None
        uow.session.expunge_all()
    assert (session.platform, session.browser, str(session.ip)) == ("web", "Chrome", kit.ip)


async def test_sign_in_sets_host_only_secure_session_cookies(kit: Kit) -> None:
    email = new_email()
    await kit.signed_up(email)
    response = await kit.sign_in(email, PASSWORD)
    cookies = set_cookies(response)
    refresh = cookies["__Host-netroom_refresh"]
    csrf = cookies["__Host-netroom_csrf"]
    assert refresh.value == (await response.json())["refresh_token"]
    for morsel in (refresh, csrf):
        assert morsel["secure"] and morsel["path"] == "/" and not morsel["domain"]
        assert morsel["samesite"] == "Lax"
    assert refresh["httponly"] and not csrf["httponly"]


async def test_changing_the_password_ends_every_other_session(kit: Kit) -> None:
    email = new_email()
    await kit.signed_up(email)
    here = await (await kit.sign_in(email, PASSWORD)).json()
    there = await (await kit.sign_in(email, PASSWORD)).json()
    bearer = {"Authorization": f"Bearer {here['access_token']}"}

    wrong = await kit.post(
        "/api/auth/password", {"current": "not it", "new": "a brand new phrase"}, headers=bearer
    )
    assert (wrong.status, (await wrong.json())["error"]) == (403, "wrong_password")
    weak = await kit.post(
        "/api/auth/password", {"current": PASSWORD, "new": "short"}, headers=bearer
    )
    assert weak.status == 400

    changed = await kit.post(
        "/api/auth/password", {"current": PASSWORD, "new": "a brand new phrase"}, headers=bearer
    )
    assert (changed.status, await changed.json()) == (200, {"ended_sessions": 1})
    assert await kit.me(here["access_token"]) == 200
    assert await kit.me(there["access_token"]) == 401
    assert (await kit.sign_in(email, PASSWORD)).status == 401
    assert (await kit.sign_in(email, "a brand new phrase")).status == 200
    unauthenticated = await kit.post(
        "/api/auth/password", {"current": "a brand new phrase", "new": "x" * 20}
    )
    assert unauthenticated.status == 401


SIGN_IN_LINK = re.compile(r"/app#signin=(\S+)")


async def _sign_in_link(kit: Kit, email: str) -> str:
    asked = await kit.post("/api/auth/email-link", {"email": email})
    assert (asked.status, await asked.json()) == (202, {"status": "link_sent"})
    mails = await kit.mails(email)
    found = SIGN_IN_LINK.search(mails[-1]["text"]) if mails else None
    assert found, mails
    return unquote(found.group(1))


async def test_the_owner_signs_in_by_an_emailed_link_while_the_password_is_locked(
    kit: Kit,
) -> None:
    email = new_email()
    await kit.signed_up(email)
    for _ in range(5):
        assert (await kit.sign_in(email, "wrong password")).status == 401
    assert (await kit.sign_in(email, PASSWORD)).status == 429
    token = await _sign_in_link(kit, email)
    signed_in = await kit.post("/api/auth/email-link/sign-in", {"token": token})
    assert signed_in.status == 200
    body = await signed_in.json()
    assert await kit.me(str(body["access_token"])) == 200
    assert "__Host-netroom_refresh" in set_cookies(signed_in)
    # Once only.
    again = await kit.post("/api/auth/email-link/sign-in", {"token": token})
    assert (again.status, (await again.json())["error"]) == (400, "sign_in_link_invalid")


async def test_a_sign_in_link_goes_only_to_a_confirmed_address_and_reveals_nothing(
    kit: Kit,
) -> None:
    unknown, pending = new_email(), new_email()
    assert (await kit.register(pending, PASSWORD)).status == 202
    for email in (unknown, pending):
        asked = await kit.post("/api/auth/email-link", {"email": email})
        assert (asked.status, await asked.json()) == (202, {"status": "link_sent"})
        assert not any(SIGN_IN_LINK.search(m["text"]) for m in await kit.mails(email))


async def test_forged_expired_or_foreign_sign_in_links_are_refused(kit: Kit) -> None:
    email = new_email()
    await kit.signed_up(email)
    token = await _sign_in_link(kit, email)
    now = datetime.now(UTC)
    forged = [
        token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB"),
        # A confirmation link is not a sign-in link.
        issue_signed(
            CONFIRMATION,
            {"sub": "1", "email": email, "jti": "z", "pwf": "0"},
            secret=SECRET,
            now=now,
            ttl=timedelta(minutes=15),
        ),
        issue_signed(
            SIGN_IN_LINK_PURPOSE,
            {"sub": "1", "email": email, "jti": "x"},
            secret="another-secret-of-at-least-32-bytes!!!!",
            now=now,
            ttl=timedelta(minutes=15),
        ),
        issue_signed(
            SIGN_IN_LINK_PURPOSE,
            {"sub": "1", "email": email, "jti": "y"},
            secret=SECRET,
            now=now - timedelta(hours=1),
            ttl=timedelta(minutes=15),
        ),
    ]
    for bad in forged:
        refused = await kit.post("/api/auth/email-link/sign-in", {"token": bad})
        assert (refused.status, (await refused.json())["error"]) == (400, "sign_in_link_invalid")
    # None of them used up the real link.
    assert (await kit.post("/api/auth/email-link/sign-in", {"token": token})).status == 200


async def test_a_stranger_asking_for_links_cannot_use_up_the_owners(kit: Kit) -> None:
    email = new_email()
    await kit.signed_up(email)
    stranger = Kit(kit.client, kit.sandbox, kit.http, kit.factory)
    answers = [
        (await stranger.post("/api/auth/email-link", {"email": email})).status for _ in range(7)
    ]
    assert answers[:5] == [202] * 5 and answers[5:] == [429, 429]
    # The owner, from their own address, still gets a link and signs in with it.
    token = await _sign_in_link(kit, email)
    assert (await kit.post("/api/auth/email-link/sign-in", {"token": token})).status == 200
