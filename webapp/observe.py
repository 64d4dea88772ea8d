"""Each request counted and timed by its route's pattern (never its path: ids would make every
user a series of their own), and a request id on every log line written while it is answered
(core/metrics.py, core/logs.py). The id is the caller's ``X-Request-Id`` when it is a short
token, else a new one; the response carries it back."""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Awaitable, Callable

from aiohttp import web

from core import logs, metrics

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
REQUEST_ID = web.RequestKey("request_id", str)
_GIVEN_ID = re.compile(r"[A-Za-z0-9._-]{8,64}")
# Any token is a method to aiohttp: others are counted together, so no caller can make series.
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def route_pattern(request: web.Request) -> str:
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else "(unmatched)"


@web.middleware
async def observe_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    given = request.headers.get("X-Request-Id", "")
    rid = given if _GIVEN_ID.fullmatch(given) else secrets.token_hex(8)
    request[REQUEST_ID] = rid
    started = time.perf_counter()
    status = 500
    with logs.bound(logs.request_id, rid):
        try:
            response = await handler(request)
            status = response.status
            return response
        except web.HTTPException as exc:
            status = exc.status
            raise
        finally:
            route = route_pattern(request)
            method = request.method if request.method in METHODS else "OTHER"
            metrics.WEB_REQUESTS.labels(method, route, str(status)).inc()
            metrics.WEB_SECONDS.labels(method, route).observe(time.perf_counter() - started)


async def _echo_request_id(request: web.Request, response: web.StreamResponse) -> None:
    rid = request.get(REQUEST_ID)
    if rid is not None:
        response.headers.setdefault("X-Request-Id", rid)


def setup(app: web.Application) -> None:
    app.middlewares.insert(0, observe_middleware)
    app.on_response_prepare.append(_echo_request_id)
