"""Talking to models: a text message becomes a streamed reply; /new, /model, /settings, Stop."""

from __future__ import annotations

import asyncio
import logging
import secrets
from html import escape

from aiogram import Bot, F, Router
from aiogram.enums import ChatType
from aiogram.filters import Command
from aiogram.types import CallbackQuery, InlineKeyboardMarkup, Message
from aiogram.utils.i18n import gettext as _
from aiogram.utils.keyboard import InlineKeyboardBuilder
from redis.asyncio import Redis

from bot.callbacks import MenuCallback, ModelCallback, SettingCallback, StopCallback
from bot.context import BotContext
from bot.handlers.images import draw
from bot.streaming import Relay
from bot.texts import money
from core.dto import UserDTO
from core.errors import DomainError
from core.media import MediaStore
from core.providers.base import ImagePart
from core.providers.registry import ProviderRegistry
from core.services import chat, files
from core.services.billing import InsufficientFunds
from db.uow import UnitOfWork

log = logging.getLogger(__name__)
router = Router(name="chat")
BUSY_TTL = 600
CLAIM_ATTEMPTS = 10
CLAIM_PAUSE = 0.1
# The Bot API lets bots download files up to 20 MB.
MAX_PHOTO_BYTES = 20 * 1024 * 1024


def _busy_key(bot_id: int, user_id: int) -> str:
    # Per bot as well: deployments sharing a Redis never see each other's flags.
    return f"netroom:busy:{bot_id}:{user_id}"


def _stop_key(turn: str) -> str:
    return f"netroom:stop:{turn}"


def model_keyboard(menu: chat.ModelMenu, current: str, language: str) -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    for model in menu.models:
        mark = "• " if model.id == current else ""
        price = menu.request_price(model)
        label = _("free") if price == 0 else "~" + money(price, language)
        builder.button(text=f"{mark}{model.id} · {label}", callback_data=ModelCallback(id=model.id))
    builder.adjust(1)
    return builder.as_markup()


