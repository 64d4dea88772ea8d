"""The one place where domain errors become HTTP answers."""

from __future__ import annotations

import logging

from aiohttp import web
from aiohttp.typedefs import Handler

from core.errors import (
    ConsentRequired,
    DomainError,
    Forbidden,
    InvalidInput,
    NotFound,
    RateLimited,
    ShuttingDown,
    Unauthorized,
    UserBlocked,
)
from core.mail import MailNotSent
from core.oauth import OAuthUnavailable
from core.payments.yookassa import PaymentGatewayError
from core.services import audit
from core.services.accounts import IdentityTaken
from core.services.auth import ConsentMissing, EmailTaken
from core.services.billing import InsufficientFunds
from core.services.chat import ReplyInProgress
from core.services.subscriptions import AlreadySubscribed, RenewalRefused
from webapp.i18n import request_language, translations
from webapp.keys import CONTEXT, USER_ID

log = logging.getLogger(__name__)

STATUS: dict[type[DomainError], int] = {
    NotFound: 404,
    Forbidden: 403,
    UserBlocked: 403,
    ConsentRequired: 403,
    InvalidInput: 400,
    Unauthorized: 401,
    RateLimited: 429,
    PaymentGatewayError: 502,
    InsufficientFunds: 402,
    ConsentMissing: 400,
    IdentityTaken: 409,
    EmailTaken: 409,
    OAuthUnavailable: 502,
    MailNotSent: 503,
    ReplyInProgress: 409,
    AlreadySubscribed: 409,
    RenewalRefused: 502,
    ShuttingDown: 503,
}


def _route(request: web.Request) -> str:
    """The route's pattern, never the path: paths may carry tokens (share links, sign-in)."""
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else "(no route)"


def status_for(exc: DomainError) -> int:
    for cls in type(exc).__mro__:
        if cls in STATUS:
            return STATUS[cls]
    return 400


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except DomainError as exc:
        log.info("%s %s: %s (%s)", request.method, _route(request), exc.code, exc.detail)
        message = translations(request_language(request)).gettext(exc.msgid).format(**exc.params)
        # Limits say when to come back (TooManyAttempts and the like).
        retry_after = getattr(exc, "retry_after", None)
        headers = {"Retry-After": str(retry_after)} if isinstance(retry_after, int) else None
        return web.json_response(
            {"error": exc.code, "message": message}, status=status_for(exc), headers=headers
        )
    except web.HTTPException:
        raise
    except Exception:
        log.exception("%s %s failed", request.method, _route(request))
        message = translations(request_language(request)).gettext(DomainError.msgid)
        return web.json_response({"error": "internal", "message": message}, status=500)


UNLOGGED = ("/static/", "/healthz")


@web.middleware
async def request_log_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """The technical request log: time, endpoint (the route's pattern), status code."""
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    finally:
        if not request.path.startswith(UNLOGGED):
            route = request.match_info.route.resource
            endpoint = route.canonical if route is not None else "(unmatched)"
            try:
                async with request.app[CONTEXT].uow_factory() as uow:
                    await audit.log_request(
                        uow,
                        user_id=request.get(USER_ID),
                        method=request.method,
                        endpoint=endpoint,
                        status=status,
                    )
            except Exception:
                log.exception("request log not written")
