from __future__ import annotations

from aiogram import Bot
from aiogram.client.default import DefaultBotProperties
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.enums import ParseMode

from bot.observe import TelegramCallMetrics
from bot.pacing import Limits, SendPacer
from bot.retry import RetryAfterMiddleware

TELEGRAM_API = "https://api.telegram.org"


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
    session = AiohttpSession(api=TelegramAPIServer.from_base(api_base.rstrip("/")))
    session.middleware(SendPacer(limits) if pacing else RetryAfterMiddleware())
    # Inside the pacer: each attempt that reaches Telegram is counted.
    session.middleware(TelegramCallMetrics())
    return Bot(token, session=session, default=DefaultBotProperties(parse_mode=ParseMode.HTML))
