"""Inline mode: ``@bot question`` in any chat, answered by the asker's model and billed to them.

Telegram wants an inline query answered within seconds, too soon for a model. So the query is
answered at once with one result, the question and a "writing" line; when the asker sends it,
Telegram reports the choice (``chosen_inline_result``, with the sent message's
``inline_message_id`` because the result carries a button), and the answer is written then as an
edit of that message. The answer is one detached turn (``core.services.turns``): held, asked,
settled for what the message shows, stored nowhere else.

Invariants:

- nothing is answered unless the operator turned inline mode on (``BOT__INLINE_MODE``, read
  from the deployment's context on every update); off, inline queries go unanswered and chosen
  results are ignored (Telegram sends neither unless inline mode is also on in @BotFather);
- only an account that accepted the current policy is answered; anyone else is offered one
  result, "Open NetRoom to start", with a start link; a blocked account gets nothing;
- each chosen result is answered and billed once: a repeated report of the same result id is
  ignored (a Redis marker set before the turn, kept a day);
- money as in every turn: a failure or an edit that never arrived costs nothing;
- an answer is never left reading "writing…": while it is written it is remembered with the
  process writing it (``bot.inline_open``), and if that process dies a living one edits the
  message to say so within about a minute.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import AsyncGenerator
from html import escape

from aiogram import Bot, F, Router
from aiogram.dispatcher.event.bases import SkipHandler
from aiogram.exceptions import TelegramAPIError
from aiogram.types import (
    ChosenInlineResult,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    InlineQuery,
    InlineQueryResultArticle,
    InlineQueryResultsButton,
    InputTextMessageContent,
    LinkPreviewOptions,
    Message,
)
from aiogram.utils.i18n import gettext as _
from redis.asyncio import Redis

from bot import inline_open
from bot.context import BotContext
from bot.filters import on_loop
from bot.rendering import LIMIT, html_to_plain, render_markdown, split_html
from core.dto import UserDTO
from core.errors import DomainError
from core.providers.base import StreamEvent, TextDelta, UsageReport
from core.providers.registry import ProviderRegistry
from core.services import chat, turns
from core.services.billing import InsufficientFunds
from core.services.turn_lock import ReplyInProgress
from db.engine import UnitOfWorkFactory
from db.uow import UnitOfWork

log = logging.getLogger(__name__)

router = Router(name="inline")


async def _switched_on(event: object, ctx: BotContext) -> bool:
    return ctx.inline_mode


router.inline_query.filter(_switched_on)
router.chosen_inline_result.filter(_switched_on)

START_PARAMETER = "inline"
# A chosen result is answered once; the marker outlives any redelivery.
CHOSEN_TTL_SECONDS = 86_400


def _chosen_key(result_id: str) -> str:
    return f"netroom:inline-chosen:{result_id}"


def _start_link(username: str | None) -> str:
    return f"https://t.me/{username}?start={START_PARAMETER}"


def _open_keyboard(link: str) -> InlineKeyboardMarkup:
    # Also what makes Telegram report the sent message's inline_message_id.
    return InlineKeyboardMarkup(
        inline_keyboard=[[InlineKeyboardButton(text=_("Open NetRoom"), url=link)]]
    )


def _question_html(question: str) -> str:
    return f"❓ <b>{escape(question)}</b>"


def _asker_ready(user: UserDTO | None, ctx: BotContext) -> bool:
    return user is not None and not user.is_blocked and not user.needs_consent(ctx.policy_version)


@router.message(on_loop(F.via_bot))
async def on_sent_through_inline(message: Message, bot: Bot) -> None:
    """A result sent through inline mode into a chat with the bot: already answered there."""
    if message.via_bot is None or message.via_bot.id != bot.id:
        raise SkipHandler
    return None


@router.inline_query()
async def on_inline_query(
    query: InlineQuery, bot: Bot, ctx: BotContext, user: UserDTO | None
) -> None:
    me = await bot.me()
    link = _start_link(me.username)
    if user is not None and user.is_blocked:
        await query.answer([], cache_time=0, is_personal=True)
        return
    if not _asker_ready(user, ctx):
        start = InlineQueryResultArticle(
            id="start",
            title=_("Open NetRoom to start"),
            description=_("Accept the privacy policy in the bot's chat, then ask here."),
            input_message_content=InputTextMessageContent(
                message_text=_("I ask AI models in Telegram with NetRoom: {link}").format(
                    link=escape(link)
                )
            ),
            reply_markup=_open_keyboard(link),
        )
        await query.answer(
            [start],
            cache_time=0,
            is_personal=True,
            button=InlineQueryResultsButton(
                text=_("Open NetRoom to start"), start_parameter=START_PARAMETER
            ),
        )
        return
    assert user is not None
    question = query.query.strip()
    if not question:
        await query.answer([], cache_time=0, is_personal=True)
        return
    model = ctx.models.get(user.features.get("model"))
    article = InlineQueryResultArticle(
        # Fresh for every query: a result is answered (and billed) once.
        id=secrets.token_urlsafe(24),
        title=_("Ask {model}").format(model=ctx.model_name(model.id)),
        description=question[:200],
        input_message_content=InputTextMessageContent(
            message_text=_question_html(question)
            + "\n\n"
            + _("✍️ {model} is writing…").format(model=escape(ctx.model_name(model.id))),
            link_preview_options=LinkPreviewOptions(is_disabled=True),
        ),
        reply_markup=_open_keyboard(link),
    )
    await query.answer([article], cache_time=0, is_personal=True)


class InlineSink:
    """A detached turn whose answer is written into the inline message the asker sent."""

    def __init__(
        self, bot: Bot, inline_message_id: str, question: str, keyboard: InlineKeyboardMarkup
    ) -> None:
        self.bot = bot
        self.inline_message_id = inline_message_id
        self.question = question
        self.keyboard = keyboard

    async def show(self, body_html: str) -> bool:
        """Put the question and ``body_html`` in the message; False when it did not arrive."""
        try:
            await self.bot.edit_message_text(
                inline_message_id=self.inline_message_id,
                text=message_html(self.question, body_html),
                reply_markup=self.keyboard,
                link_preview_options=LinkPreviewOptions(is_disabled=True),
            )
        except TelegramAPIError as exc:
            log.warning("inline message %s not edited: %s", self.inline_message_id, exc)
            return False
        return True

    async def refused(self, error: DomainError) -> None:
        if isinstance(error, InsufficientFunds):
            note = _(
                "Not enough money on your NetRoom balance for this request. "
                "Top up in the bot's chat to continue."
            )
        else:
            note = _(error.msgid)
        await self.show(escape(note))

    async def started(self, turn: turns.Turn) -> None:
        return None

    async def stream(
        self, events: AsyncGenerator[StreamEvent, None], stop: asyncio.Event
    ) -> turns.Delivery:
        text = ""
        usage = None
        try:
            async for event in events:
                if isinstance(event, TextDelta):
                    text += event.text
                elif isinstance(event, UsageReport):
                    usage = event.usage
        except DomainError as exc:
            # Nothing was shown yet: the failure costs nothing.
            return turns.Delivery(status="failed", error=exc, delivered=False)
        header = len(_question_html(self.question)) + 2
        parts = split_html(render_markdown(text) or escape("…"), LIMIT - header - 2)
        body = parts[0] if len(parts) == 1 else parts[0] + "\n…"
        delivered = await self.show(body)
        # Billed for what the message shows.
        shown = text if len(parts) == 1 else html_to_plain(parts[0])
        return turns.Delivery(text=shown, usage=usage, delivered=delivered)

    async def cut(self, status: str) -> turns.Delivery:
        await self.show(escape(_("⚠️ No answer: the service is restarting. Please ask again.")))
        return turns.Delivery(status=status, delivered=False)

    async def finished(
        self, turn: turns.Turn, delivery: turns.Delivery, result: turns.TurnResult | None
    ) -> None:
        if delivery.error is not None:
            log.info("inline answer failed: %s (%s)", delivery.error.code, delivery.error.detail)
            await self.show(escape(_(delivery.error.msgid)))


@router.chosen_inline_result()
async def on_chosen_inline_result(
    chosen: ChosenInlineResult,
    bot: Bot,
    ctx: BotContext,
    user: UserDTO | None,
    uow: UnitOfWork,
    uow_factory: UnitOfWorkFactory,
    redis: Redis,
    providers: ProviderRegistry,
) -> None:
    question = chosen.query.strip()
    if chosen.inline_message_id is None or not question or chosen.result_id == "start":
        return
    if not _asker_ready(user, ctx):
        return
    assert user is not None
    if not await redis.set(_chosen_key(chosen.result_id), "1", nx=True, ex=CHOSEN_TTL_SECONDS):
        log.info("inline result %s reported again: answered once", chosen.result_id)
        return
    me = await bot.me()
    sink = InlineSink(
        bot, chosen.inline_message_id, question, _open_keyboard(_start_link(me.username))
    )
    prefs = chat.prefs_from(user.features, history_enabled=False)
    # Remembered while it is written: if this process dies, another one tells the asker.
    if ctx.owner is not None:
        await inline_open.remember(
            redis,
            chosen.inline_message_id,
            owner=ctx.owner,
            question=question,
            language=user.language,
        )
    try:
        await turns.run_turn(
            uow,
            uow_factory,
            redis,
            sink,
            user_id=user.id,
            text=question,
            providers=providers,
            clock=ctx.clock,
            prefs=prefs,
            owner=ctx.owner,
            models=ctx.models,
            tariffs=ctx.tariffs,
            documents=False,
            detached=True,
        )
    except ReplyInProgress:
        await sink.show(
            escape(_("⏳ I am still answering your previous request. Ask again when it is done."))
        )
    finally:
        await inline_open.forget(redis, chosen.inline_message_id)


def message_html(question: str, body_html: str) -> str:
    """An inline answer's message: the question, then ``body_html``."""
    return f"{_question_html(question)}\n\n{body_html}"


async def sweep_keyboard(bot: Bot) -> InlineKeyboardMarkup:
    """The button every inline answer carries, for messages told by the sweeper."""
    me = await bot.me()
    return _open_keyboard(_start_link(me.username))
