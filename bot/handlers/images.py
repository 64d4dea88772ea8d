"""Image generation from the bot: /image <prompt>."""

from __future__ import annotations

import logging

from aiogram import Bot, Router
from aiogram.enums import ChatAction
from aiogram.filters import Command, CommandObject
from aiogram.types import BufferedInputFile, Message
from aiogram.utils.i18n import gettext as _

from bot.context import BotContext
from bot.texts import money
from core.dto import UserDTO
from core.media import MediaStore
from core.ports import JobQueue
from core.providers.registry import ProviderRegistry
from core.services import images, videos
from db.uow import UnitOfWork

log = logging.getLogger(__name__)
router = Router(name="images")


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
    caption = _("🎨 {model}").format(model=model.id)
    if picture.charged:
        caption += " · " + money(picture.charged, user.language)
    base = ctx.web_app_url.rstrip("/").removesuffix("/app")
    link = f"{base}/media/{picture.storage_key}"
    caption += f"\n{link}"
    await message.answer_photo(
        BufferedInputFile(picture.data, filename=f"netroom-{picture.media_id}.{extension}"),
        caption=caption,
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
