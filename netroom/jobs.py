"""Background jobs on taskiq with its Redis broker.

Jobs are queued in a Redis list, so any number of workers on any machines share the work; the
scheduler enqueues periodic jobs and must run in exactly one process (``netroom run`` or
``netroom worker --scheduler``). Each job opens its own unit of work and calls one use case.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from taskiq import AsyncBroker, TaskiqScheduler
from taskiq.cli.scheduler.run import SchedulerLoop
from taskiq.receiver import Receiver
from taskiq.schedule_sources import LabelScheduleSource
from taskiq_redis import ListQueueBroker

from core.clock import Clock, utcnow
from core.media import MediaStore
from core.payments.yookassa import YooKassaClient
from core.ports import Notifier
from core.providers.registry import ProviderRegistry
from core.services import accounts, billing, reconciliation, retention, tariffs, videos
from core.services.reconciliation import StarsSource
from core.services.tariffs import Tariffs
from db.engine import UnitOfWorkFactory
from db.models import Media

log = logging.getLogger(__name__)

QUEUE = "netroom:jobs"


@dataclass(frozen=True)
class JobDeps:
    uow_factory: UnitOfWorkFactory
    clock: Clock = utcnow
    providers: ProviderRegistry | None = None
    media_store: MediaStore | None = None
    notifier: Notifier | None = None
    video_poll_seconds: float = 5.0
    video_give_up_after: float = 3600.0
    tariffs: Tariffs | None = None
    # Reconciliation: Telegram's Star transactions, YooKassa's payments, who gets the report.
    stars_source: StarsSource | None = None
    yookassa: YooKassaClient | None = None
    admin_chat_ids: tuple[int, ...] = ()


class BrokerQueue:
    """The JobQueue the bot and the web app use: a kick onto the Redis queue."""

    def __init__(self, broker: AsyncBroker) -> None:
        self.broker = broker

    async def enqueue(self, task_name: str, **kwargs: object) -> None:
        await enqueue(self.broker, task_name, **kwargs)


def create_broker(redis_url: str, deps: JobDeps, *, queue: str = QUEUE) -> AsyncBroker:
    broker = ListQueueBroker(redis_url, queue_name=queue)
    register_jobs(broker, deps)
    return broker


def register_jobs(broker: AsyncBroker, deps: JobDeps) -> None:
    register_money_jobs(broker, deps)

    async def scrub_technical_data() -> int:
        async with deps.uow_factory() as uow:
            changed = await retention.scrub_technical_data(uow, now=deps.clock())
        log.info("retention: technical data scrubbed from %d rows", changed)
        return changed

    broker.register_task(
        scrub_technical_data,
        task_name="retention.scrub_technical_data",
        schedule=[{"cron": "17 3 * * *"}],
    )

    async def watch_video(media_id: int) -> str:
        """Poll the provider until the video is ready or failed, then deliver it."""
        if deps.providers is None or deps.media_store is None or deps.notifier is None:
            raise RuntimeError("this worker cannot make videos (no providers or no bot)")
        started = asyncio.get_running_loop().time()
        while True:
            async with deps.uow_factory() as uow:
                media = await uow.session.get(Media, media_id)
                provider_name = str((media.provider_data or {}).get("provider")) if media else ""
                await uow.end_read()
                state = await videos.check_video(
                    uow,
                    provider=deps.providers.video(provider_name),
                    store=deps.media_store,
                    media_id=media_id,
                )
            if state.status != "pending" or (
                asyncio.get_running_loop().time() - started > deps.video_give_up_after
            ):
                break
            await asyncio.sleep(deps.video_poll_seconds)
        if state.telegram_id is None:
            return state.status
        if state.status == "ready" and state.data is not None:
            await deps.notifier.send_video(
                telegram_id=state.telegram_id,
                data=state.data,
                file_name=f"netroom-{media_id}.mp4",
                caption="🎬",
                language=state.language,
            )
        elif state.status == "failed":
            await deps.notifier.send_notice(
                telegram_id=state.telegram_id, msgid=videos.NOTICE_FAILED, language=state.language
            )
        return state.status

    broker.register_task(watch_video, task_name="videos.watch")

    async def purge_expired() -> dict[str, int]:
        async with deps.uow_factory() as uow:
            purged = await retention.purge_expired(uow, now=deps.clock())
        log.info("retention: %s", purged)
        return dataclasses.asdict(purged)

    # Every 10 minutes: a message is gone soon after its 14 days, in small batches.
    broker.register_task(
        purge_expired,
        task_name="retention.purge_expired",
        schedule=[{"cron": "*/10 * * * *"}],
    )


def register_money_jobs(broker: AsyncBroker, deps: JobDeps) -> None:
    async def notify_top_up(user_id: int, credited: int) -> bool:
        """Tell the user in Telegram that a card payment reached the balance."""
        if deps.notifier is None:
            return False
        async with deps.uow_factory() as uow:
            user = await accounts.get_user(uow, user_id)
            balance = await billing.get_balance(uow, user_id)
            await uow.end_read()
        if user.telegram_id is None:
            return False
        await deps.notifier.send_top_up(
            telegram_id=user.telegram_id,
            credited=credited,
            balance=balance.balance,
            language=user.language,
        )
        return True

    broker.register_task(notify_top_up, task_name="payments.notify_top_up")

    async def reset_free_tier() -> int:
        if deps.tariffs is None:
            return 0
        async with deps.uow_factory() as uow:
            return await tariffs.reset_free_tier(uow, deps.tariffs, now=deps.clock())

    # Every hour: whatever the time zone, a period's counters are reset within the hour.
    broker.register_task(
        reset_free_tier, task_name="tariffs.reset_free_tier", schedule=[{"cron": "2 * * * *"}]
    )

    async def expire_subscriptions() -> int:
        async with deps.uow_factory() as uow:
            return await tariffs.expire_subscriptions(uow, now=deps.clock())

    broker.register_task(
        expire_subscriptions,
        task_name="tariffs.expire_subscriptions",
        schedule=[{"cron": "7 * * * *"}],
    )

    async def reconcile_payments(days: int = 2) -> dict[str, object]:
        report = await reconcile_now(deps, days=days)
        if not report.clean and deps.notifier is not None and deps.admin_chat_ids:
            await deps.notifier.send_admin_report(
                chat_ids=deps.admin_chat_ids, text=report.summary()
            )
        return {"checked": report.checked, "differences": len(report.differences)}

    broker.register_task(
        reconcile_payments,
        task_name="payments.reconcile",
        schedule=[{"cron": "40 4 * * *"}],
    )


async def reconcile_now(deps: JobDeps, *, days: int) -> reconciliation.Report:
    """Compare the last ``days`` of payments with Telegram's and YooKassa's records."""
    until = deps.clock()
    since = until - timedelta(days=days)
    charges: list[reconciliation.ProviderCharge] = []
    providers: list[str] = []
    window = reconciliation.MARGIN
    if deps.stars_source is not None:
        charges += await deps.stars_source.star_charges(since - window)
        providers.append("stars")
    if deps.yookassa is not None:
        for p in await deps.yookassa.list_payments(
            created_from=since - window, created_before=until + window, status="succeeded"
        ):
            charges.append(
                reconciliation.ProviderCharge(
                    provider="yookassa",
                    external_id=p.id,
                    amount=p.amount,
                    created_at=datetime.fromisoformat(p.created_at.replace("Z", "+00:00")),
                    refunded=p.refunded_amount >= p.amount > 0,
                )
            )
        providers.append("yookassa")
    async with deps.uow_factory() as uow:
        report = await reconciliation.reconcile(
            uow, since=since, until=until, charges=charges, providers=providers
        )
    for difference in report.differences:
        log.warning("reconciliation: %s", difference)
    log.info("reconciliation: %s", report.checked)
    return report


async def run_worker(broker: AsyncBroker, stop: asyncio.Event, *, concurrency: int = 8) -> None:
    """Take jobs from the queue until ``stop`` is set; jobs in flight are finished first."""
    broker.is_worker_process = True
    await broker.startup()
    try:
        receiver = Receiver(
            broker,
            max_async_tasks=concurrency,
            run_startup=False,
            propagate_exceptions=False,
            wait_tasks_timeout=30,
        )
        await receiver.listen(stop)
    finally:
        await broker.shutdown()


async def run_scheduler(broker: AsyncBroker, stop: asyncio.Event) -> None:
    scheduler = TaskiqScheduler(broker, sources=[LabelScheduleSource(broker)])
    await scheduler.startup()
    loop = asyncio.create_task(SchedulerLoop(scheduler).run(skip_first_run=True))
    try:
        await stop.wait()
    finally:
        loop.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await loop
        await scheduler.shutdown()


async def enqueue(broker: AsyncBroker, task_name: str, **kwargs: Any) -> None:
    task = broker.find_task(task_name)
    if task is None:
        raise LookupError(task_name)
    await task.kiq(**kwargs)
