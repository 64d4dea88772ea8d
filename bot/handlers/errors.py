"""The one place where domain errors become messages in the bot.

A Postgres or Redis outage met anywhere in an update (the unit of work, the FSM storage, the busy
flags, a handler) is answered as ``ServiceUnavailable``: the person is asked to try again in a
moment (in private chats and on buttons; a group hears nothing, since whether the bot was
addressed could not be checked), and the update loop goes on. It is logged on one line,
without a traceback: an outage is not a bug, and a long one must not flood the log.
"""

from __future__ import annotations

import logging
from contextlib import suppress

from aiogram import Bot, Router
from aiogram.exceptions import TelegramAPIError
from aiogram.types import ErrorEvent
from aiogram.utils.i18n import gettext as _

from bot.texts import generic_error_text
from core.errors import DomainError
from core.outages import as_unavailable

log = logging.getLogger(__name__)
router = Router(name="errors")


@router.error()
async def on_error(event: ErrorEvent, bot: Bot) -> None:
    exc = event.exception
    update = event.update
    outage = None if isinstance(exc, DomainError) else as_unavailable(exc)
    if outage is not None:
        log.warning(
            "update %s: %s unreachable (%s)", update.update_id, outage.detail, type(exc).__name__
        )
        text = _(outage.msgid)
    elif isinstance(exc, DomainError):
        log.info("update %s: %s (%s)", update.update_id, exc.code, exc.detail)
        text = _(exc.msgid).format(**exc.params)
    else:
        log.exception("update %s failed", update.update_id, exc_info=exc)
        text = generic_error_text()
    chat_id = None
    message = update.message or update.edited_message
    if message is not None:
        # In groups the bot speaks only when addressed, which an outage may not let it check.
        if outage is None or message.chat.type == "private":
            chat_id = message.chat.id
    elif update.callback_query is not None:
        chat_id = update.callback_query.from_user.id
        with suppress(TelegramAPIError):  # it may have been answered before the failure
            await update.callback_query.answer()
    if chat_id is not None:
        with suppress(TelegramAPIError):
            await bot.send_message(chat_id, text)
