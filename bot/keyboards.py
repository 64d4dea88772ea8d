from __future__ import annotations

from aiogram.filters.callback_data import CallbackData
from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup, WebAppInfo
from aiogram.utils.i18n import gettext as _
from aiogram.utils.keyboard import InlineKeyboardBuilder

from bot.callbacks import (
    ConsentCallback,
    CostCallback,
    DeclineCallback,
    HistoryCallback,
    LanguageCallback,
    MenuCallback,
    PlanCallback,
    RateCallback,
    RedoCallback,
    RedoModelsCallback,
    ReplacedCallback,
    TopUpCallback,
    YooKassaCallback,
)
from bot.texts import money
from core.services.chat import ModelMenu
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


def reply_keyboard(prompt_id: int, rating: int | None = None) -> InlineKeyboardMarkup:
    """Under a reply: ask again (the same model, another one), rate it, what it cost. The
    buttons name the turn by its stored prompt. Built directly: one goes with every reply, and
    the builder copies what it built."""
    return InlineKeyboardMarkup(
        inline_keyboard=[
            [
                _button("🔄", RedoCallback(m=prompt_id)),
                _button("🔀", RedoModelsCallback(m=prompt_id)),
                _button("👍✓" if rating == 1 else "👍", RateCallback(m=prompt_id, v=1)),
                _button("👎✓" if rating == -1 else "👎", RateCallback(m=prompt_id, v=-1)),
                _button("ℹ️", CostCallback(m=prompt_id)),
            ]
        ]
    )


def one_button(text: str, data: CallbackData) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(inline_keyboard=[[_button(text, data)]])


def _button(text: str, data: CallbackData) -> InlineKeyboardButton:
    return InlineKeyboardButton(text=text, callback_data=data.pack())


def retry_keyboard(prompt_id: int) -> InlineKeyboardMarkup:
    return one_button(_("🔁 Retry"), RedoCallback(m=prompt_id))


def replaced_keyboard(prompt_id: int) -> InlineKeyboardMarkup:
    """What stays under a reply that was asked again."""
    return one_button(_("♻️ Replaced by a newer answer"), ReplacedCallback(m=prompt_id))


def redo_models_keyboard(menu: ModelMenu, prompt_id: int) -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    for index, model in enumerate(menu.models):
        builder.button(text=model.title, callback_data=RedoCallback(m=prompt_id, k=index))
    builder.adjust(1)
    return builder.as_markup()
