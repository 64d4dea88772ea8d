"""Signed-in sessions: one per sign-in, named by the access tokens issued for it (``sid``).

A session holds the SHA-256 of its current refresh token, replaced on every refresh, and of the
tokens it replaced (the newest ``RETIRED_KEPT``). A refresh token is ``<session id>.<secret>``:
when a token that once was the session's current one comes back, an old token is being used
again, by a thief or by the user after a thief, so the whole session ends (RFC 9700 4.14.2). A
secret that never was valid is refused and changes nothing: knowing a session id (it is in every
access token) gives no power over the session. Hashes are compared in constant time.

Logs and error details name a session only by ``session_tag`` (a short hash), never by its id.

Every authenticated request checks its session in the database (one primary-key read): an end
of session takes effect on the next request, with no cache that could lag behind a revocation.
"""

from __future__ import annotations

import hmac
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, or_, select, update

from core.dto import ClientInfo
from core.errors import NotFound
from core.security.tokens import (
    SessionInvalid,
    hash_refresh_token,
    new_refresh_token,
    new_session_id,
    refresh_session_id,
    session_tag,
)
from core.services import accounts
from db.models import Session, User
from db.uow import UnitOfWork

log = logging.getLogger(__name__)
# How stale `last_used_at` may get before a request writes it again.
USE_RESOLUTION = timedelta(minutes=5)
# Rotated-out refresh token hashes kept per session: reuse of any of these is detected.
RETIRED_KEPT = 64


class RefreshTokenReused(SessionInvalid):
    code = "session_invalid"


@dataclass(frozen=True, slots=True)
class IssuedSession:
    session_id: str
    user_id: int
    # Shown once, to the client; only its hash is kept.
    refresh_token: str
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class SessionInfo:
    id: str
    platform: str
    device: str | None
    os: str | None
    browser: str | None
    ip: str | None
    created_at: datetime
    last_used_at: datetime
    expires_at: datetime


def _info(row: Session) -> SessionInfo:
    return SessionInfo(
        id=row.id,
        platform=row.platform,
        device=row.device,
        os=row.os,
        browser=row.browser,
        ip=str(row.ip) if row.ip is not None else None,
        created_at=row.created_at,
        last_used_at=row.last_used_at,
        expires_at=row.expires_at,
    )


async def open_session(
    uow: UnitOfWork, *, user_id: int, client: ClientInfo, now: datetime, ttl: timedelta
) -> IssuedSession:
    """A new session, with the sign-in recorded on the account (policy 3.4); commits."""
    session_id = new_session_id()
    token = new_refresh_token(session_id)
    expires = now + ttl
    uow.session.add(
        Session(
            id=session_id,
            user_id=user_id,
            refresh_hash=hash_refresh_token(token),
            platform=client.platform[:16],
            device=client.device_type[:32] if client.device_type else None,
            os=client.os[:64] if client.os else None,
            browser=client.browser[:64] if client.browser else None,
            ip=client.ip,
            user_agent=client.user_agent[:512] if client.user_agent else None,
            created_at=now,
            last_used_at=now,
            expires_at=expires,
        )
    )
    await uow.session.flush()
    # Commits the session with the sign-in record.
    await accounts.record_sign_in(uow, user_id, client=client, now=now)
    return IssuedSession(session_id, user_id, token, expires)


async def refresh(
    uow: UnitOfWork, *, refresh_token: str, now: datetime, ttl: timedelta
) -> IssuedSession:
    """A new refresh token for the session, which stays alive ``ttl`` longer; the old token is
    worth nothing from now on, and presenting it again ends the session."""
    session_id = refresh_session_id(refresh_token)
    if session_id is None:
        raise SessionInvalid("malformed refresh token")
    async with uow.transaction():
        row = (
            await uow.session.execute(
                select(Session, User.is_blocked)
                .join(User, User.id == Session.user_id)
                .where(Session.id == session_id)
                .with_for_update(of=Session)
            )
        ).first()
        if row is None:
            raise SessionInvalid("unknown session")
        session, blocked = row
        if session.revoked_at is not None or session.expires_at <= now:
            raise SessionInvalid(f"session {session_tag(session_id)} ended")
        presented = hash_refresh_token(refresh_token)
        current = hmac.compare_digest(session.refresh_hash, presented)
        if not current:
            # Every retired hash is compared, matched or not.
            reused = [hmac.compare_digest(old, presented) for old in session.retired_hashes]
            if not any(reused):
                raise SessionInvalid(
                    f"session {session_tag(session_id)}: not a refresh token of it"
                )
        user_id = session.user_id
        token = new_refresh_token(session_id)
        if not current or blocked:
            # The session ends (committed with the block) and the refusal follows it.
            session.revoked_at = now
        else:
            session.retired_hashes = [session.refresh_hash, *session.retired_hashes][:RETIRED_KEPT]
            session.refresh_hash = hash_refresh_token(token)
            session.last_used_at = now
            session.expires_at = now + ttl
    if not current:
        log.warning(
            "a replaced refresh token of session %s came back: session ended",
            session_tag(session_id),
        )
        raise RefreshTokenReused(f"session {session_tag(session_id)}: old refresh token")
    if blocked:
        raise SessionInvalid(f"user {user_id} is blocked or erased")
    return IssuedSession(session_id, user_id, token, now + ttl)


