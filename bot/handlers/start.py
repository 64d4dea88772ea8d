"""Onboarding: /start with deep-link payloads, the consent gate, the main menu."""

from __future__ import annotations

from contextlib import suppress

from aiogram import Bot, F, Router
from aiogram.exceptions import TelegramAPIError
from aiogram.filters import CommandObject
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, MenuButtonWebApp, Message, WebAppInfo
from aiogram.utils.i18n import I18n
from aiogram.utils.i18n import gettext as _

from bot.callbacks import ConsentCallback
from bot.commands import set_admin_commands
from bot.context import BotContext
from bot.filters import Command, CommandStart, on_loop
from bot.keyboards import consent_keyboard, main_menu
from bot.texts import (
    consent_text,
    invited_friend_text,
    menu_text,
    referral_outcome_text,
    welcome_text,
)
from core.deeplinks import parse_start_payload
from core.dto import ClientInfo, ReferralOutcome, UserDTO
from core.services import accounts
from db.uow import UnitOfWork

router = Router(name="start")
router.message.filter(on_loop(F.chat.type == "private"))

PAYLOAD_KEY = "start_payload"


@router.message(CommandStart(), flags={"consent_free": True})
async def on_start(
    message: Message,
    command: CommandObject,
    user: UserDTO | None,
    uow: UnitOfWork,
    ctx: BotContext,
    state: FSMContext,
    bot: Bot,
    i18n: I18n,
) -> None:
    if message.from_user is not None and message.from_user.id in ctx.admin_ids:
        # Telegram knows the admin's chat now: their menu gets the admin commands.
        await set_admin_commands(bot, i18n, message.from_user.id)
    payload = parse_start_payload(command.args)
    if user is None or user.needs_consent(ctx.policy_version):
        # Nothing is stored in the database before the policy is accepted.
        if not payload.empty:
            await state.update_data({PAYLOAD_KEY: command.args})
        await message.answer(
            consent_text(ctx, renewed=user is not None),
            reply_markup=consent_keyboard(ctx.policy_version, renewed=user is not None),
        )
        return
    assert message.from_user is not None
    outcome = await accounts.check_start_payload(uow, message.from_user.id, payload)
    notice = referral_outcome_text(outcome)
    if notice and outcome is not ReferralOutcome.APPLIED:
        await message.answer(notice)
    await message.answer(menu_text(), reply_markup=main_menu(ctx.web_app_url))


@router.callback_query(ConsentCallback.filter(), flags={"consent_free": True})
async def on_accept(
    query: CallbackQuery,
    callback_data: ConsentCallback,
    bot: Bot,
    uow: UnitOfWork,
    ctx: BotContext,
    state: FSMContext,
    i18n: I18n,
) -> None:
    if callback_data.version != ctx.policy_version:
        # An old button: the policy changed after it was sent.
        await query.answer()
        await bot.send_message(
            query.from_user.id,
            consent_text(ctx, renewed=True),
            reply_markup=consent_keyboard(ctx.policy_version, renewed=True),
        )
        return
    stored = await state.get_data()
    registration = await accounts.register_telegram_user(
        uow,
        telegram_id=query.from_user.id,
        username=query.from_user.username,
        first_name=query.from_user.first_name,
        last_name=query.from_user.last_name,
        language_code=query.from_user.language_code,
        payload=parse_start_payload(stored.get(PAYLOAD_KEY)),
        policy_version=ctx.policy_version,
        client=ClientInfo(platform="telegram"),
    )
    await state.update_data({PAYLOAD_KEY: None})
    await query.answer(_("Accepted"))
    if query.message is not None:
        await bot.edit_message_reply_markup(
            chat_id=query.message.chat.id, message_id=query.message.message_id, reply_markup=None
        )
    user = registration.user
    with i18n.use_locale(user.language):
        await bot.set_chat_menu_button(
            chat_id=query.from_user.id,
            menu_button=MenuButtonWebApp(text="NetRoom", web_app=WebAppInfo(url=ctx.web_app_url)),
        )
        lines = [welcome_text(query.from_user.first_name)]
        notice = referral_outcome_text(registration.referral)
        if notice:
            lines.append(notice)
        await bot.send_message(query.from_user.id, "\n\n".join(lines))
        await bot.send_message(
            query.from_user.id, menu_text(), reply_markup=main_menu(ctx.web_app_url)
        )
    inviter = registration.inviter
    if inviter is not None and inviter.telegram_id is not None:
        with i18n.use_locale(inviter.language), suppress(TelegramAPIError):
            # The inviter may have blocked the bot since; the new account stands regardless.
            await bot.send_message(inviter.telegram_id, invited_friend_text())


@router.message(Command("menu", "help"))
async def show_menu(message: Message, ctx: BotContext) -> None:
    await message.answer(menu_text(), reply_markup=main_menu(ctx.web_app_url))
