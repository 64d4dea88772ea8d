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
    PlanCallback,
    TopUpCallback,
    YooKassaCallback,
)
from bot.texts import money
from core.services.payments import StarOffer
from core.services.tariffs import Plan

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
    builder.button(text=_("💬 Support"), callback_data=MenuCallback(action="support"))
    builder.adjust(1, 2, 2, 1)
    return builder.as_markup()


def top_up_keyboard(
    offers: list[StarOffer],
    language: str,
    *,
    rubles: tuple[int, ...] = (),
    plans: bool = False,
) -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    for offer in offers:
        builder.button(
            text=f"⭐️ {offer.stars} → {money(offer.kopecks, language)}",
            callback_data=TopUpCallback(stars=offer.stars),
        )
    for rub in rubles:
        builder.button(
            text=_("💳 {amount} by card").format(amount=money(rub * 100, language)),
            callback_data=YooKassaCallback(rub=rub),
        )
    if plans:
        builder.button(text=_("⭐️ Subscription plans"), callback_data=MenuCallback(action="plans"))
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


def plans_keyboard(plans: tuple[Plan, ...]) -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    for plan in plans:
        builder.button(
            text=_("Subscribe: {plan} · ⭐️ {stars}").format(plan=plan.id.title(), stars=plan.stars),
            callback_data=PlanCallback(action="buy", id=plan.id),
        )
    builder.adjust(1)
    return builder.as_markup()


def subscription_keyboard(renews: bool) -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    if renews:
        builder.button(text=_("Cancel renewal"), callback_data=PlanCallback(action="cancel"))
    else:
        builder.button(
            text=_("Renew automatically again"), callback_data=PlanCallback(action="resume")
        )
    return builder.as_markup()


def pay_link_keyboard(text: str, url: str) -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    builder.button(text=text, url=url)
    return builder.as_markup()


def support_keyboard() -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    builder.button(text=_("✅ Finish"), callback_data=MenuCallback(action="support_done"))
    return builder.as_markup()
