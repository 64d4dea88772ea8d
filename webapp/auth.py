"""Who is making a request: the bearer token's user, once its session is checked.

The middleware reads ``Authorization: Bearer`` on API requests, verifies the token and checks
in the database that its session is still alive; routes then take the user with
``webapp.routes.api.user_id_of``. A refused token is remembered, not answered at once: a route
that needs no user (signing in, say) works whatever stale header a client still sends.
"""

from __future__ import annotations

import re

from aiohttp import web
from aiohttp.typedefs import Handler

from core.errors import DomainError, Unauthorized
from core.security.tokens import SessionInvalid, read_access_token
from core.services import sessions
from webapp.keys import AUTH_FAILURE, CONTEXT, SESSION_ID, USER_ID

BEARER = re.compile(r"^Bearer ([A-Za-z0-9._-]+)$")


async def _authenticate(request: web.Request, token: str) -> None:
    ctx = request.app[CONTEXT]
    now = ctx.clock()
    claims = read_access_token(token, secret=ctx.jwt_secret, now=now)
    if claims.session_id is None:
        # Every token names its session, so signing out and deletion can end it.
        raise SessionInvalid("token without a session")
    async with ctx.uow_factory() as uow:
        await sessions.check(uow, session_id=claims.session_id, user_id=claims.user_id, now=now)
    request[USER_ID] = claims.user_id
    request[SESSION_ID] = claims.session_id


@web.middleware
async def session_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    header = request.headers.get("Authorization")
    if header is not None and request.path.startswith("/api/"):
        match = BEARER.match(header)
        if match is None:
            if header.startswith("Bearer "):
                request[AUTH_FAILURE] = SessionInvalid("malformed bearer token")
        else:
            try:
                await _authenticate(request, match.group(1))
            except DomainError as exc:
                request[AUTH_FAILURE] = exc
    return await handler(request)


def bearer_user(request: web.Request) -> int:
    """The user of the request's bearer token; ``Unauthorized`` without a valid one."""
    failure = request.get(AUTH_FAILURE)
    if failure is not None:
        raise failure
    user_id = request.get(USER_ID)
    if user_id is None:
        raise Unauthorized("no bearer token")
    return user_id


def bearer_session(request: web.Request) -> tuple[int, str]:
    """The user and the session of the request's bearer token."""
    user_id = bearer_user(request)
    session_id = request.get(SESSION_ID)
    if session_id is None:
        raise SessionInvalid("token without a session")
    return user_id, session_id


def install(app: web.Application) -> None:
    app.middlewares.append(session_middleware)
