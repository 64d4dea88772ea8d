"""Access tokens for the web app and the Mini App: JWT, HS256 pinned, with audience and id."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

import jwt

from core.errors import Unauthorized
from core.i18n import N_

AUDIENCE = "netroom"
ALGORITHM = "HS256"


class SessionInvalid(Unauthorized):
    code = "session_invalid"
    msgid = N_("Your session has ended. Please sign in again.")


@dataclass(frozen=True, slots=True)
class AccessClaims:
    user_id: int
    token_id: str
    expires_at: datetime


def issue_access_token(
    user_id: int, *, secret: str, now: datetime, ttl: timedelta
) -> tuple[str, AccessClaims]:
    if len(secret.encode()) < 32 and not secret.startswith("dev-"):
        raise ValueError("the signing secret must be at least 32 bytes")
    claims = AccessClaims(user_id, secrets.token_urlsafe(16), now + ttl)
    token = jwt.encode(
        {
            "sub": str(user_id),
            "iat": int(now.timestamp()),
            "exp": int(claims.expires_at.timestamp()),
            "aud": AUDIENCE,
            "jti": claims.token_id,
        },
        secret,
        algorithm=ALGORITHM,
    )
    return token, claims


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
        claims = AccessClaims(int(data["sub"]), str(data["jti"]), expires)
    except (jwt.PyJWTError, ValueError, KeyError) as exc:
        raise SessionInvalid(type(exc).__name__) from exc
    if claims.expires_at <= now:
        raise SessionInvalid("expired")
    return claims
