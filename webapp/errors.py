"""The one place where domain errors become HTTP answers.

A Postgres or Redis outage met by a request is ``ServiceUnavailable``: 503 with
``{"error": "unavailable", "message"}`` and a Retry-After, logged on one line (an outage is not
a bug); anything else unforeseen is a 500 with a generic message and a traceback in the log.
"""

from __future__ import annotations

import logging

from aiohttp import web
from aiohttp.typedefs import Handler

from core.errors import (
    ConsentRequired,
    DomainError,
    Forbidden,
    InvalidInput,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    RateLimited,
    ServiceUnavailable,
    ShuttingDown,
    Unauthorized,
    UnsupportedMediaType,
    UserBlocked,
)
from core.mail import MailNotSent
from core.oauth import OAuthUnavailable
from core.outages import as_unavailable
from core.payments.yookassa import PaymentGatewayError
from core.services import audit
from core.services.accounts import IdentityTaken
from core.services.auth import ConsentMissing, EmailTaken
from core.services.billing import InsufficientFunds
from core.services.subscriptions import AlreadySubscribed, RenewalRefused
from core.services.turn_lock import ReplyInProgress
from webapp.i18n import render_page, request_language, translations
from webapp.keys import CONTEXT, USER_ID

log = logging.getLogger(__name__)

STATUS: dict[type[DomainError], int] = {
    NotFound: 404,
    Forbidden: 403,
    UserBlocked: 403,
    ConsentRequired: 403,
    UnsupportedMediaType: 415,
    PayloadTooLarge: 413,
    MethodNotAllowed: 405,
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
    ServiceUnavailable: 503,
    ShuttingDown: 503,
}
# Seconds a client is asked to wait after a dependency outage.
OUTAGE_RETRY_AFTER = 10


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
        return domain_error_response(request, exc)
    except web.HTTPException as exc:
        if exc.status >= 400 and request.path.startswith("/api/"):
            # The router's own refusals (no such route, another method, a body over aiohttp's
            # limit) answer in the API's one error shape too.
            return http_error_response(request, exc)
        if exc.status == 404:
            return not_found(request)
        raise
    except Exception as exc:
        outage = as_unavailable(exc)
        if outage is not None:
            log.warning(
                "%s %s: %s unreachable (%s)",
                request.method,
                _route(request),
                outage.detail,
                type(exc).__name__,
            )
            return domain_error_response(request, outage)
        log.exception("%s %s failed", request.method, _route(request))
        message = translations(request_language(request)).gettext(DomainError.msgid)
        return web.json_response({"error": "internal", "message": message}, status=500)


def not_found(request: web.Request) -> web.StreamResponse:
    """An unknown address: the API's JSON error for /api, a page people can go on from for the
    rest (files under /static and /media stay a bare 404)."""
    if request.path.startswith("/api/") or request.path == "/api":
        return domain_error_response(request, NotFound(request.path))
    if request.path.startswith(("/static/", "/media/")):
        return web.Response(status=404, text="404: Not Found")
    response = render_page(request, "not_found.html", {})
    response.set_status(404)
    return response


def domain_error_response(request: web.Request, exc: DomainError) -> web.Response:
    message = translations(request_language(request)).gettext(exc.msgid).format(**exc.params)
    # Limits say when to come back (TooManyAttempts and the like), and so does an outage.
    retry_after = getattr(exc, "retry_after", None)
    if isinstance(exc, ServiceUnavailable):
        retry_after = OUTAGE_RETRY_AFTER
    headers = {"Retry-After": str(retry_after)} if isinstance(retry_after, int) else None
    body: dict[str, object] = {"error": exc.code, "message": message}
    if isinstance(fields := exc.params.get("fields"), list):
        # Which input was refused, for forms to point at.
        body["fields"] = fields
    return web.json_response(body, status=status_for(exc), headers=headers)


HTTP_ERRORS: dict[int, type[DomainError]] = {
    404: NotFound,
    405: MethodNotAllowed,
    413: PayloadTooLarge,
}


def http_error_response(request: web.Request, exc: web.HTTPException) -> web.Response:
    error = HTTP_ERRORS.get(exc.status, InvalidInput)(f"{exc.status} {exc.reason}")
    response = domain_error_response(request, error)
    response.set_status(exc.status)
    if "Allow" in exc.headers:
        response.headers["Allow"] = exc.headers["Allow"]
    return response


UNLOGGED = ("/static/", "/healthz", "/readyz", "/metrics")


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
            except Exception as exc:
                if (outage := as_unavailable(exc)) is not None:
                    log.warning("request log not written: %s unreachable", outage.detail)
                else:
                    log.exception("request log not written")
