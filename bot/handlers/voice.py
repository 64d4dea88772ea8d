"""Voice notes and audio files: downloaded (within the Bot API's 20 MB), transcribed (billed per
started minute), the transcript shown, then answered like a typed message. The audio is held in
memory only while it is transcribed; the transcript is kept as the user's prompt."""

from __future__ import annotations

import io
import logging
from html import escape

from aiogram import Bot, F, Router
from aiogram.exceptions import TelegramBadRequest
from aiogram.types import Audio, Message, Voice
from aiogram.utils.i18n import gettext as _
from aiogram.utils.keyboard import InlineKeyboardBuilder
from redis.asyncio import Redis

from bot.callbacks import MenuCallback
from bot.context import BotContext
from bot.filters import on_loop
from bot.handlers.chat import _addressed_to_bot, _answer_once
from core.dto import UserDTO
from core.providers.registry import ProviderRegistry
from core.services import turn_lock, voice
from core.services.billing import InsufficientFunds
from db.engine import UnitOfWorkFactory
from db.uow import UnitOfWork

log = logging.getLogger(__name__)
router = Router(name="voice")
# What of a long transcript is shown back (a Telegram message holds 4 096 characters).
SHOWN_CHARS = 3500


def _too_large() -> str:
    return _("This recording is too large. Please send one under {limit_mb} MB.").format(
        limit_mb=voice.MAX_AUDIO_BYTES // (1024 * 1024)
    )


@router.message(on_loop(F.voice | F.audio))
async def on_voice(
    message: Message,
    bot: Bot,
    uow: UnitOfWork,
    user: UserDTO,
    ctx: BotContext,
    redis: Redis,
    providers: ProviderRegistry,
    uow_factory: UnitOfWorkFactory,
) -> None:
    me = await bot.me()
    if not _addressed_to_bot(message, me.username, me.id, text=message.caption):
        return
    if ctx.transcription is None:
        await message.reply(_("Voice messages are not available on this server yet."))
        return
    if await redis.exists(turn_lock.lock_key(user.id)):
        # Its transcript could not be answered now: not transcribed, not charged.
        await message.reply(
            _("⏳ I am still answering your previous message. Wait for it or tap Stop.")
        )
        return
    media: Voice | Audio | None = message.voice or message.audio
    assert media is not None
    if media.file_size is not None and media.file_size > voice.MAX_AUDIO_BYTES:
        await message.reply(_too_large())
        return
    buffer = io.BytesIO()
    try:
        await bot.download(media, destination=buffer)
    except TelegramBadRequest as exc:
        # The size was not given and Telegram refused the download as too big.
        if "too big" not in exc.message.lower():
            raise
        await message.reply(_too_large())
        return
    filename = (media.file_name or "audio.mp3") if isinstance(media, Audio) else "voice.ogg"
    try:
        heard = await voice.transcribe(
            uow_factory,
            redis,
            provider=providers.transcription(ctx.transcription.provider),
            model=ctx.transcription,
            user_id=user.id,
            audio=buffer.getvalue(),
            mime=media.mime_type or "audio/ogg",
            filename=filename,
            seconds=media.duration,
            # One charge per message, however often the update arrives.
            key=f"voice:tg:{message.chat.id}:{message.message_id}",
            owner=ctx.owner,
        )
    except InsufficientFunds:
        builder = InlineKeyboardBuilder()
        builder.button(text=_("💰 Top up"), callback_data=MenuCallback(action="balance"))
        await message.reply(
            _("Not enough money on your balance to transcribe this recording. Top up to continue."),
            reply_markup=builder.as_markup(),
        )
        return
    finally:
        buffer.close()
    if not heard.text:
        await message.reply(_("🎙 I could not make out any words in this recording."))
        return
    shown = heard.text if len(heard.text) <= SHOWN_CHARS else heard.text[:SHOWN_CHARS] + "…"
    await message.reply(f"🎙 {escape(shown)}")
    caption = (message.caption or "").replace(f"@{me.username}", "").strip()
    # A caption on an audio file says what to do with it ("summarise this").
    prompt = f"{caption}\n\n{heard.text}" if caption else heard.text
    await _answer_once(
        message, bot, uow, user, ctx, redis, providers, prompt, uow_factory=uow_factory
    )
