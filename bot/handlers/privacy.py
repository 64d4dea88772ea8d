"""Exporting one's data and erasing one's account, from the bot."""

from __future__ import annotations

import logging

from aiogram import Bot, F, Router
from aiogram.exceptions import TelegramBadRequest
from aiogram.fsm.context import FSMContext
from aiogram.types import BufferedInputFile, CallbackQuery, MenuButtonDefault, Message
from aiogram.utils.i18n import gettext as _
from aiogram.utils.keyboard import InlineKeyboardBuilder

from bot.callbacks import DeclineCallback, DeleteCallback, ExportCallback
from bot.context import BotContext
from bot.filters import Command, on_loop
from core.dto import UserDTO
from core.media import MediaStore
from core.ports import JobQueue
from core.services import privacy, subscriptions, support
from db.uow import UnitOfWork

log = logging.getLogger(__name__)
router = Router(name="privacy")
router.message.filter(on_loop(F.chat.type == "private"))


@router.message(Command("export"))
async def show_export(message: Message) -> None:
    builder = InlineKeyboardBuilder()
    builder.button(text="JSON", callback_data=ExportCallback(fmt="json"))
    builder.button(text=_("CSV tables (ZIP)"), callback_data=ExportCallback(fmt="zip"))
    builder.button(text=_("Chats as a web page (HTML)"), callback_data=ExportCallback(fmt="html"))
    builder.adjust(2, 1)
    await message.answer(
        _("📦 Get a copy of everything NetRoom holds about you. Choose the format:"),
        reply_markup=builder.as_markup(),
    )


@router.callback_query(ExportCallback.filter())
async def on_export(
    query: CallbackQuery,
    callback_data: ExportCallback,
    bot: Bot,
    uow: UnitOfWork,
    user: UserDTO,
    ctx: BotContext,
) -> None:
    export = await privacy.export_user(
        uow,
        user.id,
        fmt=callback_data.fmt,
        now=ctx.clock(),
        translate=_,
        language=user.language,
        model_names=ctx.model_names,
        fallback_zone=ctx.tariffs.timezone,
    )
    await query.answer()
    with export.data:
        content = export.data.read()
    await bot.send_document(
        query.from_user.id,
        BufferedInputFile(content, filename=export.file_name),
        caption=_("Your NetRoom data: {rows} records.").format(rows=export.rows),
    )


# Erasing one's account never requires accepting a new policy first.
@router.message(Command("delete"), flags={"consent_free": True})
async def show_delete(message: Message, bot: Bot, user: UserDTO | None, ctx: BotContext) -> None:
    if user is None:
        await message.answer(_("There is no account to delete."))
        return
    await ask_to_delete(message.chat.id, bot, user, ctx)


@router.callback_query(DeclineCallback.filter(), flags={"consent_free": True})
async def on_decline(query: CallbackQuery, bot: Bot, user: UserDTO | None, ctx: BotContext) -> None:
    """Declining a new version of the policy leads to erasure, as the policy says."""
    await query.answer()
    if user is None:
        await bot.send_message(query.from_user.id, _("There is no account to delete."))
        return
    await ask_to_delete(query.from_user.id, bot, user, ctx)


async def ask_to_delete(chat_id: int, bot: Bot, user: UserDTO, ctx: BotContext) -> None:
    token = privacy.delete_token(user.id, secret=ctx.secret, now=ctx.clock())
    builder = InlineKeyboardBuilder()
    builder.button(text=_("🗑 Delete my account"), callback_data=DeleteCallback(token=token))
    builder.button(text=_("Cancel"), callback_data=DeleteCallback(token=""))  # nosec B106 # not a secret
    builder.adjust(1)
    await bot.send_message(
        chat_id,
        _(
            "⚠️ <b>Delete your account?</b>\n\n"
            "Your chats, settings, sign-in methods and everything else about you will be "
            "erased. This cannot be undone, and any balance left is lost. Payment records that "
            "the law requires us to keep stay, with nothing that identifies you.\n\n"
            "The button works for 10 minutes."
        ),
        reply_markup=builder.as_markup(),
    )


@router.callback_query(DeleteCallback.filter(), flags={"consent_free": True})
async def on_delete(
    query: CallbackQuery,
    callback_data: DeleteCallback,
    bot: Bot,
    uow: UnitOfWork,
    user: UserDTO | None,
    ctx: BotContext,
    state: FSMContext,
    media_store: MediaStore,
    jobs: JobQueue,
) -> None:
    if query.message is not None:
        await bot.edit_message_reply_markup(
            chat_id=query.from_user.id, message_id=query.message.message_id, reply_markup=None
        )
    if not callback_data.token or user is None:
        await query.answer(_("Cancelled. Nothing was deleted."))
        return
    privacy.check_delete_token(callback_data.token, user.id, secret=ctx.secret, now=ctx.clock())
    # Telegram would go on renewing a subscription: it is cancelled first.
    for telegram_id, charge_id in await subscriptions.renewing(uow, user.id, ctx.clock()):
        try:
            await bot.edit_user_star_subscription(
                user_id=telegram_id, telegram_payment_charge_id=charge_id, is_canceled=True
            )
        except TelegramBadRequest as exc:
            log.warning("subscription %s not cancelled: %s", charge_id, exc.message)
    trace = await support.trace_of(uow, user.id)
    await privacy.delete_user(uow, user.id, now=ctx.clock(), store=media_store)
    if trace is not None:
        # Their support conversation leaves the admin chat too.
        await jobs.enqueue(
            "support.erase",
            admin_chat_id=trace.admin_chat_id,
            topic_id=trace.topic_id,
            message_ids=list(trace.message_ids),
        )
    # What the bot keeps outside the database goes too.
    await state.clear()
    log.info("account %s deleted at the user's request", user.id)
    await query.answer()
    await bot.set_chat_menu_button(chat_id=query.from_user.id, menu_button=MenuButtonDefault())
    await bot.send_message(
        query.from_user.id,
        _("Your account has been deleted. Send /start if you ever want to come back."),
    )
