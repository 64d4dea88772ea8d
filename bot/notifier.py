"""The core's way to reach a user when something finishes in the background."""

from __future__ import annotations

import logging
from collections.abc import Mapping

from aiogram import Bot
from aiogram.exceptions import TelegramBadRequest, TelegramForbiddenError, TelegramRetryAfter
from aiogram.types import BufferedInputFile
from aiogram.utils.i18n import I18n

from bot.texts import media_caption, referral_earning_text, topped_up_text
from core.services.chat import display_name

log = logging.getLogger(__name__)


class BotNotifier:
    def __init__(self, bot: Bot, i18n: I18n, model_names: Mapping[str, str] | None = None) -> None:
        self.bot = bot
        self.i18n = i18n
        # Every catalogue model's display name by id (``Catalogue.names``).
        self.model_names = model_names or {}

    async def send_video(
        self,
        *,
        telegram_id: int,
        data: bytes,
        file_name: str,
        prompt: str,
        model_id: str,
        charged: int,
        language: str,
    ) -> None:
        with self.i18n.context(), self.i18n.use_locale(language):
            model = display_name(self.model_names, model_id)
            caption = media_caption("🎬", model, charged, prompt, language)
        await self.bot.send_video(
            telegram_id,
            BufferedInputFile(data, filename=file_name),
            caption=caption,
            supports_streaming=True,
        )

    async def send_notice(
        self, *, telegram_id: int, msgid: str, language: str, **params: object
    ) -> None:
        text = self.i18n.gettext(msgid, locale=language)
        await self.bot.send_message(telegram_id, text.format(**params) if params else text)

    async def send_referral_earning(
        self, *, telegram_id: int, amount: int, level: int, language: str
    ) -> None:
        with self.i18n.context(), self.i18n.use_locale(language):
            text = referral_earning_text(amount, level, language)
        await self.bot.send_message(telegram_id, text)

    async def send_top_up(
        self, *, telegram_id: int, credited: int, balance: int, language: str
    ) -> None:
        with self.i18n.context(), self.i18n.use_locale(language):
            text = topped_up_text(credited, balance, language)
        await self.bot.send_message(telegram_id, text)

    async def send_admin_report(self, *, chat_ids: tuple[int, ...], text: str) -> None:
        """A long report goes as several messages, cut between lines."""
        parts = _cut(text, REPORT_LIMIT)
        for chat_id in chat_ids:
            for part in parts:
                await self.bot.send_message(chat_id, part, parse_mode=None)

    async def copy_message(self, *, telegram_id: int, from_chat_id: int, message_id: int) -> str:
        """``sent``, ``blocked`` (the user blocked the bot) or ``failed``."""
        try:
            await self.bot.copy_message(telegram_id, from_chat_id, message_id)
        except TelegramForbiddenError:
            return "blocked"
        except (TelegramBadRequest, TelegramRetryAfter) as exc:
            log.info("copy to %s failed: %s", telegram_id, exc.message)
            return "failed"
        return "sent"

    async def edit_text(self, *, chat_id: int, message_id: int, text: str) -> None:
        try:
            await self.bot.edit_message_text(
                text, chat_id=chat_id, message_id=message_id, parse_mode=None
            )
        except TelegramBadRequest as exc:
            log.info("progress message not edited: %s", exc.message)

    async def cancel_star_subscription(self, *, telegram_id: int, charge_id: str) -> bool:
        try:
            return await self.bot.edit_user_star_subscription(
                user_id=telegram_id, telegram_payment_charge_id=charge_id, is_canceled=True
            )
        except TelegramBadRequest as exc:
            log.warning("subscription %s not cancelled: %s", charge_id, exc.message)
            return False

    async def erase_support_trace(
        self, *, admin_chat_id: int, topic_id: int | None, message_ids: tuple[int, ...]
    ) -> None:
        try:
            if topic_id is not None:
                await self.bot.delete_forum_topic(admin_chat_id, topic_id)
                return
            for message_id in message_ids:
                try:
                    await self.bot.delete_message(admin_chat_id, message_id)
                except TelegramBadRequest as exc:
                    log.info("support message %s not deleted: %s", message_id, exc.message)
        except (TelegramBadRequest, TelegramForbiddenError) as exc:
            log.warning("support trace in %s not deleted: %s", admin_chat_id, exc.message)


REPORT_LIMIT = 4096


def _cut(text: str, limit: int) -> list[str]:
    parts: list[str] = []
    current = ""
    for line in text.splitlines():
        while len(line) > limit:
            if current:
                parts.append(current)
                current = ""
            parts.append(line[:limit])
            line = line[limit:]
        if current and len(current) + 1 + len(line) > limit:
            parts.append(current)
            current = line
        else:
            current = f"{current}\n{line}" if current else line
    if current or not parts:
        parts.append(current)
    return parts
