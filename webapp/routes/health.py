"""Health of the process and of what it depends on.

``GET /healthz`` is the liveness check: 200 for as long as the process serves HTTP, whatever its
dependencies do (a supervisor that restarted NetRoom because Redis blinked would only add an
outage), with each dependency's state in the body: ``{"status": "ok" | "degraded",
"postgres": "ok" | "down", "redis": "ok" | "down"}``. ``GET /readyz`` has the same body and
answers 503 while a dependency is down: the check for a load balancer choosing where to send
traffic. Both probe Postgres and Redis at once, each within ``PROBE_TIMEOUT``, so an answer
takes under a second even when a server hangs instead of refusing.
"""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web
from sqlalchemy import text

from webapp.keys import CONTEXT, WebContext

log = logging.getLogger(__name__)

PROBE_TIMEOUT = 0.8


async def _postgres(ctx: WebContext) -> str:
    try:
        async with asyncio.timeout(PROBE_TIMEOUT), ctx.uow_factory() as uow:
            await uow.session.execute(text("SELECT 1"))
    except Exception as exc:
        log.debug("health: postgres: %s", type(exc).__name__)
        return "down"
    return "ok"


async def _redis(ctx: WebContext) -> str:
    try:
        async with asyncio.timeout(PROBE_TIMEOUT):
            await ctx.redis.ping()
    except Exception as exc:
        log.debug("health: redis: %s", type(exc).__name__)
        return "down"
    return "ok"


async def dependencies(ctx: WebContext) -> dict[str, str]:
    postgres, redis = await asyncio.gather(_postgres(ctx), _redis(ctx))
    healthy = postgres == "ok" and redis == "ok"
    return {"status": "ok" if healthy else "degraded", "postgres": postgres, "redis": redis}


async def healthz(request: web.Request) -> web.Response:
    return web.json_response(await dependencies(request.app[CONTEXT]))


async def readyz(request: web.Request) -> web.Response:
    body = await dependencies(request.app[CONTEXT])
    return web.json_response(body, status=200 if body["status"] == "ok" else 503)


def setup(app: web.Application) -> None:
    app.router.add_get("/healthz", healthz, name="healthz")
    app.router.add_get("/readyz", readyz, name="readyz")
