"""Asking again and asking about a reply: 🔄 (the same model) and 🔀 (another) under a reply,
🔁 Retry under an error, an edited prompt (``edited_message``), 👍/👎 and ℹ️ (what it cost).

Each ask-again is a turn like any other (``chat._answer_once``): one reply at a time, billed,
the old turn marked replaced as the new one begins (``core.services.redo``). Included before the
support router, whose edit mirroring takes every other edit."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from aiogram import Bot, F, Router
from aiogram.exceptions import TelegramAPIError
from aiogram.types import CallbackQuery, Message
from aiogram.utils.i18n import gettext as _
from redis.asyncio import Redis

from bot import last_turn
from bot.callbacks import (
    CostCallback,
    RateCallback,
    RedoCallback,
    RedoModelsCallback,
    ReplacedCallback,
)
from bot.context import BotContext
from bot.filters import on_loop
from bot.handlers.chat import _answer_once
from bot.keyboards import redo_models_keyboard, reply_keyboard
from bot.texts import money
from core.dto import UserDTO
from core.providers.registry import ProviderRegistry
from core.services import redo
from db.engine import UnitOfWorkFactory
from db.uow import UnitOfWork

router = Router(name="redo")
T = TypeVar("T")
STORED_TRIES = 10
STORED_PAUSE = 0.2


@router.callback_query(RedoCallback.filter())
async def on_redo(
    query: CallbackQuery,
    callback_data: RedoCallback,
    bot: Bot,
    uow: UnitOfWork,
    user: UserDTO,
    ctx: BotContext,
    redis: Redis,
    providers: ProviderRegistry,
    uow_factory: UnitOfWorkFactory,
) -> None:
    """🔄 / 🔁: the turn again, with the model that answered it or the one picked."""
    anchor = query.message
    if not isinstance(anchor, Message):
        await query.answer(_("This message is too old to use its buttons."), show_alert=True)
        return
    model = None
    if 0 <= callback_data.k < len(ctx.models.models):
        model = ctx.models.models[callback_data.k]
    await query.answer(_("Asking again…"))
    shown = await last_turn.recall(redis, user.id)
    replaced: set[int] = set()
    if model is None:
        # 🔄 under the reply, or 🔁 under the error: that message is the one replaced.
        replaced.add(anchor.message_id)
    else:
        # A model picked from the list: the list has done its job.
        with contextlib.suppress(TelegramAPIError):
            await anchor.edit_reply_markup(reply_markup=None)
    prompt_tg = None
    if shown is not None and shown.prompt_id == callback_data.m:
        prompt_tg = shown.prompt_tg
        if shown.reply_tg is not None and shown.chat_id == anchor.chat.id:
            replaced.add(shown.reply_tg)
    await _answer_once(
        anchor,
        bot,
        uow,
        user,
        ctx,
        redis,
        providers,
        "",
        uow_factory=uow_factory,
        redo_of=callback_data.m,
        model=model,
        prompt_tg=prompt_tg,
        replaced=tuple(sorted(replaced)),
    )


@router.callback_query(RedoModelsCallback.filter())
async def show_redo_models(
    query: CallbackQuery,
    callback_data: RedoModelsCallback,
    uow: UnitOfWork,
    user: UserDTO,
    ctx: BotContext,
) -> None:
    """🔀: which model should answer again."""
    await redo.last_turn(uow, user.id, callback_data.m)
    await query.answer()
    if isinstance(query.message, Message):
        await query.message.answer(
            _("🔀 Ask again with which model?"),
            reply_markup=redo_models_keyboard(ctx.models, callback_data.m),
        )


async def _once_stored(step: Callable[[], Awaitable[T]]) -> T:
    """A reply is stored a moment after the user has it (money first): a tap in that moment
    waits for it a little."""
    for _attempt in range(STORED_TRIES - 1):
        try:
            return await step()
        except redo.NoReply:
            await asyncio.sleep(STORED_PAUSE)
    return await step()


@router.callback_query(RateCallback.filter())
async def on_rate(
    query: CallbackQuery, callback_data: RateCallback, bot: Bot, uow: UnitOfWork, user: UserDTO
) -> None:
    await _once_stored(
        lambda: redo.rate_reply(uow, user.id, callback_data.m, rating=callback_data.v)
    )
    await query.answer(_("Thank you for the feedback."))
    if isinstance(query.message, Message):
        await bot.edit_message_reply_markup(
            chat_id=query.message.chat.id,
            message_id=query.message.message_id,
            reply_markup=reply_keyboard(callback_data.m, callback_data.v),
        )


@router.callback_query(CostCallback.filter())
async def show_cost(
    query: CallbackQuery,
    callback_data: CostCallback,
    uow: UnitOfWork,
    user: UserDTO,
    ctx: BotContext,
) -> None:
    """ℹ️: what this reply cost, in an alert."""
    cost = await _once_stored(lambda: redo.reply_cost(uow, user.id, callback_data.m))
    model = ctx.model_name(cost.model_id) if cost.model_id else "—"
    if cost.cost is None:
        text = _("The cost of this reply is not known.")
    elif cost.cost == 0:
        text = _("This reply was free ({model}).").format(model=model)
    else:
        text = _("This reply cost {amount} ({model}).").format(
            amount=money(cost.cost, user.language), model=model
        )
    if cost.input_tokens is not None and cost.output_tokens is not None:
        text += "\n" + _("Tokens: {input} in, {output} out.").format(
            input=cost.input_tokens, output=cost.output_tokens
        )
    await query.answer(text, show_alert=True)


@router.callback_query(ReplacedCallback.filter())
async def on_replaced(query: CallbackQuery) -> None:
    await query.answer(_("This answer was replaced by a newer one below."))


async def _last_prompt(
    message: Message, redis: Redis, ctx: BotContext, user: UserDTO | None = None
) -> bool | dict[str, Any]:
    """The edited message is the prompt of the user's last turn here (and the user may chat:
    edits pass no consent gate)."""
    if user is None or user.is_blocked or user.needs_consent(ctx.policy_version):
        return False
    shown = await last_turn.recall(redis, user.id)
    if shown is None or shown.chat_id != message.chat.id or shown.prompt_tg != message.message_id:
        return False
    return {"shown": shown}


@router.edited_message(on_loop(F.text & ~F.text.startswith("/")), _last_prompt)
async def on_edited_prompt(
    message: Message,
    bot: Bot,
    uow: UnitOfWork,
    user: UserDTO,
    ctx: BotContext,
    redis: Redis,
    providers: ProviderRegistry,
    uow_factory: UnitOfWorkFactory,
    shown: last_turn.LastTurn,
) -> None:
    """The last prompt edited: asked again with the new text, replacing the old turn."""
    me = await bot.me()
    text = (message.text or "").replace(f"@{me.username}", "").strip()
    if not text:
        return
    await _answer_once(
        message,
        bot,
        uow,
        user,
        ctx,
        redis,
        providers,
        text,
        uow_factory=uow_factory,
        redo_of=shown.prompt_id,
        replaced=(shown.reply_tg,) if shown.reply_tg is not None else (),
    )
