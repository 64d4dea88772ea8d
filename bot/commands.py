"""The command menus: everyone's, per interface language, and the operators' own (everyone's
plus the admin commands), set for each admin's private chat.

Telegram refuses a chat-scoped menu for a chat that does not exist yet ("chat not found"), so an
admin who has not opened the bot gets theirs when they first send /start."""

from __future__ import annotations

import logging

from aiogram import Bot
from aiogram.exceptions import TelegramBadRequest, TelegramForbiddenError
from aiogram.types import BotCommand, BotCommandScopeChat, BotCommandScopeDefault
from aiogram.utils.i18n import I18n

from core.i18n import LANGUAGES, N_

log = logging.getLogger(__name__)

COMMANDS = (
    ("new", N_("New conversation")),
    ("model", N_("Choose the model")),
    ("settings", N_("Chat settings")),
    ("presets", N_("Prompt presets")),
    ("files", N_("Your documents")),
    ("image", N_("Draw a picture")),
    ("video", N_("Make a short video")),
    ("media", N_("Your pictures and videos")),
    ("start", N_("Start and main menu")),
    ("menu", N_("Main menu")),
    ("balance", N_("Balance and top-up")),
    ("history", N_("Transaction history")),
    ("promo", N_("Use a promo code")),
    ("referral", N_("Invite friends")),
    ("subscribe", N_("Subscription plans")),
    ("support", N_("Write to support")),
    ("language", N_("Interface language")),
    ("timezone", N_("Time zone")),
    ("privacy", N_("Your data and the privacy policy")),
    ("export", N_("Download a copy of your data")),
    ("delete", N_("Delete your account")),
)

ADMIN_COMMANDS = (
    ("user", N_("Admin: a user's card (id, @username or email)")),
    ("adjust", N_("Admin: add to or take from a balance")),
    ("refund", N_("Admin: refund a Stars payment")),
    ("block", N_("Admin: block an account")),
    ("unblock", N_("Admin: unblock an account")),
    ("stats", N_("Admin: service statistics")),
    ("broadcast", N_("Admin: send a message to every user")),
    ("share_off", N_("Admin: take down a shared conversation")),
)


def _menu(i18n: I18n, language: str, entries: tuple[tuple[str, str], ...]) -> list[BotCommand]:
    return [
        BotCommand(command=name, description=i18n.gettext(text, locale=language))
        for name, text in entries
    ]


async def set_default_commands(bot: Bot, i18n: I18n) -> None:
    """Everyone's menu, per interface language (Telegram picks by the user's app language)."""
    for language in LANGUAGES:
        await bot.set_my_commands(
            _menu(i18n, language, COMMANDS),
            scope=BotCommandScopeDefault(),
            language_code=None if language == "en" else language,
        )


async def set_admin_commands(bot: Bot, i18n: I18n, admin_id: int) -> bool:
    """The operator's menu in their private chat; False when Telegram does not know that chat
    yet (set again at the admin's /start)."""
    try:
        for language in LANGUAGES:
            await bot.set_my_commands(
                _menu(i18n, language, COMMANDS + ADMIN_COMMANDS),
                scope=BotCommandScopeChat(chat_id=admin_id),
                language_code=None if language == "en" else language,
            )
    except (TelegramBadRequest, TelegramForbiddenError) as exc:
        log.info("admin %d: command menu not set yet (%s)", admin_id, exc.message)
        return False
    return True
