"""The core's way to reach a user when something finishes in the background."""

from __future__ import annotations

from aiogram import Bot
from aiogram.types import BufferedInputFile
from aiogram.utils.i18n import I18n


class BotNotifier:
    def __init__(self, bot: Bot, i18n: I18n) -> None:
        self.bot = bot
        self.i18n = i18n

    async def send_video(
        self, *, telegram_id: int, data: bytes, file_name: str, caption: str, language: str
    ) -> None:
        await self.bot.send_video(
            telegram_id, BufferedInputFile(data, filename=file_name), caption=caption
        )

    async def send_notice(self, *, telegram_id: int, msgid: str, language: str) -> None:
        await self.bot.send_message(telegram_id, self.i18n.gettext(msgid, locale=language))
