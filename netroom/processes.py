"""The running service: bot, web app, background worker and scheduler, started and stopped
together around one set of resources.

Each long-running role (polling, worker, scheduler) runs under ``netroom.supervise``: when it
fails (Redis or Postgres went away, or anything else) it is started again with backoff, so the
process outlives its dependencies' outages; only a stop (SIGINT, SIGTERM) ends it."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from aiogram import Bot, Dispatcher
from aiogram.exceptions import TelegramAPIError
from aiogram.fsm.storage.base import DefaultKeyBuilder
from aiogram.fsm.storage.redis import RedisStorage
from aiogram.types import LabeledPrice
from aiohttp import web

from bot.factory import create_bot
from bot.notifier import BotNotifier
from bot.stars import TelegramStars, renewal_switch
from core import owners
from core.config import Settings, is_loopback_url
from core.metrics import Refresher
from core.payments.yookassa import PaymentGatewayError
from core.ports import JobQueue
from core.security.initdata import InitDataVerifier
from core.services.payments import InvoiceLinks
from core.services.subscriptions import RenewalSwitch
from db.engine import warm_pool
from netroom.deployment import Deployment
from netroom.drain import InFlight, TrackUpdates, new_turns, track_requests
from netroom.jobs import BrokerQueue, create_broker, queue_depth_of, run_scheduler, run_worker
from netroom.observe import metrics_server
from netroom.resources import Resources
from netroom.supervise import supervise

if TYPE_CHECKING:
    # Each role loads its own: the bot's handlers only where updates are handled, the web app
    # (templates) only where it serves (netroom/lean.py).
    from bot.inbox import InboxPolling, InboxWebhookHandler

log = logging.getLogger(__name__)
# How long start-up waits for the pool's connections to open; the process serves either way.
POOL_WARM_UP = 10.0


@dataclass(frozen=True)
class Roles:
    bot: bool = False
    web: bool = False
    worker: bool = False
    scheduler: bool = False


@dataclass(frozen=True)
class BotLink:
    """Where the bot's Bot API lives and with which token (real Telegram or the sandbox)."""

    token: str
    api_base: str


def app_framers(link: BotLink | None) -> tuple[str, ...]:
    """Who may frame the Mini App: Telegram's web clients, and the sandbox's own client when
    the bot runs on a local sandbox."""
    framers: tuple[str, ...] = ("https://web.telegram.org",)
    if link is not None and is_loopback_url(link.api_base):
        parts = urlsplit(link.api_base)
        framers += (f"{parts.scheme}://{parts.netloc}",)
    return framers


def build_dispatcher(
    deployment: Deployment, *, jobs: JobQueue, owner: str | None = None
) -> Dispatcher:
    from bot.dispatcher import create_dispatcher

    resources = deployment.resources
    storage = RedisStorage(resources.redis, key_builder=DefaultKeyBuilder(with_bot_id=True))
    return create_dispatcher(
        uow_factory=resources.uow_factory,
        ctx=deployment.bot_context(owner=owner),
        storage=storage,
        redis=resources.redis,
        providers=resources.providers,
        media_store=deployment.media_store,
        jobs=jobs,
    )


def invoice_links(bot: Bot) -> InvoiceLinks:
    """Stars invoice links made by the bot for the web app (a subscription with a period)."""

    async def make(
        *,
        title: str,
        description: str,
        payload: str,
        stars: int,
        subscription_period: int | None = None,
    ) -> str:
        try:
            return await bot.create_invoice_link(
                title=title,
                description=description,
                payload=payload,
                currency="XTR",
                prices=[LabeledPrice(label=title, amount=stars)],
                subscription_period=subscription_period,
            )
        except TelegramAPIError as exc:
            raise PaymentGatewayError(f"createInvoiceLink: {exc}") from exc

    return make


