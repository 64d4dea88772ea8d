"""Referral link, interface language, privacy summary."""

from __future__ import annotations

from aiogram import Bot, F, Router
from aiogram.filters import Command
from aiogram.types import CallbackQuery, Message
from aiogram.utils.i18n import I18n

from bot.callbacks import LanguageCallback, MenuCallback
from bot.context import BotContext
from bot.keyboards import language_keyboard, main_menu
from bot.texts import language_prompt, language_set_text, menu_text, privacy_text, referral_text
from core.deeplinks import referral_payload
from core.dto import UserDTO
from core.services import accounts, payments
from db.uow import UnitOfWork

router = Router(name="account")


async def _referral(bot: Bot, uow: UnitOfWork, user: UserDTO) -> str:
    info = await accounts.referral_info(uow, user.id)
    earned = await payments.referral_earnings(uow, user.id)
    me = await bot.me()
    link = f"https://t.me/{me.username}?start={referral_payload(info.code)}"
    return referral_text(info, link, earned, user.language)


@router.message(Command("referral"))
async def show_referral(message: Message, bot: Bot, uow: UnitOfWork, user: UserDTO) -> None:
    await message.answer(await _referral(bot, uow, user))


@router.callback_query(MenuCallback.filter(F.action == "referral"))
async def on_menu_referral(query: CallbackQuery, bot: Bot, uow: UnitOfWork, user: UserDTO) -> None:
    await query.answer()
    await bot.send_message(query.from_user.id, await _referral(bot, uow, user))


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


@router.message(Command("privacy"), flags={"consent_free": True})
async def show_privacy(message: Message, ctx: BotContext) -> None:
    await message.answer(privacy_text(ctx))


@router.callback_query(MenuCallback.filter(F.action == "privacy"))
async def on_menu_privacy(query: CallbackQuery, bot: Bot, ctx: BotContext) -> None:
    await query.answer()
    await bot.send_message(query.from_user.id, privacy_text(ctx))
