from __future__ import annotations

import asyncio
import logging

from aiohttp import web
from sqlalchemy import text

from webapp.keys import CONTEXT

log = logging.getLogger(__name__)


async def healthz(request: web.Request) -> web.Response:
    """Postgres and Redis both answer within two seconds, or 503 says which does not."""
    ctx = request.app[CONTEXT]
    checks: dict[str, str] = {}
    try:
        async with asyncio.timeout(2), ctx.uow_factory() as uow:
            await uow.session.execute(text("SELECT 1"))
        checks["postgres"] = "ok"
    except Exception as exc:
        log.warning("health: postgres: %s", type(exc).__name__)
        checks["postgres"] = "down"
    try:
        async with asyncio.timeout(2):
            await ctx.redis.ping()
        checks["redis"] = "ok"
    except Exception as exc:
        log.warning("health: redis: %s", type(exc).__name__)
        checks["redis"] = "down"
    healthy = all(v == "ok" for v in checks.values())
    return web.json_response(
        {"status": "ok" if healthy else "down", **checks}, status=200 if healthy else 503
    )


def setup(app: web.Application) -> None:
    app.router.add_get("/healthz", healthz, name="healthz")
