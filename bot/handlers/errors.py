"""The one place where domain errors become messages in the bot."""

from __future__ import annotations

import logging
from contextlib import suppress

from aiogram import Bot, Router
from aiogram.exceptions import TelegramAPIError
from aiogram.types import ErrorEvent
from aiogram.utils.i18n import gettext as _

from bot.texts import generic_error_text
from core.errors import DomainError

log = logging.getLogger(__name__)
router = Router(name="errors")


@router.error()
async def on_error(event: ErrorEvent, bot: Bot) -> None:
    exc = event.exception
    update = event.update
    if isinstance(exc, DomainError):
        log.info("update %s: %s (%s)", update.update_id, exc.code, exc.detail)
        text = _(exc.msgid).format(**exc.params)
    else:
        log.exception("update %s failed", update.update_id, exc_info=exc)
        text = generic_error_text()
    chat_id = None
    if update.message is not None:
        chat_id = update.message.chat.id
    elif update.callback_query is not None:
        chat_id = update.callback_query.from_user.id
        with suppress(TelegramAPIError):  # it may have been answered before the failure
            await update.callback_query.answer()
    if chat_id is not None:
        with suppress(TelegramAPIError):
            await bot.send_message(chat_id, text)
