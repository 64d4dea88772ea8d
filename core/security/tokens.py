"""Tokens of the web app and the Mini App.

Access tokens: JWT, HS256 pinned, with audience, id and the session they belong to (``sid``), so
that ending a session ends its access tokens at once. Refresh tokens: ``<session id>.<256 random
bits>``, kept only as a SHA-256 hash and replaced on every use. Signed tokens for links sent by
email (confirming an address): JWT under a key derived for that purpose alone, with an audience
of their own, so that no kind of token passes for another.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import jwt

from core.errors import Unauthorized
from core.i18n import N_

AUDIENCE = "netroom"
ALGORITHM = "HS256"
MIN_SECRET_BYTES = 32


class SessionInvalid(Unauthorized):
    code = "session_invalid"
    msgid = N_("Your session has ended. Please sign in again.")


@dataclass(frozen=True, slots=True)
class AccessClaims:
    user_id: int
    token_id: str
    expires_at: datetime
    # The session the token belongs to.
    session_id: str | None = None


def check_secret(secret: str) -> None:
    """Signing secrets are at least 32 bytes; a ``dev-`` one is for local development only."""
    if len(secret.encode()) < MIN_SECRET_BYTES and not secret.startswith("dev-"):
        raise ValueError(f"the signing secret must be at least {MIN_SECRET_BYTES} bytes")


def derive_key(secret: str, purpose: str) -> bytes:
    """A key for one purpose only, from the one configured secret."""
    return hmac.new(secret.encode(), f"netroom:{purpose}".encode(), hashlib.sha256).digest()


def issue_access_token(
    user_id: int,
    *,
    secret: str,
    now: datetime,
    ttl: timedelta,
    session_id: str | None = None,
) -> tuple[str, AccessClaims]:
    check_secret(secret)
    claims = AccessClaims(user_id, secrets.token_urlsafe(16), now + ttl, session_id)
    payload: dict[str, Any] = {
        "sub": str(user_id),
        "iat": int(now.timestamp()),
        "exp": int(claims.expires_at.timestamp()),
        "aud": AUDIENCE,
        "jti": claims.token_id,
    }
    if session_id is not None:
        payload["sid"] = session_id
    return jwt.encode(payload, secret, algorithm=ALGORITHM), claims


def read_access_token(token: str, *, secret: str, now: datetime) -> AccessClaims:
    try:
        data = jwt.decode(
            token,
            secret,
            algorithms=[ALGORITHM],
            audience=AUDIENCE,
            options={"require": ["sub", "exp", "iat", "aud", "jti"], "verify_exp": False},
        )
        expires = datetime.fromtimestamp(int(data["exp"]), now.tzinfo)
        sid = data.get("sid")
        if sid is not None and not isinstance(sid, str):
            raise ValueError("sid is not a string")
        claims = AccessClaims(int(data["sub"]), str(data["jti"]), expires, sid)
    except (jwt.PyJWTError, ValueError, KeyError, TypeError) as exc:
        raise SessionInvalid(type(exc).__name__) from exc
    if claims.expires_at <= now:
        raise SessionInvalid("expired")
    return claims


# --- refresh tokens --------------------------------------------------------------------------


def session_tag(session_id: str | None) -> str:
    """What logs say of a session: a short hash that tells sessions apart without naming one
    (a session id is half of a refresh token and the key of every request's session check)."""
    if session_id is None:
        return "-"
    return hashlib.sha256(f"netroom:session:{session_id}".encode()).hexdigest()[:10]


def new_session_id() -> str:
    return secrets.token_hex(16)


def new_refresh_token(session_id: str) -> str:
    return f"{session_id}.{secrets.token_urlsafe(32)}"


def hash_refresh_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def refresh_session_id(token: str) -> str | None:
    """The session a refresh token names, or None when it is not shaped like one."""
    sid, dot, rest = token.partition(".")
    if not dot or len(sid) != 32 or len(rest) < 43 or len(token) > 128:
        return None
    if not all(c in "0123456789abcdef" for c in sid):
        return None
    return sid


# --- signed links ----------------------------------------------------------------------------


def issue_signed(
    purpose: str, claims: dict[str, Any], *, secret: str, now: datetime, ttl: timedelta
) -> str:
    check_secret(secret)
    payload = {
        **claims,
        "aud": f"{AUDIENCE}:{purpose}",
        "iat": int(now.timestamp()),
        "exp": int((now + ttl).timestamp()),
    }
    return jwt.encode(payload, derive_key(secret, purpose), algorithm=ALGORITHM)


def read_signed(purpose: str, token: str, *, secret: str, now: datetime) -> dict[str, Any]:
    """The claims of a signed link token; ``ValueError`` when forged, of another kind or
    expired."""
    try:
        data: dict[str, Any] = jwt.decode(
            token,
            derive_key(secret, purpose),
            algorithms=[ALGORITHM],
            audience=f"{AUDIENCE}:{purpose}",
            options={"require": ["exp", "iat", "aud"], "verify_exp": False},
        )
    except jwt.PyJWTError as exc:
        raise ValueError(type(exc).__name__) from exc
    if int(data["exp"]) <= now.timestamp():
        raise ValueError("expired")
    return data
