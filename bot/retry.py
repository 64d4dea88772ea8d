"""Flood control: when Telegram answers 429, wait the ``retry_after`` it names and try again."""

from __future__ import annotations

import asyncio
import logging

from aiogram import Bot
from aiogram.client.session.middlewares.base import BaseRequestMiddleware, NextRequestMiddlewareType
from aiogram.exceptions import TelegramRetryAfter
from aiogram.methods import TelegramMethod
from aiogram.methods.base import Response, TelegramType

log = logging.getLogger(__name__)


class RetryAfterMiddleware(BaseRequestMiddleware):
    """Retries a request Telegram refused for flood control, a few times, waiting as told.

    Waits longer than ``max_wait`` seconds are not absorbed: the error reaches the caller, which
    knows whether the message is still worth sending."""

    def __init__(self, attempts: int = 3, max_wait: float = 30.0) -> None:
        self.attempts = attempts
        self.max_wait = max_wait

    async def __call__(
        self,
        make_request: NextRequestMiddlewareType[TelegramType],
        bot: Bot,
        method: TelegramMethod[TelegramType],
    ) -> Response[TelegramType]:
        for attempt in range(1, self.attempts + 1):
            try:
                return await make_request(bot, method)
            except TelegramRetryAfter as exc:
                if attempt == self.attempts or exc.retry_after > self.max_wait:
                    raise
                log.info("flood control on %s: waiting %ss", type(method).__name__, exc.retry_after)
                await asyncio.sleep(exc.retry_after)
        raise AssertionError("unreachable")
