"""Background jobs on taskiq with its Redis broker.

Jobs are queued in a Redis stream read by one consumer group (``netroom.queue``): any number of
workers on any machines share the work, a job is acknowledged only after it ends, and the job of
a worker that died runs again elsewhere, so every job is idempotent. The scheduler
(netroom.scheduling) enqueues periodic jobs; it may run in any number of processes (``netroom
run``, ``netroom worker --scheduler``) and each tick is still enqueued once. Every run of a
periodic job is recorded in ``job_runs``. Each job opens its own unit of work and calls one use
case.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from redis.asyncio import Redis
from taskiq import AsyncBroker
from taskiq.receiver import Receiver

from core.clock import Clock, utcnow
from core.media import MediaStore
from core.payments.yookassa import YooKassaClient
from core.ports import Notifier
from core.providers.registry import ProviderRegistry
from core.services import (
    accounts,
    billing,
    broadcasts,
    files,
    job_runs,
    reconciliation,
    retention,
    support,
    tariffs,
    videos,
)
from core.services.payments import PaymentTerms
from core.services.reconciliation import StarsSource
from core.services.tariffs import Tariffs
from db.engine import UnitOfWorkFactory
from db.models import Media
from netroom.backup import BackupPlan, scheduled_backup
from netroom.file_jobs import register_file_jobs
from netroom.queue import DurableStreamBroker
from netroom.scheduling import JobRunsMiddleware, Scheduler, periodic_jobs

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
    # With the payment terms, reconciliation also heals: it credits what the providers charged
    # and we lack, and reverses their refunds (without them it only reports).
    payment_terms: PaymentTerms | None = None
    # Broadcasts: messages per second (Telegram allows about 30 in all) and where the run lock
    # lives, so one broadcast never runs twice at once.
    broadcast_rate: float = 25.0
    redis: Redis | None = None
    file_limits: files.FileLimits = dataclasses.field(default_factory=files.FileLimits)
    embedder: files.Embedder | None = None
    # The daily backup (embedded Postgres only).
    backup: BackupPlan | None = None


class BrokerQueue:
    """The JobQueue the bot and the web app use: a kick onto the Redis queue."""

    def __init__(self, broker: AsyncBroker) -> None:
        self.broker = broker

    async def enqueue(self, task_name: str, **kwargs: object) -> None:
        await enqueue(self.broker, task_name, **kwargs)


def create_broker(
    redis_url: str, deps: JobDeps, *, queue: str = QUEUE, redeliver_after: float = 60.0
) -> AsyncBroker:
    """The job queue under ``queue``: a job whose worker died runs again elsewhere once it has
    been untouched ``redeliver_after`` seconds. Every run of a periodic job is recorded."""
    broker = DurableStreamBroker(
        redis_url,
        queue_name=f"{queue}:stream",
        idle_timeout=redeliver_after,
        legacy_list=queue,
    )
    broker.add_middlewares(JobRunsMiddleware(deps.uow_factory, deps.clock))
    register_jobs(broker, deps)
    return broker


def register_jobs(broker: AsyncBroker, deps: JobDeps) -> None:
    register_backup_jobs(broker, deps)
    register_money_jobs(broker, deps)
    register_broadcast_jobs(broker, deps)
    register_file_jobs(broker, deps)

    async def scrub_technical_data() -> int:
        async with deps.uow_factory() as uow:
            changed = await retention.scrub_technical_data(uow, now=deps.clock())
        log.info("retention: technical data scrubbed from %d rows", changed)
        async with deps.uow_factory() as uow:
            history = await job_runs.purge_history(uow, now=deps.clock())
        log.info("jobs: %d runs older than the kept history dropped", history)
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
            purged = await retention.purge_expired(uow, now=deps.clock(), store=deps.media_store)
        log.info("retention: %s", purged)
        return dataclasses.asdict(purged)

    # Every 10 minutes: a message is gone soon after its 14 days, in small batches.
    broker.register_task(
        purge_expired,
        task_name="retention.purge_expired",
        schedule=[{"cron": "*/10 * * * *"}],
    )


def register_backup_jobs(broker: AsyncBroker, deps: JobDeps) -> None:
    async def daily_backup() -> dict[str, int]:
        if deps.backup is None:
            return {}
        return await scheduled_backup(deps.backup, deps.clock())

    broker.register_task(daily_backup, task_name="backup.daily", schedule=[{"cron": "30 2 * * *"}])


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

    async def cancel_subscription(telegram_id: int, charge_id: str) -> bool:
        """Stop Telegram renewing a subscription (its account was erased)."""
        if deps.notifier is None:
            raise RuntimeError("this worker has no bot")
        return await deps.notifier.cancel_star_subscription(
            telegram_id=telegram_id, charge_id=charge_id
        )

    broker.register_task(cancel_subscription, task_name="subscriptions.cancel")

    async def erase_support_trace(
        admin_chat_id: int, topic_id: int | None, message_ids: list[int]
    ) -> bool:
        """An erased account's support conversation leaves the admin chat too."""
        if deps.notifier is None:
            raise RuntimeError("this worker has no bot")
        await deps.notifier.erase_support_trace(
            admin_chat_id=admin_chat_id, topic_id=topic_id, message_ids=tuple(message_ids)
        )
        return True

    broker.register_task(erase_support_trace, task_name="support.erase")

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
        if report.worth_telling and deps.notifier is not None and deps.admin_chat_ids:
            await deps.notifier.send_admin_report(
                chat_ids=deps.admin_chat_ids, text=report.summary()
            )
        # The payer never heard their top-up arrive (its update was lost): now they do.
        for healed in report.healed:
            if healed.top_up:
                try:
                    await notify_top_up(healed.user_id, healed.kopecks)
                except Exception:
                    log.warning("top-up notice for user %d not sent", healed.user_id, exc_info=True)
        return {
            "checked": report.checked,
            "healed": len(report.healed),
            "differences": len(report.differences),
        }

    # Hourly, and once when the scheduler starts (run_scheduler): a payment whose update was
    # lost is credited within the hour, or at the restart that follows a crash.
    broker.register_task(
        reconcile_payments,
        task_name="payments.reconcile",
        schedule=[{"cron": "40 * * * *"}],
    )


