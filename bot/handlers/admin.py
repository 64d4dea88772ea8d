"""The operator's commands. Only the Telegram ids in BOT__ADMIN_IDS reach them; for anyone else
these commands do not exist (the update goes on to the normal bot). Every action is written to
the administrative action log by the use case it calls."""

from __future__ import annotations

import logging
import re
from datetime import timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from aiogram import Bot, Router
from aiogram.exceptions import TelegramBadRequest
from aiogram.filters import BaseFilter, CommandObject
from aiogram.types import BufferedInputFile, Message
from aiogram.utils.i18n import gettext as _

from bot.context import BotContext
from bot.filters import Command
from bot.handlers.support import card_text
from bot.texts import local_time, money
from core.errors import InvalidInput
from core.ports import JobQueue
from core.services import admin, broadcasts, sharing, stats, support
from db.uow import UnitOfWork

log = logging.getLogger(__name__)


class IsAdmin(BaseFilter):
    async def __call__(self, message: Message, ctx: BotContext) -> bool:
        return message.from_user is not None and message.from_user.id in ctx.admin_ids


router = Router(name="admin")
router.message.filter(IsAdmin())
FREE = {"consent_free": True}
AMOUNT = re.compile(r"^[+-]?\d+(?:[.,]\d{1,2})?$")


def _kopecks(text: str) -> int:
    if not AMOUNT.match(text):
        raise InvalidInput(f"amount {text!r}")
    try:
        return int(Decimal(text.replace(",", ".")) * 100)
    except InvalidOperation as exc:
        raise InvalidInput(f"amount {text!r}") from exc


def _usage(message: Message, text: str) -> Any:
    return message.reply(text, parse_mode=None)


@router.message(Command("user"), flags=FREE)
async def show_user(
    message: Message, command: CommandObject, uow: UnitOfWork, ctx: BotContext
) -> None:
    if not command.args:
        await _usage(message, _("Usage: /user <id | @username | email>"))
        return
    user_id = await admin.find_user(uow, command.args)
    card = await support.user_card(uow, user_id, tariffs=ctx.tariffs, now=ctx.clock())
    lines = [card_text(card, ctx)]
    if card.last_activity_at is not None:
        lines.append(
            _("Last activity: {when}").format(
                when=local_time(card.last_activity_at, ctx.tariffs.timezone)
            )
        )
    if card.bot_blocked_at is not None:
        lines.append(_("⛔ Blocked the bot"))
    await message.reply("\n".join(lines))


@router.message(Command("adjust"), flags=FREE)
async def adjust(
    message: Message, command: CommandObject, uow: UnitOfWork, ctx: BotContext
) -> None:
    parts = (command.args or "").split(maxsplit=2)
    if len(parts) < 3:
        await _usage(
            message, _("Usage: /adjust <user> <amount in roubles, e.g. 150 or -20.50> <reason>")
        )
        return
    assert message.from_user is not None
    user_id = await admin.find_user(uow, parts[0])
    entry = await admin.adjust_balance(
        uow,
        admin_telegram_id=message.from_user.id,
        user_id=user_id,
        amount=_kopecks(parts[1]),
        reason=parts[2],
        key=f"adjust:{message.chat.id}:{message.message_id}",
    )
    await message.reply(
        _("Balance of user {user}: {amount}, now {balance}.").format(
            user=user_id,
            amount=("+" if entry.amount > 0 else "−") + money(abs(entry.amount), "en"),
            balance=money(entry.balance_after, "en"),
        )
    )


@router.message(Command("refund"), flags=FREE)
async def refund(
    message: Message, command: CommandObject, bot: Bot, uow: UnitOfWork, ctx: BotContext
) -> None:
    charge_id = (command.args or "").strip()
    if not charge_id:
        await _usage(message, _("Usage: /refund <Telegram payment charge id>"))
        return
    assert message.from_user is not None
    _user_id, telegram_id = await admin.stars_charge_owner(uow, charge_id)
    refunded_before = False
    try:
        await bot.refund_star_payment(user_id=telegram_id, telegram_payment_charge_id=charge_id)
    except TelegramBadRequest as exc:
        # Refunded before (by us or through Telegram): the money is back either way.
        if "CHARGE_ALREADY_REFUNDED" not in exc.message:
            raise
        refunded_before = True
    # Telegram's refund notice may reach the bot first and record the refund; either way the
    # figures are those of this payment's one refund.
    result = await admin.record_refund(
        uow, admin_telegram_id=message.from_user.id, charge_id=charge_id, now=ctx.clock()
    )
    text = (
        _(
            "Refunded before. Taken back from the balance then: {amount}; "
            "referral earnings reversed: {n}."
        )
        if refunded_before
        else _("Refunded. Taken back from the balance: {amount}; referral earnings reversed: {n}.")
    )
    await message.reply(
        text.format(amount=money(result.taken_back, "en"), n=len(result.reversed_earnings))
    )


