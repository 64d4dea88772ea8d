"""Support through the admin chat.

A user opens support with /support (or the menu); what they write then (text, photos,
documents, any message) is copied to the admin chat. In a forum each user gets a topic of their
own, created on first contact, reopened if closed and created anew if deleted; in a plain group
a header message starts each user's thread and their messages are copied as replies to it. The
first message of a thread tells support who the user is (language, balance, plan).

An administrator's message in a user's topic, or a reply to a relayed message, is copied back to
the user from the bot: the user never learns who answered. Edits follow on both sides. A user
who blocked the bot is recorded, support is told, and nothing is retried.
"""

from __future__ import annotations

import logging
from html import escape

from aiogram import Bot, F, Router
from aiogram.dispatcher.event.bases import SkipHandler
from aiogram.exceptions import TelegramBadRequest, TelegramForbiddenError
from aiogram.filters import StateFilter
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, Message
from aiogram.utils.i18n import gettext as _

from bot.callbacks import MenuCallback
from bot.context import BotContext
from bot.filters import Command, on_loop
from bot.keyboards import support_keyboard
from bot.states import SupportForm
from bot.texts import local_time, money
from core.dto import UserDTO
from core.services import support
from db.uow import UnitOfWork

log = logging.getLogger(__name__)
router = Router(name="support")
TOPIC_GONE = ("message thread not found", "TOPIC_ID_INVALID", "TOPIC_DELETED")


def _in_admin_chat(message: Message, ctx: BotContext) -> bool:
    return ctx.admin_chat_id is not None and message.chat.id == ctx.admin_chat_id


@router.message(Command("support"), on_loop(F.chat.type == "private"))
async def open_support(message: Message, state: FSMContext, ctx: BotContext) -> None:
    await _open(message.bot, message.chat.id, state, ctx)


@router.callback_query(MenuCallback.filter(F.action == "support"))
async def on_menu_support(
    query: CallbackQuery, bot: Bot, state: FSMContext, ctx: BotContext
) -> None:
    await query.answer()
    await _open(bot, query.from_user.id, state, ctx)


async def _open(bot: Bot | None, chat_id: int, state: FSMContext, ctx: BotContext) -> None:
    assert bot is not None
    if ctx.admin_chat_id is None:
        await bot.send_message(chat_id, _("Support is not set up on this server yet."))
        return
    await state.set_state(SupportForm.open)
    await bot.send_message(
        chat_id,
        _(
            "💬 Write your question: text, photos or documents. Everything you send now goes "
            "to our support team, and their answers arrive here. Tap Finish when you are done."
        ),
        reply_markup=support_keyboard(),
    )


@router.callback_query(MenuCallback.filter(F.action == "support_done"))
async def on_support_done(query: CallbackQuery, bot: Bot, state: FSMContext) -> None:
    await state.clear()
    await query.answer()
    await bot.send_message(
        query.from_user.id, _("Support conversation closed. Write /support any time.")
    )


@router.message(
    StateFilter(SupportForm.open), on_loop((F.chat.type == "private") & F.text.startswith("/"))
)
async def leave_on_command(message: Message, state: FSMContext) -> None:
    """Any command ends the support conversation and then does what it always does."""
    await state.clear()
    raise SkipHandler


@router.message(
    StateFilter(SupportForm.open), on_loop((F.chat.type == "private") & ~F.text.startswith("/"))
)
async def relay_to_support(
    message: Message, bot: Bot, uow: UnitOfWork, user: UserDTO, ctx: BotContext
) -> None:
    assert ctx.admin_chat_id is not None
    copied = await _copy_to_admins(bot, uow, user, ctx, message)
    await support.record_message(
        uow,
        user_id=user.id,
        direction="in",
        user_message_id=message.message_id,
        admin_chat_id=ctx.admin_chat_id,
        admin_message_id=copied,
        now=ctx.clock(),
    )
    await message.reply(_("✅ Delivered to support."))


async def _copy_to_admins(
    bot: Bot, uow: UnitOfWork, user: UserDTO, ctx: BotContext, message: Message
) -> int:
    """Copy into the user's thread, opening (or reopening, or recreating) it as needed."""
    assert ctx.admin_chat_id is not None
    thread = await support.thread_of(uow, user.id, ctx.admin_chat_id)
    if thread is None:
        thread = await _new_thread(bot, uow, user, ctx)
    for attempt in range(2):
        try:
            sent = await bot.copy_message(
                ctx.admin_chat_id,
                message.chat.id,
                message.message_id,
                message_thread_id=thread.topic_id,
                reply_to_message_id=None if thread.topic_id else thread.header_message_id,
            )
            return sent.message_id
        except TelegramBadRequest as exc:
            if attempt == 1:
                raise
            if "TOPIC_CLOSED" in exc.message and thread.topic_id is not None:
                await bot.reopen_forum_topic(ctx.admin_chat_id, thread.topic_id)
            elif any(gone in exc.message for gone in TOPIC_GONE) or "replied" in exc.message:
                thread = await _new_thread(bot, uow, user, ctx)
            else:
                raise
    raise AssertionError("unreachable")