def register_broadcast_jobs(broker: AsyncBroker, deps: JobDeps) -> None:
    async def run_broadcast(broadcast_id: int) -> dict[str, int]:
        """Deliver a broadcast from its cursor on; a second run of the same one waits its turn."""
        if deps.notifier is None or deps.redis is None:
            raise RuntimeError("this worker cannot send broadcasts (no bot or no Redis)")
        lock = f"netroom:broadcast:{broadcast_id}"
        token = secrets.token_hex(8)
        if not await deps.redis.set(lock, token, nx=True, ex=LOCK_SECONDS):
            return {"skipped": 1}
        try:
            return await _deliver(deps, broadcast_id, lock, token)
        finally:
            if await deps.redis.get(lock) == token.encode():
                await deps.redis.delete(lock)

    broker.register_task(run_broadcast, task_name="broadcasts.run")

    async def resume_broadcasts() -> int:
        """After a restart: every unfinished broadcast nobody is running goes on."""
        if deps.redis is None:
            return 0
        async with deps.uow_factory() as uow:
            pending = await broadcasts.unfinished(uow)
        resumed = 0
        for broadcast_id in pending:
            if not await deps.redis.exists(f"netroom:broadcast:{broadcast_id}"):
                await enqueue(broker, "broadcasts.run", broadcast_id=broadcast_id)
                resumed += 1
        return resumed

    broker.register_task(
        resume_broadcasts, task_name="broadcasts.resume", schedule=[{"cron": "* * * * *"}]
    )


LOCK_SECONDS = 60
PROGRESS_EVERY = 2.0


def progress_text(b: broadcasts.BroadcastDTO, *, finished: bool) -> str:
    head = f"Broadcast #{b.id} {'finished' if finished else 'in progress'}"
    return f"{head}: {b.done}/{b.total} handled, {b.sent} delivered, {b.failed} not delivered."


