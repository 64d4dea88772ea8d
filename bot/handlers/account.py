"""Referral link, interface language, privacy summary."""

from __future__ import annotations

from urllib.parse import urlencode

from aiogram import Bot, F, Router
from aiogram.types import CallbackQuery, InlineKeyboardMarkup, Message
from aiogram.utils.i18n import I18n
from aiogram.utils.i18n import gettext as _
from aiogram.utils.keyboard import InlineKeyboardBuilder

from bot.callbacks import LanguageCallback, MarketingCallback, MenuCallback
from bot.context import BotContext
from bot.filters import Command
from bot.keyboards import language_keyboard, main_menu
from bot.texts import (
    invite_message,
    language_prompt,
    language_set_text,
    menu_text,
    privacy_text,
    referral_text,
)
from core.deeplinks import referral_payload
from core.dto import UserDTO
from core.services import accounts, payments
from db.uow import UnitOfWork

router = Router(name="account")


async def _referral(
    bot: Bot, uow: UnitOfWork, user: UserDTO, ctx: BotContext
) -> tuple[str, InlineKeyboardMarkup]:
    info = await accounts.referral_info(uow, user.id)
    earned = await payments.referral_earnings(uow, user.id)
    me = await bot.me()
    link = f"https://t.me/{me.username}?start={referral_payload(info.code)}"
    text = referral_text(info, link, earned, user.language, ctx.payment_terms.referral_percents)
    # Telegram's own share sheet: pick chats, the invitation goes with the link.
    share = "https://t.me/share/url?" + urlencode({"url": link, "text": invite_message()})
    builder = InlineKeyboardBuilder()
    builder.button(text=_("📤 Share the link"), url=share)
    return text, builder.as_markup()


@router.message(Command("referral"))
async def show_referral(
    message: Message, bot: Bot, uow: UnitOfWork, user: UserDTO, ctx: BotContext
) -> None:
    text, keyboard = await _referral(bot, uow, user, ctx)
    await message.answer(text, reply_markup=keyboard)


@router.callback_query(MenuCallback.filter(F.action == "referral"))
async def on_menu_referral(
    query: CallbackQuery, bot: Bot, uow: UnitOfWork, user: UserDTO, ctx: BotContext
) -> None:
    await query.answer()
    text, keyboard = await _referral(bot, uow, user, ctx)
    await bot.send_message(query.from_user.id, text, reply_markup=keyboard)


@router.message(Command("language"))
async def show_language(message: Message, user: UserDTO) -> None:
    await message.answer(language_prompt(), reply_markup=language_keyboard(user.language))


@router.callback_query(MenuCallback.filter(F.action == "language"))
async def on_menu_language(query: CallbackQuery, bot: Bot, user: UserDTO) -> None:
    await query.answer()
    await bot.send_message(
        query.from_user.id, language_prompt(), reply_markup=language_keyboard(user.language)
    )


@router.callback_query(LanguageCallback.filter())
async def on_language(
    query: CallbackQuery,
    callback_data: LanguageCallback,
    bot: Bot,
    uow: UnitOfWork,
    user: UserDTO,
    ctx: BotContext,
    i18n: I18n,
) -> None:
    updated = await accounts.set_language(uow, user.id, callback_data.code)
    with i18n.use_locale(updated.language):
        await query.answer(language_set_text())
        await bot.send_message(
            query.from_user.id, menu_text(), reply_markup=main_menu(ctx.web_app_url)
        )


def marketing_keyboard(opted_in: bool) -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    builder.button(
        text=_("📣 News and offers: on — turn off")
        if opted_in
        else _("📣 News and offers: off — turn on"),
        callback_data=MarketingCallback(opt_in=not opted_in),
    )
    return builder.as_markup()


async def _privacy_markup(uow: UnitOfWork, user: UserDTO | None) -> InlineKeyboardMarkup | None:
    if user is None or user.consent_version is None:
        return None
    return marketing_keyboard(await accounts.marketing_opt_in(uow, user.id))


@router.message(Command("privacy"), flags={"consent_free": True})
async def show_privacy(
    message: Message, uow: UnitOfWork, user: UserDTO | None, ctx: BotContext
) -> None:
    await message.answer(privacy_text(ctx), reply_markup=await _privacy_markup(uow, user))


@router.callback_query(MenuCallback.filter(F.action == "privacy"))
async def on_menu_privacy(
    query: CallbackQuery, bot: Bot, uow: UnitOfWork, user: UserDTO, ctx: BotContext
) -> None:
    await query.answer()
    await bot.send_message(
        query.from_user.id, privacy_text(ctx), reply_markup=await _privacy_markup(uow, user)
    )


@router.callback_query(MarketingCallback.filter())
async def on_marketing(
    query: CallbackQuery, callback_data: MarketingCallback, bot: Bot, uow: UnitOfWork, user: UserDTO
) -> None:
    opted = await accounts.set_marketing_opt_in(uow, user.id, opt_in=callback_data.opt_in)
    await query.answer(
        _("You will get news and offers. Turn it off here any time.")
        if opted
        else _("No news or offers any more. Service notifications still arrive.")
    )
    if query.message is not None:
        await bot.edit_message_reply_markup(
            chat_id=query.from_user.id,
            message_id=query.message.message_id,
            reply_markup=marketing_keyboard(opted),
        )