def settings_keyboard(prefs: chat.ChatPrefs) -> InlineKeyboardMarkup:
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
    builder.button(
        text=f"{mark(prefs.history_enabled)} " + _("Keep chat history (14 days)"),
        callback_data=SettingCallback(name="history_enabled"),
    )
    builder.button(text=_("🧹 Clear chat history"), callback_data=SettingCallback(name="clear"))
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
    await message.answer(
        _("🤖 Current model: <b>{model}</b>. Pick another (price of a short request):").format(
            model=current.id
        ),
        reply_markup=model_keyboard(ctx.models, current.id, user.language),
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
    await chat.set_prefs(uow, user.id, model=model.id)
    await query.answer(_("Model: {model}").format(model=model.id))
    if query.message is not None:
        await bot.edit_message_reply_markup(
            chat_id=query.from_user.id,
            message_id=query.message.message_id,
            reply_markup=model_keyboard(ctx.models, model.id, user.language),
        )


@router.message(Command("settings"))
async def show_settings(message: Message, uow: UnitOfWork, user: UserDTO) -> None:
    prefs = await chat.get_prefs(uow, user.id)
    await message.answer(_("⚙️ Chat settings:"), reply_markup=settings_keyboard(prefs))


@router.callback_query(SettingCallback.filter())
async def on_setting(
    query: CallbackQuery, callback_data: SettingCallback, bot: Bot, uow: UnitOfWork, user: UserDTO
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
            reply_markup=settings_keyboard(updated),
        )


@router.callback_query(StopCallback.filter(), flags={"consent_free": True})
async def on_stop(query: CallbackQuery, callback_data: StopCallback, redis: Redis) -> None:
    await redis.set(_stop_key(callback_data.turn), "1", ex=BUSY_TTL)
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


@router.message(F.photo)
async def on_photo(
    message: Message,
    bot: Bot,
    uow: UnitOfWork,
    user: UserDTO,
    ctx: BotContext,
    redis: Redis,
    providers: ProviderRegistry,
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
    )


@router.message(F.text & ~F.text.startswith("/"))
async def on_text(
    message: Message,
    bot: Bot,
    uow: UnitOfWork,
    user: UserDTO,
    ctx: BotContext,
    redis: Redis,
    providers: ProviderRegistry,
    media_store: MediaStore,
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
    await _answer_once(message, bot, uow, user, ctx, redis, providers, text)


async def _claim(redis: Redis, key: str, turn_id: str) -> bool:
    """Take the user's turn. The previous reply may have just arrived while its bookkeeping
    finishes; a short wait covers that, so only a reply still being written refuses."""
    for _attempt in range(CLAIM_ATTEMPTS):
        if await redis.set(key, turn_id, nx=True, ex=BUSY_TTL):
            return True
        await asyncio.sleep(CLAIM_PAUSE)
    return False


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
) -> None:
    """One request at a time per user, across every bot process."""
    me = await bot.me()
    turn_id = secrets.token_hex(8)
    busy = _busy_key(me.id, user.id)
    if not await _claim(redis, busy, turn_id):
        await message.reply(
            _("⏳ I am still answering your previous message. Wait for it or tap Stop.")
        )
        return
    try:
        await _answer(message, bot, uow, user, ctx, redis, providers, text, turn_id, images)
    finally:
        await redis.delete(busy)


async def _answer(
    message: Message,
    bot: Bot,
    uow: UnitOfWork,
    user: UserDTO,
    ctx: BotContext,
    redis: Redis,
    providers: ProviderRegistry,
    text: str,
    turn_id: str,
    images: tuple[ImagePart, ...] = (),
) -> None:
    if not ctx.models.models:
        await message.reply(_("No models are set up on this server yet."))
        return
    prefs = chat.prefs_from(user.features, history_enabled=user.history_enabled)
    documents = None
    if user.features.get("files"):
        documents = await files.context_for(
            uow,
            user_id=user.id,
            conversation_id=prefs.conversation_id,
            preset_id=prefs.preset_id,
            query=text,
            limits=ctx.file_limits,
            embedder=ctx.embedder,
        )
    try:
        turn = await chat.begin_turn(
            uow,
            user_id=user.id,
            text=text,
            models=ctx.models,
            now=ctx.clock(),
            images=images,
            prefs=prefs,
            tariffs=ctx.tariffs,
            documents=documents.prompt() if documents and documents.passages else None,
        )
    except InsufficientFunds:
        builder = InlineKeyboardBuilder()
        builder.button(text=_("💰 Top up"), callback_data=MenuCallback(action="balance"))
        text = _("Not enough money on your balance for this request. Top up to continue.")
        if ctx.models.get(user.features.get("model")).free_tier:
            text = _(
                "Your free requests to this model are used up until the next reset, and the "
                "balance does not cover a paid one. Top up to continue, or see /balance."
            )
        await message.reply(text, reply_markup=builder.as_markup())
        return
    stop = InlineKeyboardBuilder()
    stop.button(text=_("⏹ Stop"), callback_data=StopCallback(turn=turn_id))

    async def should_stop() -> bool:
        return bool(await redis.get(_stop_key(turn_id)))

    relay = Relay(
        bot,
        message.chat.id,
        private=message.chat.type == ChatType.PRIVATE,
        reply_to=message.message_id,
        show_reasoning=turn.prefs.reasoning,
        stop_markup=stop.as_markup(),
        thinking_text=_("✍️ Writing…"),
        should_stop=should_stop,
    )
    try:
        provider = providers.chat(turn.model.provider)
    except DomainError as exc:
        # Nothing was asked of the model: the hold goes back, the prompt is marked failed.
        await chat.finish_turn(
            uow, turn, text="", reasoning="", usage=None, status="failed", now=ctx.clock()
        )
        await _report(message, exc, delivered=False)
        return
    outcome = await relay.run(provider.stream_chat(turn.request))
    if outcome.status == "stopped":
        await redis.delete(_stop_key(turn_id))
    # The unit of work's transaction ended when the turn began; this opens a new one. A reply
    # that never reached the chat is not stored as complete (the charge's meta says "failed").
    await chat.finish_turn(
        uow,
        turn,
        text=outcome.text,
        reasoning=outcome.reasoning,
        usage=outcome.usage,
        status=outcome.status if outcome.delivered else "failed",
        now=ctx.clock(),
    )
    if documents and documents.passages and outcome.text:
        await message.answer(
            _("📎 Sources: {sources}").format(
                sources="; ".join(escape(s) for s in documents.sources())
            )
        )
    if outcome.error is not None:
        await _report(message, outcome.error, delivered=bool(outcome.text))
    elif outcome.status == "stopped":
        await message.answer(_("⏹ Stopped. You pay only for what was written."))


async def _report(message: Message, error: DomainError, *, delivered: bool) -> None:
    log.info("chat %s: provider failed: %s (%s)", message.chat.id, error.code, error.detail)
    note = _(error.msgid)
    if delivered:
        note = _("⚠️ The reply was cut short. {reason}").format(reason=note)
    await message.answer(note)