async def _deliver(deps: JobDeps, broadcast_id: int, lock: str, token: str) -> dict[str, int]:
    assert deps.notifier is not None and deps.redis is not None
    interval = 1.0 / max(deps.broadcast_rate, 0.1)
    loop = asyncio.get_running_loop()
    last_report = loop.time()
    while True:
        async with deps.uow_factory() as uow:
            current = await broadcasts.get(uow, broadcast_id)
            if current.status in ("done", "cancelled"):
                return {"sent": current.sent, "failed": current.failed}
            batch = await broadcasts.next_recipients(uow, current)
        if not batch:
            break
        for user_id, telegram_id in batch:
            started = loop.time()
            outcome = await deps.notifier.copy_message(
                telegram_id=telegram_id,
                from_chat_id=current.source_chat_id,
                message_id=current.source_message_id,
            )
            async with deps.uow_factory() as uow:
                if outcome == "blocked":
                    await support.mark_bot_blocked(uow, user_id=user_id, now=deps.clock())
                await broadcasts.advance(
                    uow, broadcast_id, user_id=user_id, delivered=outcome == "sent"
                )
            await deps.redis.expire(lock, LOCK_SECONDS)
            if current.progress_message_id and loop.time() - last_report > PROGRESS_EVERY:
                last_report = loop.time()
                async with deps.uow_factory() as uow:
                    now_state = await broadcasts.get(uow, broadcast_id)
                await _report(deps, now_state, finished=False)
            await asyncio.sleep(max(0.0, interval - (loop.time() - started)))
    async with deps.uow_factory() as uow:
        done = await broadcasts.finish(uow, broadcast_id, now=deps.clock())
    await _report(deps, done, finished=True)
    log.info("broadcast %d: %d sent, %d failed", done.id, done.sent, done.failed)
    return {"sent": done.sent, "failed": done.failed}


async def _report(deps: JobDeps, b: broadcasts.BroadcastDTO, *, finished: bool) -> None:
    if deps.notifier is None or b.progress_chat_id is None or b.progress_message_id is None:
        return
    await deps.notifier.edit_text(
        chat_id=b.progress_chat_id,
        message_id=b.progress_message_id,
        text=progress_text(b, finished=finished),
    )


async def reconcile_now(deps: JobDeps, *, days: int) -> reconciliation.Report:
    """Compare the last ``days`` of payments with Telegram's and YooKassa's records, and heal
    what their records prove (with ``deps.payment_terms``)."""
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
        if deps.payment_terms is not None and deps.tariffs is not None:
            report = await reconciliation.heal(
                uow,
                report,
                charges,
                terms=deps.payment_terms,
                tariffs=deps.tariffs,
                yookassa=deps.yookassa,
                now=deps.clock(),
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


async def run_scheduler(
    broker: AsyncBroker,
    stop: asyncio.Event,
    *,
    uow_factory: UnitOfWorkFactory,
    notifier: Notifier | None = None,
    admin_chat_ids: tuple[int, ...] = (),
    overrides: dict[str, str] | None = None,
    clock: Clock = utcnow,
) -> None:
    """Enqueue periodic jobs until ``stop`` is set; safe to run in several processes at once.
    Failed or overdue jobs are reported through ``notifier`` to ``admin_chat_ids``."""
    jobs = await periodic_jobs(broker, overrides or {})
    scheduler = Scheduler(
        broker,
        jobs,
        uow_factory,
        notifier=notifier,
        admin_chat_ids=admin_chat_ids,
        clock=clock,
    )
    # What a crash may have lost is healed at start-up, not at the next hour.
    try:
        await enqueue(broker, "payments.reconcile")
    except Exception:
        log.warning("the start-up reconciliation could not be queued", exc_info=True)
    await scheduler.run(stop)


async def enqueue(broker: AsyncBroker, task_name: str, **kwargs: Any) -> None:
    task = broker.find_task(task_name)
    if task is None:
        raise LookupError(task_name)
    await task.kiq(**kwargs)
