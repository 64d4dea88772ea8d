"""Pictures and videos from the bot: /image <prompt>, /video <prompt>, and /media to see the
newest and delete any of them (they stay until the user deletes them or the account)."""

from __future__ import annotations

import ipaddress
import logging
from html import escape
from urllib.parse import urlsplit

from aiogram import Bot, Router
from aiogram.enums import ChatAction
from aiogram.filters import CommandObject
from aiogram.filters.callback_data import CallbackData
from aiogram.types import (
    BufferedInputFile,
    CallbackQuery,
    InlineKeyboardMarkup,
    LinkPreviewOptions,
    Message,
)
from aiogram.utils.i18n import gettext as _
from aiogram.utils.keyboard import InlineKeyboardBuilder

from bot.context import BotContext
from bot.filters import Command
from bot.texts import media_caption
from core.dto import UserDTO
from core.media import MediaStore
from core.ports import JobQueue
from core.providers.registry import ProviderRegistry
from core.services import images, videos
from db.uow import UnitOfWork

log = logging.getLogger(__name__)
router = Router(name="images")
# How many of the newest the bot lists; the web gallery pages through all of them.
MEDIA_LISTED = 10
PROMPT_SHOWN = 60
NO_PREVIEW = LinkPreviewOptions(is_disabled=True)


class MediaCallback(CallbackData, prefix="media"):
    # delete
    action: str
    id: int


def _media_link(ctx: BotContext, key: str) -> str:
    return f"{ctx.web_app_url.rstrip('/').removesuffix('/app')}/media/{key}"


def _button_url(url: str) -> bool:
    """Whether Telegram takes ``url`` for a button: it refuses loopback and private addresses
    (a server on 127.0.0.1 in development), and a refused button would lose the picture."""
    host = urlsplit(url).hostname or ""
    if host == "localhost" or host.endswith(".localhost"):
        return False
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return bool(host)
    return address.is_global


def _media_view(
    found: list[images.MediaDTO], ctx: BotContext
) -> tuple[str, InlineKeyboardMarkup | None]:
    if not found:
        return _("You have no pictures or videos yet. Try /image a fox in the snow."), None
    lines = [_("🖼 <b>Your pictures and videos</b>, newest first:"), ""]
    builder = InlineKeyboardBuilder()
    for number, m in enumerate(found, start=1):
        mark = "🎬" if m.kind == "video" else "🎨"
        prompt = m.prompt if len(m.prompt) <= PROMPT_SHOWN else m.prompt[: PROMPT_SHOWN - 1] + "…"
        when = m.created_at.strftime("%Y-%m-%d")
        if m.storage_key:
            title = f'<a href="{escape(_media_link(ctx, m.storage_key))}">{escape(prompt)}</a>'
        else:
            title = escape(prompt)
        state = {"pending": " · " + _("being made"), "failed": " · " + _("failed")}.get(
            m.status, ""
        )
        lines.append(f"{number}. {mark} {title} · {when}{state}")
        # One still being made is settled first (its hold, the job watching it).
        if m.status != "pending":
            builder.button(
                text=_("🗑 {number}").format(number=number),
                callback_data=MediaCallback(action="delete", id=m.id),
            )
    builder.adjust(5)
    return "\n".join(lines), builder.as_markup()


@router.message(Command("media"))
async def show_media(message: Message, uow: UnitOfWork, user: UserDTO, ctx: BotContext) -> None:
    found = await images.list_media(uow, user.id, limit=MEDIA_LISTED)
    text, markup = _media_view(found, ctx)
    await message.answer(text, reply_markup=markup, link_preview_options=NO_PREVIEW)


@router.callback_query(MediaCallback.filter())
async def on_media_action(
    query: CallbackQuery,
    callback_data: MediaCallback,
    bot: Bot,
    uow: UnitOfWork,
    user: UserDTO,
    ctx: BotContext,
    media_store: MediaStore,
) -> None:
    await images.delete_media(uow, media_store, user_id=user.id, media_id=callback_data.id)
    await query.answer(_("Deleted. Its link no longer opens."))
    found = await images.list_media(uow, user.id, limit=MEDIA_LISTED)
    text, markup = _media_view(found, ctx)
    if isinstance(query.message, Message):
        await query.message.edit_text(text, reply_markup=markup, link_preview_options=NO_PREVIEW)
    else:
        await bot.send_message(
            query.from_user.id, text, reply_markup=markup, link_preview_options=NO_PREVIEW
        )


@router.message(Command("image"))
async def on_image(
    message: Message,
    command: CommandObject,
    bot: Bot,
    uow: UnitOfWork,
    user: UserDTO,
    ctx: BotContext,
    providers: ProviderRegistry,
    media_store: MediaStore,
) -> None:
    await draw(message, command.args or "", bot, uow, user, ctx, providers, media_store)


async def draw(
    message: Message,
    prompt: str,
    bot: Bot,
    uow: UnitOfWork,
    user: UserDTO,
    ctx: BotContext,
    providers: ProviderRegistry,
    media_store: MediaStore,
) -> None:
    """Generate a picture for ``prompt`` and send it (the /image command and image mode)."""
    if not ctx.image_models:
        await message.answer(_("Image generation is not set up on this server yet."))
        return
    model = ctx.image_models[0]
    await bot.send_chat_action(message.chat.id, ChatAction.UPLOAD_PHOTO)
    picture = await images.generate_image(
        uow,
        store=media_store,
        provider=providers.image(model.provider),
        user_id=user.id,
        prompt=prompt,
        model=model,
        now=ctx.clock(),
    )
    extension = {"image/jpeg": "jpg", "image/webp": "webp"}.get(picture.mime, "png")
    # The model, the price and the prompt; the full-size file behind a button, not a raw URL.
    caption = media_caption(
        "🎨", ctx.model_name(model.id), picture.charged, prompt.strip(), user.language
    )
    link = _media_link(ctx, picture.storage_key)
    full_size = None
    if _button_url(link):
        builder = InlineKeyboardBuilder()
        builder.button(text=_("🔍 Full size"), url=link)
        full_size = builder.as_markup()
    await message.answer_photo(
        BufferedInputFile(picture.data, filename=f"netroom-{picture.media_id}.{extension}"),
        caption=caption,
        reply_markup=full_size,
    )


@router.message(Command("video"))
async def on_video(
    message: Message,
    command: CommandObject,
    uow: UnitOfWork,
    user: UserDTO,
    ctx: BotContext,
    providers: ProviderRegistry,
    jobs: JobQueue,
) -> None:
    if not ctx.video_models:
        await message.answer(_("Video generation is not set up on this server yet."))
        return
    model = ctx.video_models[0]
    media_id = await videos.submit_video(
        uow,
        provider=providers.video(model.provider),
        user_id=user.id,
        prompt=command.args or "",
        model=model,
        now=ctx.clock(),
    )
    await jobs.enqueue("videos.watch", media_id=media_id)
    await message.answer(_("🎬 Your video is being made. It will arrive here when it is ready."))
