"""What the processes tell the operator beyond the transports' own metrics: job runs and the
queue's depth, and the metrics port of `netroom bot` and `netroom worker` (core/metrics.py).

The metrics port is a small aiohttp server of its own with one route, ``/metrics``, under the
same access rule as the web app's (``core.metrics.authorized``); the web app serves its own.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncIterator, Sequence
from ipaddress import ip_address
from typing import Any

from aiohttp import web
from redis.asyncio import Redis
from taskiq import TaskiqMessage, TaskiqMiddleware, TaskiqResult

from core import logs, metrics
from core.config import MetricsSettings

log = logging.getLogger(__name__)

STARTED_LABEL = "_netroom_started"
PROXY_HEADERS = ("X-Forwarded-For", "Forwarded", "X-Real-IP")


class JobMetricsMiddleware(TaskiqMiddleware):
    """Each job run counted and timed by job and status, the last success of each job, and the
    job's id on every log line written while it runs (each message runs in a task of its own,
    so the id set here is the run's only)."""

    async def pre_execute(self, message: TaskiqMessage) -> TaskiqMessage:
        logs.job_id.set(message.task_id)
        message.labels[STARTED_LABEL] = time.perf_counter()
        return message

    async def post_execute(self, message: TaskiqMessage, result: TaskiqResult[Any]) -> None:
        started = message.labels.pop(STARTED_LABEL, None)
        seconds = time.perf_counter() - started if isinstance(started, float) else 0.0
        metrics.job_finished(message.task_name, ok=not result.is_err, seconds=seconds)


def queue_depth(redis: Redis, stream: str, dead: str) -> metrics.Refresher:
    """Reads the queue's depth into its gauge: waiting (in the stream, not yet taken),
    pending (taken by a worker, not acknowledged) and dead (given up on)."""

    async def refresh() -> None:
        async with redis.pipeline(transaction=False) as pipe:
            pipe.xlen(stream)
            pipe.xlen(dead)
            pipe.xpending(stream, "netroom")
            length, dead_count, pending = await pipe.execute(raise_on_error=False)
        if isinstance(length, int):
            # Acknowledged jobs are deleted (XDEL): what is left is waiting or taken.
            taken = pending.get("pending", 0) if isinstance(pending, dict) else 0
            metrics.JOB_QUEUE_DEPTH.labels("waiting").set(max(length - taken, 0))
            metrics.JOB_QUEUE_DEPTH.labels("pending").set(taken)
        if isinstance(dead_count, int):
            metrics.JOB_QUEUE_DEPTH.labels("dead").set(dead_count)

    return refresh


def _local(request: web.Request) -> bool:
    try:
        peer = ip_address((request.remote or "").strip("[]"))
    except ValueError:
        return False
    return peer.is_loopback and not any(h in request.headers for h in PROXY_HEADERS)


def metrics_app(token: str | None, refreshers: Sequence[metrics.Refresher]) -> web.Application:
    async def page(request: web.Request) -> web.Response:
        if not metrics.authorized(
            token, request.headers.get("Authorization"), local=_local(request)
        ):
            raise web.HTTPNotFound()
        body, content_type = await metrics.exposition(refreshers)
        response = web.Response(body=body)
        response.headers["Content-Type"] = content_type
        return response

    app = web.Application()
    app.router.add_get("/metrics", page)
    return app


@contextlib.asynccontextmanager
async def metrics_server(
    settings: MetricsSettings, refreshers: Sequence[metrics.Refresher]
) -> AsyncIterator[None]:
    """Serves /metrics on METRICS__HOST:METRICS__PORT while open (nothing when no port)."""
    if settings.port is None:
        yield
        return
    token = settings.token.get_secret_value() if settings.token else None
    runner = web.AppRunner(metrics_app(token, refreshers), access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, settings.host, settings.port).start()
        log.info("metrics on %s:%s/metrics", settings.host, settings.port)
        yield
    finally:
        await runner.cleanup()
