from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiogram import BaseMiddleware
from aiogram.dispatcher.flags import get_flag
from aiogram.types import CallbackQuery, Message, TelegramObject, User
from aiogram.utils.i18n import I18n, I18nMiddleware

from bot.context import BotContext
from bot.keyboards import consent_keyboard
from bot.texts import consent_text
from core.dto import UserDTO
from core.services import accounts
from db.engine import UnitOfWorkFactory

log = logging.getLogger(__name__)

Handler = Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]]


class UnitOfWorkMiddleware(BaseMiddleware):
    """One unit of work per update, and the account of whoever sent it."""

    def __init__(self, uow_factory: UnitOfWorkFactory) -> None:
        self.uow_factory = uow_factory

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        async with self.uow_factory() as uow:
            data["uow"] = uow
            tg_user: User | None = data.get("event_from_user")
            user = None
            if tg_user is not None and not tg_user.is_bot:
                # One statement outside any transaction: nothing stays open while the handler
                # talks to Telegram.
                user = await accounts.for_update_intake(uow, tg_user.id)
            data["user"] = user
            return await handler(event, data)


class LocaleMiddleware(I18nMiddleware):
    """The account's interface language, else the one Telegram reports."""

    def __init__(self, i18n: I18n) -> None:
        super().__init__(i18n)

    async def get_locale(self, event: TelegramObject, data: dict[str, Any]) -> str:
        user: UserDTO | None = data.get("user")
        if user is not None:
            return user.language
        tg_user: User | None = data.get("event_from_user")
        return accounts.pick_language(tg_user.language_code if tg_user else None)


class ConsentGateMiddleware(BaseMiddleware):
    """Nothing works until the current policy is accepted; blocked accounts get nothing.

    Handlers flagged ``consent_free`` (``/start``, the Accept button, the policy text) pass.
    """

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        if get_flag(data, "consent_free"):
            return await handler(event, data)
        user: UserDTO | None = data.get("user")
        ctx: BotContext = data["ctx"]
        if user is not None and user.is_blocked:
            return None
        if user is not None and not user.needs_consent(ctx.policy_version):
            await accounts.record_activity(data["uow"], user, now=ctx.clock())
            return await handler(event, data)
        chat = data.get("event_chat")
        if chat is not None and chat.type != "private":
            # Consent is given in the private chat; in groups the bot stays quiet until then.
            return None
        text = consent_text(ctx, renewed=user is not None)
        keyboard = consent_keyboard(ctx.policy_version, renewed=user is not None)
        if isinstance(event, Message):
            await event.answer(text, reply_markup=keyboard)
        elif isinstance(event, CallbackQuery):
            await event.answer()
            if event.message is not None:
                await event.bot.send_message(  # type: ignore[union-attr]
                    event.message.chat.id, text, reply_markup=keyboard
                )
        return None