async def _set_blocked(
    message: Message, command: CommandObject, uow: UnitOfWork, *, blocked: bool
) -> None:
    parts = (command.args or "").split(maxsplit=1)
    if not parts:
        await _usage(message, _("Usage: /block <user> [reason] or /unblock <user>"))
        return
    assert message.from_user is not None
    user_id = await admin.find_user(uow, parts[0])
    changed = await admin.set_blocked(
        uow,
        admin_telegram_id=message.from_user.id,
        user_id=user_id,
        blocked=blocked,
        reason=parts[1] if len(parts) > 1 else "",
    )
    if not changed:
        text = _("Nothing to do: user {user} was already in that state.")
    elif blocked:
        text = _("User {user} is blocked.")
    else:
        text = _("User {user} is unblocked.")
    await message.reply(text.format(user=user_id))


@router.message(Command("block"), flags=FREE)
async def block(message: Message, command: CommandObject, uow: UnitOfWork) -> None:
    await _set_blocked(message, command, uow, blocked=True)


@router.message(Command("unblock"), flags=FREE)
async def unblock(message: Message, command: CommandObject, uow: UnitOfWork) -> None:
    await _set_blocked(message, command, uow, blocked=False)


@router.message(Command("stats"), flags=FREE)
async def show_stats(
    message: Message, command: CommandObject, uow: UnitOfWork, ctx: BotContext
) -> None:
    arg = (command.args or "30").strip()
    if not arg.isdigit() or not 1 <= int(arg) <= 366:
        await _usage(message, _("Usage: /stats [days, 1-366]"))
        return
    days = int(arg)
    until = ctx.clock()
    figures = await stats.collect(uow, since=until - timedelta(days=days), until=until)
    spent = sum(u.spent for u in figures.usage)
    caption = "\n".join(
        [
            _("📊 <b>Last {days} days</b>").format(days=days),
            _("Users: {total} (new {new}, active {active})").format(
                total=figures.users_total, new=figures.users_new, active=figures.users_active
            ),
            _("Revenue: ⭐️ {stars} in {n} payments; {card} by card in {m} payments").format(
                stars=figures.stars_received,
                n=figures.stars_payments,
                card=money(figures.card_received, "en"),
                m=figures.card_payments,
            ),
            _("Refunds: {n}").format(n=figures.refunds),
            _("Usage: {requests} paid requests, {spent} spent").format(
                requests=sum(u.requests for u in figures.usage), spent=money(spent, "en")
            ),
        ]
    )
    # matplotlib (and numpy) load when an operator first asks for a chart, not with the bot.
    from bot.charts import usage_chart

    chart = usage_chart(
        figures, _("Spend by model, last {days} days").format(days=days), ctx.model_name
    )
    await message.reply_photo(BufferedInputFile(chart, "stats.png"), caption=caption)


@router.message(Command("broadcast"), flags=FREE)
async def broadcast(
    message: Message, command: CommandObject, uow: UnitOfWork, jobs: JobQueue
) -> None:
    """Reply /broadcast <all|marketing|ru|en> to the message to send (in the chat with the bot)."""
    segment = (command.args or "").strip() or "all"
    source = message.reply_to_message
    if source is None or segment not in broadcasts.SEGMENTS:
        await _usage(
            message,
            _(
                "Write the message first, then reply to it with /broadcast <segment>. "
                "Segments: all (service announcements), marketing (only users who opted in), "
                "ru, en (opted-in users by language)."
            ),
        )
        return
    assert message.from_user is not None
    progress = await message.reply(_("Broadcast queued…"), parse_mode=None)
    created = await broadcasts.create(
        uow,
        admin_telegram_id=message.from_user.id,
        source_chat_id=source.chat.id,
        source_message_id=source.message_id,
        segment=segment,
        progress_chat_id=progress.chat.id,
        progress_message_id=progress.message_id,
    )
    await jobs.enqueue("broadcasts.run", broadcast_id=created.id)
    await progress.edit_text(
        _("Broadcast #{id} to {total} users queued.").format(id=created.id, total=created.total),
        parse_mode=None,
    )


@router.message(Command("share_off"), flags=FREE)
async def share_off(
    message: Message, command: CommandObject, uow: UnitOfWork, ctx: BotContext
) -> None:
    """Take down a shared link (a chat or a preset), whoever made it."""
    link = (command.args or "").strip()
    if not link:
        await _usage(message, _("Usage: /share_off <link or token>"))
        return
    assert message.from_user is not None
    await sharing.disable(uow, admin_telegram_id=message.from_user.id, token=link, now=ctx.clock())
    await message.reply(_("Link disabled."), parse_mode=None)
