from __future__ import annotations

from aiogram.types import InlineKeyboardMarkup, WebAppInfo
from aiogram.utils.i18n import gettext as _
from aiogram.utils.keyboard import InlineKeyboardBuilder

from bot.callbacks import ConsentCallback, LanguageCallback, MenuCallback

LANGUAGE_NAMES = {"en": "English", "ru": "Русский"}


def consent_keyboard(policy_version: str) -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    builder.button(text=_("✅ Accept"), callback_data=ConsentCallback(version=policy_version))
    return builder.as_markup()


def main_menu(web_app_url: str) -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    builder.button(text=_("🚀 Open NetRoom"), web_app=WebAppInfo(url=web_app_url))
    builder.button(text=_("👥 Invite friends"), callback_data=MenuCallback(action="referral"))
    builder.button(text=_("🌐 Language"), callback_data=MenuCallback(action="language"))
    builder.button(text=_("🔒 Privacy"), callback_data=MenuCallback(action="privacy"))
    builder.adjust(1, 3)
    return builder.as_markup()


def language_keyboard(current: str) -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    for code, name in LANGUAGE_NAMES.items():
        mark = "• " if code == current else ""
        builder.button(text=f"{mark}{name}", callback_data=LanguageCallback(code=code))
    builder.adjust(2)
    return builder.as_markup()