def build_web_app(
    deployment: Deployment,
    link: BotLink | None = None,
    *,
    jobs: JobQueue | None = None,
    owner: str | None = None,
    metrics_refreshers: tuple[Refresher, ...] = (),
) -> web.Application:
    from webapp.app import create_app

    settings = deployment.settings
    verifier = None
    if link is not None:
        key = settings.web.init_data_ed25519_public_key
        verifier = InitDataVerifier(
            link.token,
            timedelta(seconds=settings.web.init_data_max_age_seconds),
            ed25519_public_key=bytes.fromhex(key) if key else None,
        )
    # Star top-ups and subscriptions from the Mini App: the bot makes the invoice links and
    # tells Telegram about renewals; referral links need its username.
    telegram = (
        create_bot(link.token, link.api_base, pacing=settings.bot.send_pacing)
        if link is not None
        else None
    )
    stars_links: InvoiceLinks | None = None
    renewals: RenewalSwitch | None = None
    username_lookup: Callable[[], Awaitable[str | None]] | None = None
    if telegram is not None:
        bot = telegram

        async def bot_username() -> str | None:
            try:
                return (await bot.me()).username
            except TelegramAPIError:
                log.warning("the bot's username could not be asked of Telegram", exc_info=True)
                return None

        stars_links, renewals = invoice_links(bot), renewal_switch(bot)
        username_lookup = bot_username
    # The same catalogue, menu and terms as the bot's: the deployment's.
    app = create_app(
        deployment.web_context(
            init_data=verifier,
            app_framers=app_framers(link),
            jobs=jobs,
            stars_invoice_links=stars_links,
            subscription_renewals=renewals,
            bot_username_lookup=username_lookup,
            owner=owner,
            bot_api_probe=telegram.get_me if telegram is not None else None,
            metrics_refreshers=metrics_refreshers,
        )
    )
    if telegram is not None:

        async def close_bot(_: web.Application) -> None:
            await telegram.session.close()

        app.on_cleanup.append(close_bot)
    return app


def install_webhook(
    app: web.Application, dp: Dispatcher, bot: Bot, settings: Settings, resources: Resources
) -> InboxWebhookHandler:
    """Telegram's updates arrive at the web app; the secret header is checked on each, and each
    is answered 200 only once it is recorded in the inbox."""
    from bot.inbox import InboxWebhookHandler

    secret = settings.bot.webhook_secret
    handler = InboxWebhookHandler(
        dp,
        bot,
        resources.uow_factory,
        secret_token=secret.get_secret_value() if secret else None,
    )
    handler.register(app, path=settings.bot.webhook_path)
    return handler


async def _start_bot_webhook(
    dp: Dispatcher, bot: Bot, settings: Settings, handler: InboxWebhookHandler | None
) -> None:
    assert settings.bot.webhook_url is not None
    secret = settings.bot.webhook_secret
    await bot.set_webhook(
        url=settings.bot.webhook_url.rstrip("/") + settings.bot.webhook_path,
        secret_token=secret.get_secret_value() if secret else None,
        allowed_updates=dp.resolve_used_update_types(),
    )
    await dp.emit_startup(bot=bot, **dp.workflow_data)
    if handler is not None:
        await handler.resume()


