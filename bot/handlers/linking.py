"""Linking this Telegram account to a web account: /start link-<code> from the website's "Link
Telegram" asks whose account it is and links on confirmation (rules: core.services.linking).

Both steps pass the consent gate: a Telegram user without an account of their own joins the web
account, whose owner accepted the policy there."""

from __future__ import annotations

import contextlib
from html import escape

from aiogram import Bot, F, Router
from aiogram.exceptions import TelegramBadRequest
from aiogram.filters import CommandObject
from aiogram.types import CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup, Message
from aiogram.utils.i18n import gettext as _
from redis.asyncio import Redis

from bot.callbacks import LinkCallback
from bot.context import BotContext
from bot.filters import CommandStart, on_loop
from bot.keyboards import main_menu
from bot.texts import menu_text
from core.media import MediaStore
from core.services import linking
from db.uow import UnitOfWork

router = Router(name="linking")
router.message.filter(on_loop(F.chat.type == "private"))


@router.message(
    CommandStart(deep_link=True, magic=F.args.startswith(linking.PAYLOAD_PREFIX)),
    flags={"consent_free": True},
)
async def on_link_start(
    message: Message, command: CommandObject, uow: UnitOfWork, redis: Redis, ctx: BotContext
) -> None:
    assert message.from_user is not None
    code = linking.code_of_payload(command.args) or ""
    request = await linking.telegram_link_request(
        uow, redis, code=code, telegram_id=message.from_user.id, now=ctx.clock()
    )
    keyboard = InlineKeyboardMarkup(
        inline_keyboard=[
            [
                InlineKeyboardButton(
                    text=_("Link"),
                    callback_data=LinkCallback(action="yes", code=request.code).pack(),
                ),
                InlineKeyboardButton(
                    text=_("Cancel"),
                    callback_data=LinkCallback(action="no", code=request.code).pack(),
                ),
            ]
        ]
    )
    await message.answer(
        _("Link this Telegram account to the NetRoom account {account}?").format(
            account=f"<b>{escape(request.account)}</b>"
        ),
        reply_markup=keyboard,
    )


@router.callback_query(LinkCallback.filter(), flags={"consent_free": True})
async def on_link_answer(
    query: CallbackQuery,
    callback_data: LinkCallback,
    uow: UnitOfWork,
    redis: Redis,
    ctx: BotContext,
    bot: Bot,
    media_store: MediaStore,
) -> None:
    await query.answer()
    if query.message is not None:
        # A double tap: the buttons are gone already ("message is not modified").
        with contextlib.suppress(TelegramBadRequest):
            await bot.edit_message_reply_markup(
                chat_id=query.message.chat.id,
                message_id=query.message.message_id,
                reply_markup=None,
            )
    if callback_data.action != "yes":
        await bot.send_message(query.from_user.id, _("Nothing was linked."))
        return
    outcome = await linking.confirm_telegram_link(
        uow,
        redis,
        code=callback_data.code,
        telegram_id=query.from_user.id,
        username=query.from_user.username,
        now=ctx.clock(),
        store=media_store,
    )
    text = _(
        "Linked: this Telegram account and the website now share one NetRoom account, with "
        "one balance and one history. Plans can be bought on the website too."
    )
    if outcome.history_moved and outcome.web_signed_out:
        text += "\n\n" + _(
            "Your chats, presets, files and pictures from the website are here now too."
        )
    elif outcome.history_moved:
        text += "\n\n" + _(
            "Your earlier chats, presets, files and pictures in the bot are all kept, and the "
            "website shows them now too."
        )
    if outcome.web_signed_out:
        # The web account's sign-in methods and history moved here; its session ended with it.
        text += "\n\n" + _(
            "On the website, sign in again the same way: you will find this account there."
        )
    await bot.send_message(query.from_user.id, text)
    await bot.send_message(query.from_user.id, menu_text(), reply_markup=main_menu(ctx.web_app_url))
