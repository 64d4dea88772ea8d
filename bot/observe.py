"""What the bot tells the operator: metrics and log context for each update, and a count of
every Bot API call (core/metrics.py, core/logs.py)."""

from __future__ import annotations

import time
from typing import Any

from aiogram import BaseMiddleware, Bot
from aiogram.client.session.middlewares.base import BaseRequestMiddleware, NextRequestMiddlewareType
from aiogram.exceptions import TelegramRetryAfter
from aiogram.methods import TelegramMethod
from aiogram.methods.base import Response, TelegramType
from aiogram.types import TelegramObject, Update

from bot.middlewares import Handler
from core import logs, metrics


class UpdateMetricsMiddleware(BaseMiddleware):
    """The outermost of ours: each update counted and timed by type, and its id on every log
    line written while it is handled."""

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        if not isinstance(event, Update):
            return await handler(event, data)
        kind = event.event_type
        started = time.perf_counter()
        result = "error"
        with logs.bound(logs.update_id, event.update_id):
            try:
                response = await handler(event, data)
                result = "ok"
                return response
            finally:
                metrics.UPDATES.labels(kind, result).inc()
                metrics.UPDATE_SECONDS.labels(kind).observe(time.perf_counter() - started)


class TelegramCallMetrics(BaseRequestMiddleware):
    """Each request that reaches the Bot API, by method: ok, 429 (flood control) or error.
    Installed inside the pacer, so every retry of a refused call is counted too."""

    async def __call__(
        self,
        make_request: NextRequestMiddlewareType[TelegramType],
        bot: Bot,
        method: TelegramMethod[TelegramType],
    ) -> Response[TelegramType]:
        name = method.__api_method__
        try:
            response = await make_request(bot, method)
        except TelegramRetryAfter:
            metrics.TELEGRAM_CALLS.labels(name, "429").inc()
            raise
        except Exception:
            metrics.TELEGRAM_CALLS.labels(name, "error").inc()
            raise
        metrics.TELEGRAM_CALLS.labels(name, "ok").inc()
        return response