async def serve(
    settings: Settings,
    resources: Resources,
    roles: Roles,
    *,
    link: BotLink | None,
    stop: asyncio.Event,
    on_ready: Callable[[], Awaitable[None]] | None = None,
) -> None:
    """Run the given roles until ``stop`` is set, then shut down in order: stop taking new work,
    let what is in flight finish for up to the grace period and cut the rest short, close
    connections. Each process that serves turns owns its holds (core/owners.py): a heartbeat
    while it runs, a sweep of stopped processes' holds at start-up and periodically, and none of
    its own left when it stops."""
    async with contextlib.AsyncExitStack() as stack:
        tasks: list[asyncio.Task[None]] = []
        bot: Bot | None = None
        dp: Dispatcher | None = None
        hook: InboxWebhookHandler | None = None
        webhook = bool(settings.bot.webhook_url)
        if roles.bot and link is None:
            raise RuntimeError("the bot role needs BOT__TOKEN or the sandbox")
        owner = owners.new_owner_id()
        inflight = InFlight()
        # What the settings offer, worked out once for the bot, the web app and the worker.
        deployment = Deployment.build(settings, resources)
        times = deployment.hold_times
        keeper: asyncio.Task[None] | None = None
        if roles.bot or roles.web or roles.worker:
            # Alive before the first hold is made; the first sweep runs at once.
            await owners.beat(resources.redis, owner, times.heartbeat_ttl)
            # A process of this machine that crashed holds nothing back until its key expires.
            try:
                await owners.forget_dead_neighbours(resources.redis, owner)
            except Exception:
                log.warning("stopped processes' heartbeats not checked", exc_info=True)
            keeper = asyncio.create_task(
                owners.keep_alive(resources.uow_factory, resources.redis, owner, times),
                name="holds",
            )
            stack.push_async_callback(_step_down, keeper, resources, owner, times.ownerless_after)
        if roles.bot or roles.web:
            # The pool's connections opened before the first update or request, not during the
            # first burst of them.
            opened = await warm_pool(
                resources.engine, settings.database.pool_size, within=POOL_WARM_UP
            )
            if opened < settings.database.pool_size:
                log.warning(
                    "%d of %d database connections opened ahead",
                    opened,
                    settings.database.pool_size,
                )
        # The bot answers updates; a worker uses one too, to deliver what finishes in the
        # background (videos).
        if link is not None and (roles.bot or roles.worker):
            bot = create_bot(link.token, link.api_base, pacing=settings.bot.send_pacing)
            stack.push_async_callback(bot.session.close)
        broker = create_broker(
            resources.endpoints.redis_url,
            deployment.job_deps(
                notifier=_notifier(bot, deployment.model_names),
                stars_source=TelegramStars(bot) if bot is not None else None,
            ),
            redeliver_after=settings.redis.job_redeliver_seconds,
        )
        if not roles.worker:
            await broker.startup()
            stack.push_async_callback(broker.shutdown)
        refreshers = (queue_depth_of(broker, resources.redis),)
        # `netroom bot` and `worker` serve their metrics on a port of their own when one is set.
        await stack.enter_async_context(metrics_server(settings.metrics, refreshers))
        if roles.bot:
            dp = build_dispatcher(deployment, jobs=BrokerQueue(broker), owner=owner)
            dp.update.outer_middleware(TrackUpdates(inflight))

        if roles.web:
            app = build_web_app(
                deployment,
                link,
                jobs=BrokerQueue(broker),
                owner=owner,
                metrics_refreshers=refreshers,
            )
            hook_path: str | None = None
            if bot is not None and dp is not None and webhook:
                hook = install_webhook(app, dp, bot, settings, resources)
                hook_path = settings.bot.webhook_path
            app.middlewares.append(track_requests(inflight, new_turns(hook_path)))
            runner = web.AppRunner(app, access_log=None)
            await runner.setup()
            stack.push_async_callback(runner.cleanup)
            site = web.TCPSite(runner, settings.web.host, settings.web.port)
            await site.start()
            log.info("web app listening on %s:%s", settings.web.host, settings.web.port)

        if bot is not None and dp is not None:
            if webhook:
                if not roles.web:
                    raise RuntimeError("webhook mode receives updates in the web app: run `web`")
                await _start_bot_webhook(dp, bot, settings, hook)
                stack.push_async_callback(dp.emit_shutdown, bot=bot, **dp.workflow_data)
            else:
                await bot.delete_webhook(drop_pending_updates=False)
                polling_dp, polling_bot = dp, bot

                from bot.inbox import InboxPolling

                def poll() -> Awaitable[None]:
                    # A new poller each time the supervisor starts polling again.
                    return _poll(InboxPolling(polling_dp, polling_bot, resources.uow_factory), stop)

                tasks.append(
                    asyncio.create_task(supervise("bot polling", poll, stop), name="bot-polling")
                )

        if bot is not None and roles.bot:
            every = times.sweep_every.total_seconds()
            sweeper = asyncio.create_task(
                _sweep_inline_answers(bot, resources, every), name="inline-sweep"
            )
            stack.push_async_callback(_cancel, sweeper)

        if roles.worker:
            tasks.append(
                asyncio.create_task(
                    supervise("worker", lambda: run_worker(broker, stop), stop), name="worker"
                )
            )
        if roles.scheduler:
            scheduler_bot = bot

            def schedule() -> Awaitable[None]:
                return run_scheduler(
                    broker,
                    stop,
                    uow_factory=resources.uow_factory,
                    notifier=_notifier(scheduler_bot, deployment.model_names),
                    admin_chat_ids=deployment.admin_chat_ids,
                    overrides=settings.jobs.schedule_overrides,
                )

            tasks.append(
                asyncio.create_task(supervise("scheduler", schedule, stop), name="scheduler")
            )

        if on_ready is not None:
            await on_ready()
        await _wait(stop, tasks)
        # No new turns from here on: the web app refuses them, polling stops (its supervised
        # task sees the stop too) and what is in flight gets the grace period.
        inflight.draining = True
        await inflight.drain(settings.shutdown.grace_seconds)
        results = await asyncio.gather(*tasks, return_exceptions=True)
        for task, result in zip(tasks, results, strict=True):
            if isinstance(result, BaseException) and not isinstance(result, asyncio.CancelledError):
                log.error("%s stopped with an error", task.get_name(), exc_info=result)


