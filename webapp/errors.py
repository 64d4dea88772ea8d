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
    Unauthorized,
    UserBlocked,
)
from webapp.i18n import request_language, translations

log = logging.getLogger(__name__)

STATUS: dict[type[DomainError], int] = {
    NotFound: 404,
    Forbidden: 403,
    UserBlocked: 403,
    ConsentRequired: 403,
    InvalidInput: 400,
    Unauthorized: 401,
    RateLimited: 429,
}


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
        log.info("%s %s: %s (%s)", request.method, request.path, exc.code, exc.detail)
        message = translations(request_language(request)).gettext(exc.msgid).format(**exc.params)
        return web.json_response({"error": exc.code, "message": message}, status=status_for(exc))
    except web.HTTPException:
        raise
    except Exception:
        log.exception("%s %s failed", request.method, request.path)
        message = translations(request_language(request)).gettext(DomainError.msgid)
        return web.json_response({"error": "internal", "message": message}, status=500)
