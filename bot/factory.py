from __future__ import annotations

from typing import Any

from aiogram import Bot
from aiogram.client.default import DefaultBotProperties
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.enums import ParseMode
from aiogram.methods import Response, TelegramMethod

from bot.observe import TelegramCallMetrics
from bot.pacing import Limits, SendPacer
from bot.retry import RetryAfterMiddleware

TELEGRAM_API = "https://api.telegram.org"

# aiogram reads every answer as ``Response[<the method's result type>]``. pydantic keeps such a
# class only while something refers to it, so each garbage collection dropped them and the next
# answers built them again (over half a millisecond of CPU each); held here, each is built once.
_RESPONSE_TYPES: dict[Any, Any] = {}


class Session(AiohttpSession):
    """aiogram's aiohttp session, with the answer types built once per process."""

    def check_response(
        self, bot: Bot, method: TelegramMethod[Any], status_code: int, content: str
    ) -> Response[Any]:
        returning = method.__returning__
        if returning not in _RESPONSE_TYPES:
            _RESPONSE_TYPES[returning] = Response[returning]  # type: ignore[valid-type]
        return super().check_response(bot, method, status_code, content)


def create_bot(
    token: str,
    api_base: str = TELEGRAM_API,
    *,
    pacing: bool = True,
    limits: Limits | None = None,
) -> Bot:
    """The bot with its send pacer (``bot.pacing``): every API call of this ``Bot`` shares one
    budget, Telegram's limits unless ``limits`` says otherwise. Without pacing a 429 is retried
    a few times and then reaches the caller."""
    session = Session(api=TelegramAPIServer.from_base(api_base.rstrip("/")))
    session.middleware(SendPacer(limits) if pacing else RetryAfterMiddleware())
    # Inside the pacer: each attempt that reaches Telegram is counted.
    session.middleware(TelegramCallMetrics())
    return Bot(token, session=session, default=DefaultBotProperties(parse_mode=ParseMode.HTML))