async def _sweep_inline_answers(bot: Bot, resources: Resources, every: float) -> None:
    """Inline answers a stopped process was writing are told as cut short (bot.inline_open)."""
    from bot import inline_open
    from bot.dispatcher import create_i18n
    from bot.handlers import inline

    await inline_open.keep_sweeping(
        bot,
        resources.redis,
        create_i18n(),
        render=inline.message_html,
        keyboard=lambda: inline.sweep_keyboard(bot),
        every=every,
    )


async def _cancel(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def _notifier(bot: Bot | None, model_names: Mapping[str, str]) -> BotNotifier | None:
    """Reports and background results told through the bot, in each person's language."""
    if bot is None:
        return None
    from bot.dispatcher import create_i18n

    return BotNotifier(bot, create_i18n(), model_names)


async def _step_down(
    keeper: asyncio.Task[None], resources: Resources, owner: str, ownerless_after: timedelta
) -> None:
    keeper.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await keeper
    await owners.step_down(
        resources.uow_factory, resources.redis, owner, ownerless_after=ownerless_after
    )


async def _poll(poller: InboxPolling, stop: asyncio.Event) -> None:
    """Poll through the inbox until ``stop`` (then what is in hand is finished); a failure of
    polling itself propagates, to its supervisor."""
    polling = asyncio.create_task(poller.run())
    stopper = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait([polling, stopper], return_when=asyncio.FIRST_COMPLETED)
        if not polling.done():
            poller.stop()
        await polling
    finally:
        stopper.cancel()
        if not polling.done():
            polling.cancel()


async def _wait(stop: asyncio.Event, tasks: list[asyncio.Task[None]]) -> None:
    """Until a stop is asked for. Supervised roles restart themselves; a task that still ends
    (a bug in the supervision itself) stops everything rather than leave the process half up."""
    stopper = asyncio.create_task(stop.wait())
    done, _ = await asyncio.wait([stopper, *tasks], return_when=asyncio.FIRST_COMPLETED)
    if stopper not in done:
        for task in done:
            if task.exception() is not None:
                log.error("%s failed; stopping", task.get_name(), exc_info=task.exception())
        stop.set()
        await stopper
    else:
        stopper.result()


@contextlib.asynccontextmanager
async def stop_on_signals() -> AsyncIterator[asyncio.Event]:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        yield stop
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