async def owner_of_refresh_token(
    uow: UnitOfWork, refresh_token: str, *, now: datetime
) -> tuple[int, str]:
    """The user and the live session a current refresh token belongs to (signing out with
    it)."""
    session_id = refresh_session_id(refresh_token)
    found = None
    if session_id is not None:
        async with uow.reading():
            row = await uow.session.get(Session, session_id)
            if (
                row is not None
                and row.revoked_at is None
                and row.expires_at > now
                and hmac.compare_digest(row.refresh_hash, hash_refresh_token(refresh_token))
            ):
                found = (row.user_id, row.id)
    if found is None:
        raise SessionInvalid("refresh token is not current")
    return found


async def check(uow: UnitOfWork, *, session_id: str, user_id: int, now: datetime) -> None:
    """Refuse a request whose session has ended (signed out, revoked, expired, or the account
    blocked); keep `last_used_at` fresh to five minutes."""
    async with uow.reading():
        row = (
            await uow.session.execute(
                select(
                    Session.user_id, Session.revoked_at, Session.expires_at, Session.last_used_at
                )
                .add_columns(User.is_blocked)
                .join(User, User.id == Session.user_id)
                .where(Session.id == session_id)
            )
        ).first()
    if row is None or row.user_id != user_id:
        raise SessionInvalid(f"no session {session_tag(session_id)} for user {user_id}")
    if row.revoked_at is not None or row.expires_at <= now or row.is_blocked:
        raise SessionInvalid(f"session {session_tag(session_id)} ended")
    if now - row.last_used_at >= USE_RESOLUTION:
        async with uow.transaction():
            await uow.session.execute(
                update(Session).where(Session.id == session_id).values(last_used_at=now)
            )


async def list_sessions(uow: UnitOfWork, user_id: int, *, now: datetime) -> list[SessionInfo]:
    """The user's live sessions, most recently used first."""
    async with uow.reading():
        rows = await uow.session.scalars(
            select(Session)
            .where(
                Session.user_id == user_id, Session.revoked_at.is_(None), Session.expires_at > now
            )
            .order_by(Session.last_used_at.desc(), Session.created_at.desc())
        )
        found = [_info(r) for r in rows]
    return found


async def revoke(uow: UnitOfWork, *, user_id: int, session_id: str, now: datetime) -> None:
    """End one of the user's own sessions; another user's (or an unknown one) is not found."""
    async with uow.transaction():
        result = await uow.session.execute(
            update(Session)
            .where(
                Session.id == session_id,
                Session.user_id == user_id,
                Session.revoked_at.is_(None),
                Session.expires_at > now,
            )
            .values(revoked_at=now)
        )
        if not result.rowcount:  # type: ignore[attr-defined]
            raise NotFound(f"session {session_tag(session_id)} of user {user_id}")


async def end_all(uow: UnitOfWork, user_id: int, now: datetime, *, keep: str | None = None) -> int:
    """End every live session of the user (but ``keep``), without committing; how many."""
    stmt = (
        update(Session)
        .where(Session.user_id == user_id, Session.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    if keep is not None:
        stmt = stmt.where(Session.id != keep)
    result = await uow.session.execute(stmt)
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


async def revoke_all(
    uow: UnitOfWork, user_id: int, now: datetime, *, keep: str | None = None
) -> int:
    """Sign the user out everywhere (but the session ``keep``): every access and refresh token
    of theirs stops working at once. Commits; returns how many sessions ended."""
    ended = await end_all(uow, user_id, now, keep=keep)
    await uow.commit()
    return ended


async def purge_ended(uow: UnitOfWork, *, cutoff: datetime) -> int:
    """Delete sessions that ended (revoked or expired) before ``cutoff``, with their device
    data; commits; how many."""
    result = await uow.session.execute(
        delete(Session).where(or_(Session.revoked_at < cutoff, Session.expires_at < cutoff))
    )
    await uow.commit()
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
