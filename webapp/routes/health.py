"""Health of the process and of what it depends on, and its metrics.

``GET /healthz`` is the liveness check: 200 for as long as the process serves HTTP, whatever its
dependencies do (a supervisor that restarted NetRoom because Redis blinked would only add an
outage), with each dependency's state in the body: ``{"status": "ok" | "degraded",
"postgres": "ok" | "down", "redis": "ok" | "down"}``.

``GET /readyz`` is the check for a load balancer choosing where to send traffic: 503 while any
part is not ready, and the body names each part: ``postgres``, ``redis``, ``migrations``
("ok", "behind": the schema is not at the head this code expects, or "unknown" while Postgres
is down) and, where the process has a bot, ``bot_api`` (``getMe`` answered; its answer is kept
``BOT_API_TTL`` seconds, a failure ``BOT_API_RETRY`` seconds, so probes never flood Telegram).
Every probe runs at once within ``PROBE_TIMEOUT``, so an answer takes about a second at most
even when a server hangs instead of refusing.

``GET /metrics`` is the Prometheus exposition (core/metrics.py): from this machine without a
proxy in between, or with ``Authorization: Bearer <METRICS__TOKEN>``; anyone else gets 404.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from aiohttp import web
from sqlalchemy import text

from core import metrics
from db.migrate import schema_at_head
from webapp.clientip import client_address
from webapp.keys import CONTEXT, WebContext

log = logging.getLogger(__name__)

PROBE_TIMEOUT = 0.8
BOT_API_TIMEOUT = 3.0
BOT_API_TTL = 30.0
BOT_API_RETRY = 5.0
# Headers a reverse proxy adds: a request carrying one did not come from this machine.
PROXY_HEADERS = ("X-Forwarded-For", "Forwarded", "X-Real-IP")


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


async def _postgres_and_schema(ctx: WebContext) -> tuple[str, str]:
    """Postgres, and whether its schema is at the head (one query answers both)."""
    try:
        async with asyncio.timeout(PROBE_TIMEOUT), ctx.uow_factory() as uow:
            at_head = await schema_at_head(uow.session)
    except Exception as exc:
        log.debug("health: postgres: %s", type(exc).__name__)
        return "down", "unknown"
    return "ok", "ok" if at_head else "behind"


@dataclass
class _BotApiState:
    answer: str = "unknown"
    until: float = 0.0
    lock: asyncio.Lock | None = None


BOT_API_STATE = web.AppKey("bot_api_state", _BotApiState)


async def _bot_api(app: web.Application) -> str | None:
    probe = app[CONTEXT].bot_api_probe
    if probe is None:
        return None
    state = app[BOT_API_STATE]
    loop = asyncio.get_running_loop()
    if state.lock is None:
        state.lock = asyncio.Lock()
    async with state.lock:
        if loop.time() < state.until:
            return state.answer
        try:
            async with asyncio.timeout(BOT_API_TIMEOUT):
                await probe()
            state.answer, state.until = "ok", loop.time() + BOT_API_TTL
        except Exception as exc:
            log.debug("health: bot api: %s", type(exc).__name__)
            state.answer, state.until = "down", loop.time() + BOT_API_RETRY
        return state.answer


async def dependencies(ctx: WebContext) -> dict[str, str]:
    postgres, redis = await asyncio.gather(_postgres(ctx), _redis(ctx))
    healthy = postgres == "ok" and redis == "ok"
    return {"status": "ok" if healthy else "degraded", "postgres": postgres, "redis": redis}


async def healthz(request: web.Request) -> web.Response:
    return web.json_response(await dependencies(request.app[CONTEXT]))


async def readyz(request: web.Request) -> web.Response:
    ctx = request.app[CONTEXT]
    (postgres, migrations), redis, bot_api = await asyncio.gather(
        _postgres_and_schema(ctx), _redis(ctx), _bot_api(request.app)
    )
    parts = {"postgres": postgres, "redis": redis, "migrations": migrations}
    if bot_api is not None:
        parts["bot_api"] = bot_api
    ready = all(state == "ok" for state in parts.values())
    return web.json_response(
        {"status": "ok" if ready else "not ready", **parts}, status=200 if ready else 503
    )


def _local(request: web.Request) -> bool:
    address = client_address(request)
    return (
        address is not None
        and address.is_loopback
        and not any(h in request.headers for h in PROXY_HEADERS)
    )


async def metrics_page(request: web.Request) -> web.Response:
    ctx = request.app[CONTEXT]
    if not metrics.authorized(
        ctx.metrics_token, request.headers.get("Authorization"), local=_local(request)
    ):
        raise web.HTTPNotFound()
    body, content_type = await metrics.exposition(ctx.metrics_refreshers)
    response = web.Response(body=body)
    response.headers["Content-Type"] = content_type
    return response


def setup(app: web.Application) -> None:
    app[BOT_API_STATE] = _BotApiState()
    app.router.add_get("/healthz", healthz, name="healthz")
    app.router.add_get("/readyz", readyz, name="readyz")
    app.router.add_get("/metrics", metrics_page, name="metrics")
