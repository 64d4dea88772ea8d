"""Talking to models: a text message becomes a streamed reply; /new, /model, /settings, Stop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from html import escape

from aiogram import Bot, F, Router
from aiogram.enums import ChatType
from aiogram.exceptions import TelegramAPIError, TelegramBadRequest
from aiogram.types import CallbackQuery, InlineKeyboardMarkup, Message
from aiogram.utils.i18n import gettext as _
from aiogram.utils.keyboard import InlineKeyboardBuilder
from redis.asyncio import Redis

from bot import last_turn
from bot.callbacks import MenuCallback, ModelCallback, SettingCallback, StopCallback
from bot.context import BotContext
from bot.filters import Command, on_loop
from bot.handlers.images import draw
from bot.keyboards import one_button, replaced_keyboard, reply_keyboard, retry_keyboard
from bot.model_picker import picker_keyboard, picker_text
from bot.rendering import html_to_plain
from bot.speech import Speaker
from bot.streaming import Outcome, Relay
from core.dto import UserDTO
from core.errors import DomainError, NotFound
from core.media import MediaStore
from core.model_guide import model_guide
from core.providers.base import ImagePart, StreamEvent
from core.providers.registry import ProviderRegistry
from core.services import chat, conversations, turn_lock, turns
from core.services.billing import InsufficientFunds
from core.services.turn_lock import ReplyInProgress
from db.engine import UnitOfWorkFactory
from db.uow import UnitOfWork

log = logging.getLogger(__name__)
router = Router(name="chat")
# The Bot API lets bots download files up to 20 MB.
MAX_PHOTO_BYTES = 20 * 1024 * 1024


def settings_keyboard(prefs: chat.ChatPrefs, *, speech: bool = False) -> InlineKeyboardMarkup:
    def mark(on: bool) -> str:
        return "✅" if on else "▫️"

    builder = InlineKeyboardBuilder()
    builder.button(
        text=f"{mark(prefs.reasoning)} " + _("Show reasoning"),
        callback_data=SettingCallback(name="reasoning"),
    )
    builder.button(
        text=f"{mark(prefs.web_search)} " + _("Web search"),
        callback_data=SettingCallback(name="web_search"),
    )
    builder.button(
        text=f"{mark(prefs.image_mode)} " + _("Image mode: messages draw pictures"),
        callback_data=SettingCallback(name="image_mode"),
    )
    if speech:
        builder.button(
            text=f"{mark(prefs.read_aloud)} " + _("Read replies aloud (voice messages)"),
            callback_data=SettingCallback(name="read_aloud"),
        )
    builder.button(
        text=f"{mark(prefs.history_enabled)} " + _("Keep chat history (14 days)"),
        callback_data=SettingCallback(name="history_enabled"),
    )
    builder.button(text=_("🧹 Clear chat history"), callback_data=SettingCallback(name="clear"))
    builder.button(text=_("🕒 Time zone"), callback_data=MenuCallback(action="timezone"))
    builder.adjust(1)
    return builder.as_markup()


@router.message(Command("new"))
async def on_new(message: Message, uow: UnitOfWork, user: UserDTO) -> None:
    await chat.new_conversation(uow, user.id)
    await message.answer(_("🆕 New conversation. What would you like to ask?"))


@router.message(Command("model"))
async def show_models(message: Message, uow: UnitOfWork, user: UserDTO, ctx: BotContext) -> None:
    if not ctx.models.models:
        await message.answer(_("No models are set up on this server yet."))
        return
    prefs = await chat.get_prefs(uow, user.id)
    current = ctx.models.get(prefs.model_id)
    guide = model_guide(ctx.models, ctx.tariffs)
    await message.answer(
        picker_text(guide, current, user.language),
        reply_markup=picker_keyboard(guide, current.id, user.language),
    )


@router.callback_query(ModelCallback.filter())
async def on_model(
    query: CallbackQuery,
    callback_data: ModelCallback,
    bot: Bot,
    uow: UnitOfWork,
    user: UserDTO,
    ctx: BotContext,
) -> None:
    model = ctx.models.get(callback_data.id)
    if model.id != callback_data.id:
        await query.answer(_("This model is not available any more."), show_alert=True)
        return
    # The current conversation answers with it from the next message; nothing new is started.
    await conversations.choose_model_now(uow, user.id, model_id=model.id, models=ctx.models)
    await query.answer(_("Model: {model}").format(model=model.title))
    if query.message is not None:
        # The text names the current model too, so it is edited with the keyboard.
        guide = model_guide(ctx.models, ctx.tariffs)
        with contextlib.suppress(TelegramBadRequest):  # tapped twice: "message is not modified"
            await bot.edit_message_text(
                picker_text(guide, model, user.language),
                chat_id=query.message.chat.id,
                message_id=query.message.message_id,
                reply_markup=picker_keyboard(guide, model.id, user.language),
            )


@router.message(Command("settings"))
async def show_settings(message: Message, uow: UnitOfWork, user: UserDTO, ctx: BotContext) -> None:
    prefs = await chat.get_prefs(uow, user.id)
    await message.answer(
        _("⚙️ Chat settings:"),
        reply_markup=settings_keyboard(prefs, speech=ctx.speech is not None),
    )


@router.callback_query(SettingCallback.filter())
async def on_setting(
    query: CallbackQuery,
    callback_data: SettingCallback,
    bot: Bot,
    uow: UnitOfWork,
    user: UserDTO,
    ctx: BotContext,
) -> None:
    prefs = await chat.get_prefs(uow, user.id)
    if callback_data.name == "clear":
        await chat.clear_history(uow, user.id)
        await query.answer(_("Chat history cleared."))
        return
    current = getattr(prefs, callback_data.name, None)
    if not isinstance(current, bool):
        await query.answer()
        return
    if callback_data.name == "history_enabled":
        updated = await chat.set_history(uow, user.id, enabled=not current)
        await query.answer(
            _("History is kept for 14 days.")
            if updated.history_enabled
            else _("History is off: prompts and replies are not kept, and what was kept is gone.")
        )
    else:
        updated = await chat.set_prefs(uow, user.id, **{callback_data.name: not current})
        await query.answer()
    if query.message is not None:
        await bot.edit_message_reply_markup(
            chat_id=query.from_user.id,
            message_id=query.message.message_id,
            reply_markup=settings_keyboard(updated, speech=ctx.speech is not None),
        )


@router.callback_query(StopCallback.filter(), flags={"consent_free": True})
async def on_stop(
    query: CallbackQuery, callback_data: StopCallback, redis: Redis, user: UserDTO | None = None
) -> None:
    if user is not None:
        # A turn that already ended (or someone else's) has nothing to stop.
        with contextlib.suppress(NotFound):
            await turn_lock.request_stop(redis, user_id=user.id, turn_id=callback_data.turn)
    await query.answer(_("Stopping…"))


def _addressed_to_bot(
    message: Message, bot_username: str | None, bot_id: int, *, text: str | None
) -> bool:
    """In groups the bot answers only when mentioned or replied to."""
    if message.chat.type == ChatType.PRIVATE:
        return True
    reply = message.reply_to_message
    if reply is not None and reply.from_user is not None and reply.from_user.id == bot_id:
        return True
    return bool(bot_username) and f"@{bot_username}".lower() in (text or "").lower()


@router.message(on_loop(F.photo))
async def on_photo(
    message: Message,
    bot: Bot,
    uow: UnitOfWork,
    user: UserDTO,
    ctx: BotContext,
    redis: Redis,
    providers: ProviderRegistry,
    uow_factory: UnitOfWorkFactory,
) -> None:
    """A photo (with its caption as the question) goes to a model that can see."""
    me = await bot.me()
    if not _addressed_to_bot(message, me.username, me.id, text=message.caption):
        return
    assert message.photo
    largest = message.photo[-1]
    if largest.file_size and largest.file_size > MAX_PHOTO_BYTES:
        await message.reply(_("This picture is too large. Please send one under 20 MB."))
        return
    downloaded = await bot.download(largest.file_id)
    if downloaded is None:
        return
    data = downloaded.read()
    question = (message.caption or "").replace(f"@{me.username}", "").strip() or _(
        "What is in this picture?"
    )
    await _answer_once(
        message,
        bot,
        uow,
        user,
        ctx,
        redis,
        providers,
        question,
        images=(ImagePart(data=data, mime="image/jpeg"),),
        uow_factory=uow_factory,
    )


@router.message(on_loop(F.text & ~F.text.startswith("/")))
async def on_text(
    message: Message,
    bot: Bot,
    uow: UnitOfWork,
    user: UserDTO,
    ctx: BotContext,
    redis: Redis,
    providers: ProviderRegistry,
    media_store: MediaStore,
    uow_factory: UnitOfWorkFactory,
) -> None:
    me = await bot.me()
    if not _addressed_to_bot(message, me.username, me.id, text=message.text):
        return
    text = (message.text or "").replace(f"@{me.username}", "").strip()
    if not text:
        return
    if user.features.get("image_mode") and message.chat.type == ChatType.PRIVATE:
        await draw(message, text, bot, uow, user, ctx, providers, media_store)
        return
    await _answer_once(
        message, bot, uow, user, ctx, redis, providers, text, uow_factory=uow_factory
    )


async def _answer_once(
    message: Message,
    bot: Bot,
    uow: UnitOfWork,
    user: UserDTO,
    ctx: BotContext,
    redis: Redis,
    providers: ProviderRegistry,
    text: str,
    images: tuple[ImagePart, ...] = (),
    *,
    uow_factory: UnitOfWorkFactory,
    redo_of: int | None = None,
    model: chat.ModelTerms | None = None,
    prompt_tg: int | None = -1,
    replaced: tuple[int, ...] = (),
) -> None:
    """One request at a time per user, across the bot, the web app and every process.
    Asking again: ``redo_of`` (a stored message of the last turn; an empty ``text`` asks its
    prompt again), ``model`` (None: the one that answered it), ``prompt_tg`` (the Telegram
    prompt; -1: ``message``), ``replaced`` (messages in this chat then marked replaced)."""
    if not ctx.models.models:
        await message.reply(_("No models are set up on this server yet."))
        return
    speaker = None
    if ctx.speech is not None and user.features.get("read_aloud"):
        speaker = Speaker(
            message,
            bot,
            ctx,
            user_id=user.id,
            redis=redis,
            providers=providers,
            uow_factory=uow_factory,
        )
    sink = BotSink(
        message,
        bot,
        ctx,
        user,
        speaker=speaker,
        redis=redis,
        prompt_tg=message.message_id if prompt_tg == -1 else prompt_tg,
        replaced=replaced,
    )
    prefs = chat.prefs_from(user.features, history_enabled=user.history_enabled)
    try:
        await turns.run_turn(
            uow,
            uow_factory,
            redis,
            sink,
            user_id=user.id,
            text=text,
            providers=providers,
            clock=ctx.clock,
            prefs=prefs,
            turn_id=sink.turn_id,
            owner=ctx.owner,
            model=model,
            models=ctx.models,
            images=images,
            tariffs=ctx.tariffs,
            file_limits=ctx.file_limits,
            embedder=ctx.embedder,
            documents=bool(user.features.get("files")),
            redo_of=redo_of,
        )
    except ReplyInProgress:
        await message.reply(
            _("⏳ I am still answering your previous message. Wait for it or tap Stop.")
        )


class BotSink:
    """A turn in a Telegram chat: drafts or edits while it streams (``Relay``), the final
    message, and a note for a Stop, a failure or a cut."""

    def __init__(
        self,
        message: Message,
        bot: Bot,
        ctx: BotContext,
        user: UserDTO,
        *,
        speaker: Speaker | None = None,
        redis: Redis | None = None,
        prompt_tg: int | None = None,
        replaced: tuple[int, ...] = (),
    ) -> None:
        self.message = message
        # Reads a complete reply aloud afterwards (the user's "Read replies aloud").
        self.speaker = speaker
        self.bot = bot
        self.ctx = ctx
        self.user = user
        self.redis = redis
        self.prompt_tg = prompt_tg
        self.replaced = replaced
        self.turn_id = turn_lock.new_turn_id()
        self.relay: Relay | None = None

    async def refused(self, error: DomainError) -> None:
        if not isinstance(error, InsufficientFunds):
            # The error router tells it.
            raise error
        builder = InlineKeyboardBuilder()
        builder.button(text=_("💰 Top up"), callback_data=MenuCallback(action="balance"))
        text = _("Not enough money on your balance for this request. Top up to continue.")
        if self.ctx.models.get(self.user.features.get("model")).free_tier:
            text = _(
                "Your free requests to this model are used up until the next reset, and the "
                "balance does not cover a paid one. Top up to continue, or see /balance."
            )
        await self.message.reply(text, reply_markup=builder.as_markup())

    async def started(self, turn: turns.Turn) -> None:
        self.relay = Relay(
            self.bot,
            self.message.chat.id,
            private=self.message.chat.type == ChatType.PRIVATE,
            reply_to=self.message.message_id,
            show_reasoning=turn.prefs.reasoning,
            stop_markup=one_button(_("⏹ Stop"), StopCallback(turn=turn.turn_id)),
            thinking_text=_("✍️ Writing…"),
            # Ask again, rate, cost: only for a turn that is kept.
            final_markup=(
                reply_keyboard(turn.prompt_message_id)
                if turn.prompt_message_id is not None
                else None
            ),
        )
        # Remembered now, so an edit right after the reply finds it (the reply's id follows).
        await self._remember(turn, reply_tg=None)
        # The turn asked again is replaced now: its messages here say so.
        for message_id in self.replaced:
            with contextlib.suppress(TelegramAPIError):
                await self.bot.edit_message_reply_markup(
                    chat_id=self.message.chat.id,
                    message_id=message_id,
                    reply_markup=replaced_keyboard(turn.prompt_message_id or 0),
                )

    async def _remember(self, turn: turns.Turn, *, reply_tg: int | None) -> None:
        if self.redis is not None:
            await last_turn.remember(
                self.redis,
                self.user.id,
                last_turn.LastTurn(
                    chat_id=self.message.chat.id,
                    prompt_tg=self.prompt_tg,
                    prompt_id=turn.prompt_message_id,
                    reply_tg=reply_tg,
                ),
            )

    def _delivery(self, outcome: Outcome, status: str, *, reached: bool = True) -> turns.Delivery:
        assert self.relay is not None
        # Outcome.delivered: False when the final message could not be delivered at all.
        delivered = reached and outcome.delivered
        text = outcome.text
        if not delivered:
            # Billed for what the user did see: the last preview, if any.
            text = html_to_plain(self.relay.last_shown) if self.relay.last_shown else ""
        return turns.Delivery(
            text=text,
            reasoning=outcome.reasoning,
            reasoning_shown=self.relay.show_reasoning,
            usage=outcome.usage,
            status=status,
            error=outcome.error,
            delivered=delivered,
        )

    async def stream(
        self, events: AsyncIterator[StreamEvent], stop: asyncio.Event
    ) -> turns.Delivery:
        assert self.relay is not None

        async def should_stop() -> bool:
            return stop.is_set()

        self.relay.should_stop = should_stop
        outcome = await self.relay.run(events)
        return self._delivery(outcome, outcome.status)

    async def cut(self, status: str) -> turns.Delivery:
        if self.relay is None:
            return turns.Delivery(status=status, delivered=False)
        note = (
            _(
                "⚠️ The reply was cut short: the service is restarting. "
                "You pay only for what was written."
            )
            if status == "cut"
            else None
        )
        try:
            outcome = await self.relay.finish_early(note)
        except TelegramAPIError as exc:
            log.warning("chat %s: the cut reply was not delivered: %s", self.message.chat.id, exc)
            outcome = Outcome(text=self.relay.live.text, reasoning=self.relay.live.reasoning)
            return self._delivery(outcome, status, reached=False)
        return self._delivery(outcome, status)

    async def finished(
        self, turn: turns.Turn, delivery: turns.Delivery, result: turns.TurnResult | None
    ) -> None:
        if self.relay is not None and self.relay.final_id is not None:
            await self._remember(turn, reply_tg=self.relay.final_id)
        if delivery.status == "cut":
            return
        # Only the passages the answer cites: none cited, no list.
        if sources := turn.cited(delivery.text):
            await self.message.answer(
                _("📎 Sources: {sources}").format(sources="; ".join(escape(s) for s in sources))
            )
        if delivery.error is not None:
            await _report(
                self.message,
                delivery.error,
                delivered=bool(delivery.text),
                prompt_id=turn.prompt_message_id,
            )
        elif delivery.status == "stopped":
            await self.message.answer(_("⏹ Stopped. You pay only for what was written."))
        elif self.speaker is not None and delivery.status == "complete" and delivery.text:
            await self.speaker(delivery.text, key=f"{turn.key}:speech")


async def _report(
    message: Message, error: DomainError, *, delivered: bool, prompt_id: int | None = None
) -> None:
    log.info("chat %s: provider failed: %s (%s)", message.chat.id, error.code, error.detail)
    note = _(error.msgid)
    if delivered:
        note = _("⚠️ The reply was cut short. {reason}").format(reason=note)
    await message.answer(
        note, reply_markup=retry_keyboard(prompt_id) if prompt_id is not None else None
    )