async def _new_thread(
    bot: Bot, uow: UnitOfWork, user: UserDTO, ctx: BotContext
) -> support.ThreadDTO:
    assert ctx.admin_chat_id is not None
    card = await support.user_card(uow, user.id, tariffs=ctx.tariffs, now=ctx.clock())
    name = card.name or (f"@{card.username}" if card.username else str(card.telegram_id))
    chat = await bot.get_chat(ctx.admin_chat_id)
    topic_id: int | None = None
    if chat.is_forum:
        topic = await bot.create_forum_topic(ctx.admin_chat_id, f"{name} · {card.user_id}"[:128])
        topic_id = topic.message_thread_id
    header = await bot.send_message(
        ctx.admin_chat_id,
        card_text(card, ctx),
        message_thread_id=topic_id,
    )
    return await support.save_thread(
        uow,
        user_id=user.id,
        admin_chat_id=ctx.admin_chat_id,
        topic_id=topic_id,
        header_message_id=header.message_id,
        now=ctx.clock(),
    )


def card_text(card: support.UserCard, ctx: BotContext) -> str:
    who = escape(card.name or card.email or "—")
    if card.username:
        who += f" (@{escape(card.username)})"
    ids = f"id {card.user_id}"
    if card.telegram_id is not None:
        ids += f" · Telegram {card.telegram_id}"
    plan = (
        f"{escape(card.plan.title())} → {local_time(card.plan_until, ctx.tariffs.timezone)}"
        if card.plan and card.plan_until
        else "—"
    )
    lines = [
        f"👤 <b>{who}</b>",
        ids,
        _("Language: {language}").format(language=card.language),
        _("Balance: {balance}").format(balance=money(card.balance, "en")),
        _("Plan: {plan}").format(plan=plan),
        _("Since: {date}").format(date=f"{card.created_at:%Y-%m-%d}"),
    ]
    if card.email and card.email != card.name:
        lines.insert(2, _("Email: {email}").format(email=escape(card.email)))
    if card.sign_in:
        lines.append(_("Signs in with: {methods}").format(methods=", ".join(card.sign_in)))
    if card.is_blocked:
        lines.append(_("⛔ Account blocked"))
    return "\n".join(lines)


async def _not_a_command(message: Message) -> bool:
    return not (message.text or "").startswith("/")


@router.message(_not_a_command, flags={"consent_free": True})
async def relay_to_user(message: Message, bot: Bot, uow: UnitOfWork, ctx: BotContext) -> None:
    """An administrator's message in the admin chat goes to the user it is meant for."""
    if not _in_admin_chat(message, ctx) or message.from_user is None or message.from_user.is_bot:
        raise SkipHandler
    if message.forum_topic_created or message.forum_topic_closed or message.forum_topic_reopened:
        return
    reply = message.reply_to_message
    # In a topic every message "replies" to the topic's creation message; that is not a reply.
    reply_to = None if reply is None or reply.forum_topic_created else reply.message_id
    route = await support.route_reply(
        uow,
        admin_chat_id=message.chat.id,
        topic_id=message.message_thread_id if message.is_topic_message else None,
        reply_to_message_id=reply_to,
    )
    if route is None:
        return
    try:
        sent = await bot.copy_message(
            route.telegram_id,
            message.chat.id,
            message.message_id,
            reply_to_message_id=route.reply_to,
            allow_sending_without_reply=True,
        )
    except TelegramForbiddenError:
        await support.mark_bot_blocked(uow, user_id=route.user_id, now=ctx.clock())
        await message.reply(_("⛔ The user has blocked the bot. The message was not delivered."))
        return
    await support.record_message(
        uow,
        user_id=route.user_id,
        direction="out",
        user_message_id=sent.message_id,
        admin_chat_id=message.chat.id,
        admin_message_id=message.message_id,
        now=ctx.clock(),
    )


@router.edited_message(flags={"consent_free": True})
async def follow_edit(
    message: Message, bot: Bot, uow: UnitOfWork, user: UserDTO | None, ctx: BotContext
) -> None:
    """An edit on either side changes the copy on the other."""
    if _in_admin_chat(message, ctx):
        copy = await support.counterpart(
            uow, direction="out", admin_chat_id=message.chat.id, message_id=message.message_id
        )
        if copy is None:
            return
        route_chat = await support.telegram_id_of(uow, copy.user_id)
        target_chat, target_id = route_chat, copy.user_message_id
    elif message.chat.type == "private" and user is not None:
        copy = await support.counterpart(
            uow, direction="in", user_id=user.id, message_id=message.message_id
        )
        if copy is None:
            return
        target_chat, target_id = copy.admin_chat_id, copy.admin_message_id
    else:
        return
    if target_chat is None:
        return
    try:
        if message.text is not None:
            await bot.edit_message_text(
                message.html_text, chat_id=target_chat, message_id=target_id
            )
        else:
            await bot.edit_message_caption(
                chat_id=target_chat, message_id=target_id, caption=message.html_text or None
            )
    except (TelegramBadRequest, TelegramForbiddenError) as exc:
        log.info("support edit not mirrored: %s", exc.message)
