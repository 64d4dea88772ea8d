from __future__ import annotations

from aiogram import Bot, Dispatcher
from aiogram.fsm.storage.base import BaseStorage
from aiogram.types import MenuButtonWebApp, WebAppInfo
from aiogram.utils.i18n import I18n
from redis.asyncio import Redis

from bot.commands import set_admin_commands, set_default_commands
from bot.context import BotContext
from bot.handlers import (
    account,
    admin,
    chat,
    errors,
    fallback,
    files,
    images,
    inline,
    linking,
    money,
    presets,
    privacy,
    redo,
    start,
    support,
    timezone,
    voice,
)
from bot.middlewares import ConsentGateMiddleware, LocaleMiddleware, UnitOfWorkMiddleware
from bot.observe import UpdateMetricsMiddleware
from core.i18n import DOMAIN, LOCALES_DIR
from core.media import MediaStore
from core.ports import JobQueue
from core.providers.registry import ProviderRegistry
from db.engine import UnitOfWorkFactory


def create_i18n() -> I18n:
    return I18n(path=LOCALES_DIR, default_locale="en", domain=DOMAIN)


def create_dispatcher(
    *,
    uow_factory: UnitOfWorkFactory,
    ctx: BotContext,
    storage: BaseStorage,
    redis: Redis,
    providers: ProviderRegistry,
    media_store: MediaStore,
    jobs: JobQueue,
) -> Dispatcher:
    """The bot's dispatcher. ``redis`` holds cross-process flags (one request at a time per
    user, Stop); ``providers`` reaches the models."""
    i18n = create_i18n()
    dp = Dispatcher(
        storage=storage,
        ctx=ctx,
        i18n=i18n,
        redis=redis,
        providers=providers,
        media_store=media_store,
        jobs=jobs,
        # Use cases that settle money apart from the update's own unit of work.
        uow_factory=uow_factory,
    )
    dp.update.outer_middleware(UpdateMetricsMiddleware())
    dp.update.outer_middleware(UnitOfWorkMiddleware(uow_factory))
    LocaleMiddleware(i18n).setup(dp)
    gate = ConsentGateMiddleware()
    dp.message.middleware(gate)
    dp.callback_query.middleware(gate)
    dp.include_routers(
        errors.router,
        admin.router,
        # Before support, which mirrors every other edit.
        redo.router,
        support.router,
        # Before start: /start link-<code> is this router's.
        linking.router,
        start.router,
        account.router,
        timezone.router,
        money.router,
        privacy.router,
        presets.router,
        files.router,
        images.router,
        voice.router,
        # Before chat: a result sent through inline mode into the bot's own chat is no prompt.
        # Answers only while the operator's switch (ctx.inline_mode) is on.
        inline.router,
        chat.router,
        fallback.router,
    )
    dp.startup.register(set_commands)
    return dp


async def set_commands(bot: Bot, i18n: I18n, ctx: BotContext) -> None:
    """The command menus (everyone's, and each operator's with the admin commands), and the
    menu button that opens the Mini App in every private chat."""
    await bot.set_chat_menu_button(
        menu_button=MenuButtonWebApp(text="NetRoom", web_app=WebAppInfo(url=ctx.web_app_url))
    )
    await set_default_commands(bot, i18n)
    for admin_id in sorted(ctx.admin_ids):
        await set_admin_commands(bot, i18n, admin_id)
