"""Background jobs on taskiq with its Redis broker: the wiring.

Jobs are queued in a Redis stream read by one consumer group (``netroom.queue``): any number of
workers on any machines share the work, a job is acknowledged only after it ends, and the job of
a worker that died runs again elsewhere, so every job is idempotent. The scheduler
(netroom.scheduling) enqueues periodic jobs; it may run in any number of processes (``netroom
run``, ``netroom worker --scheduler``) and each tick is still enqueued once. Every run of a
periodic job is recorded in ``job_runs``. What each job does lives in ``worker.jobs`` (each opens
its own unit of work and calls one use case); this module holds the table of task names,
schedules and job functions, and runs the worker and the scheduler.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from redis.asyncio import Redis
from taskiq import AsyncBroker, TaskiqEvents, TaskiqState
from taskiq.receiver import Receiver

from core import metrics
from core.clock import Clock, utcnow
from core.ports import Notifier
from db.engine import UnitOfWorkFactory
from netroom.observe import JobMetricsMiddleware, queue_depth
from netroom.queue import DurableStreamBroker
from netroom.scheduling import JobRunsMiddleware, Scheduler, periodic_jobs
from worker.deps import JobDeps
from worker.jobs import backup, broadcasts, files, money, retention, videos

__all__ = ["QUEUE", "BrokerQueue", "JobDeps", "create_broker", "enqueue", "register_jobs"]

log = logging.getLogger(__name__)

QUEUE = "netroom:jobs"


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
    broker.add_middlewares(JobMetricsMiddleware(), JobRunsMiddleware(deps.uow_factory, deps.clock))
    register_jobs(broker, deps)
    return broker


def register_jobs(broker: AsyncBroker, deps: JobDeps) -> None:
    """Every job under its task name (and schedule). The names and cron labels are what the
    scheduler, ``job_runs`` and ``netroom jobs`` know a job by: they never change."""
    queue = BrokerQueue(broker)

    def task(name: str, cron: str | None = None) -> Any:
        schedule = [{"cron": cron}] if cron else None

        def add(fn: Any) -> Any:
            if schedule is None:
                return broker.register_task(fn, task_name=name)
            return broker.register_task(fn, task_name=name, schedule=schedule)

        return add

    @task("backup.daily", "30 2 * * *")
    async def daily_backup() -> dict[str, int]:
        return await backup.daily_backup(deps)

    @task("payments.notify_top_up")
    async def notify_top_up(user_id: int, credited: int) -> bool:
        return await money.notify_top_up(deps, user_id, credited)

    @task("payments.notify_referral_earnings")
    async def notify_referral_earnings(payment_id: int) -> int:
        return await money.notify_referral_earnings(deps, payment_id)

    @task("subscriptions.cancel")
    async def cancel_subscription(telegram_id: int, charge_id: str) -> bool:
        return await money.cancel_subscription(deps, telegram_id, charge_id)

    @task("support.erase")
    async def erase_support_trace(
        admin_chat_id: int, topic_id: int | None, message_ids: list[int]
    ) -> bool:
        return await money.erase_support_trace(deps, admin_chat_id, topic_id, message_ids)

    # Every hour: whatever the time zone, a period's counters are reset within the hour.
    @task("tariffs.reset_free_tier", "2 * * * *")
    async def reset_free_tier() -> int:
        return await money.reset_free_tier(deps)

    @task("tariffs.expire_subscriptions", "7 * * * *")
    async def expire_subscriptions() -> int:
        return await money.expire_subscriptions(deps)

    # Hourly, and once when the scheduler starts (run_scheduler): a payment whose update was
    # lost is credited within the hour, or at the restart that follows a crash.
    @task("payments.reconcile", "40 * * * *")
    async def reconcile_payments(days: int = 2) -> dict[str, object]:
        return await money.reconcile_payments(deps, days)

    @task("broadcasts.run")
    async def run_broadcast(broadcast_id: int) -> dict[str, int]:
        return await broadcasts.run_broadcast(deps, broadcast_id)

    @task("broadcasts.resume", "* * * * *")
    async def resume_broadcasts() -> int:
        return await broadcasts.resume_broadcasts(deps, queue)

    @task("files.index")
    async def index_file(file_id: int) -> str:
        return await files.index_file(deps, file_id)

    @task("files.reap", "* * * * *")
    async def reap_stuck_files() -> dict[str, int]:
        return await files.reap_stuck_files(deps, queue)

    async def reap_at_start(_: TaskiqState) -> None:
        # What a crash left behind is picked up now, not at the next minute.
        try:
            await enqueue(broker, "files.reap")
        except Exception:
            log.warning("files: the start-up sweep could not be queued", exc_info=True)

    broker.add_event_handler(TaskiqEvents.WORKER_STARTUP, reap_at_start)

    @task("retention.scrub_technical_data", "17 3 * * *")
    async def scrub_technical_data() -> int:
        return await retention.scrub_technical_data(deps)

    @task("videos.watch")
    async def watch_video(media_id: int) -> str:
        return await videos.watch_video(deps, media_id)

    # Every 10 minutes: a message is gone soon after its 14 days, in small batches.
    @task("retention.purge_expired", "*/10 * * * *")
    async def purge_expired() -> dict[str, int]:
        return await retention.purge_expired(deps)


def queue_depth_of(broker: AsyncBroker, redis: Redis) -> metrics.Refresher:
    """What brings the queue depth gauge up to date before a scrape."""
    assert isinstance(broker, DurableStreamBroker)
    return queue_depth(redis, broker.queue_name, broker.dead_letters)


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
