from __future__ import annotations

from aiogram.types import InlineKeyboardMarkup, WebAppInfo
from aiogram.utils.i18n import gettext as _
from aiogram.utils.keyboard import InlineKeyboardBuilder

from bot.callbacks import (
    ConsentCallback,
    DeclineCallback,
    HistoryCallback,
    LanguageCallback,
    MenuCallback,
    TopUpCallback,
)
from bot.texts import money
from core.services.payments import StarOffer

LANGUAGE_NAMES = {"en": "English", "ru": "Русский"}


def consent_keyboard(policy_version: str, *, renewed: bool = False) -> InlineKeyboardMarkup:
    """Accept; and for an existing account asked about a new version, decline (which leads to
    erasure, as the policy says)."""
    builder = InlineKeyboardBuilder()
    builder.button(text=_("✅ Accept"), callback_data=ConsentCallback(version=policy_version))
    if renewed:
        builder.button(
            text=_("✖️ Decline and delete my account"),
            callback_data=DeclineCallback(version=policy_version),
        )
        builder.adjust(1)
    return builder.as_markup()


def main_menu(web_app_url: str) -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    builder.button(text=_("🚀 Open NetRoom"), web_app=WebAppInfo(url=web_app_url))
    builder.button(text=_("💰 Balance"), callback_data=MenuCallback(action="balance"))
    builder.button(text=_("👥 Invite friends"), callback_data=MenuCallback(action="referral"))
    builder.button(text=_("🌐 Language"), callback_data=MenuCallback(action="language"))
    builder.button(text=_("🔒 Privacy"), callback_data=MenuCallback(action="privacy"))
    builder.adjust(1, 2, 2)
    return builder.as_markup()


def top_up_keyboard(offers: list[StarOffer], language: str) -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    for offer in offers:
        builder.button(
            text=f"⭐️ {offer.stars} → {money(offer.kopecks, language)}",
            callback_data=TopUpCallback(stars=offer.stars),
        )
    builder.adjust(1)
    return builder.as_markup()


def history_keyboard(older_than: int | None) -> InlineKeyboardMarkup | None:
    if older_than is None:
        return None
    builder = InlineKeyboardBuilder()
    builder.button(text=_("⬅️ Older"), callback_data=HistoryCallback(before=older_than))
    return builder.as_markup()


def language_keyboard(current: str) -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    for code, name in LANGUAGE_NAMES.items():
        mark = "• " if code == current else ""
        builder.button(text=f"{mark}{name}", callback_data=LanguageCallback(code=code))
    builder.adjust(2)
    return builder.as_markup()
