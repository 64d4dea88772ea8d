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
from typing import Any

from taskiq import AsyncBroker, TaskiqScheduler
from taskiq.cli.scheduler.run import SchedulerLoop
from taskiq.receiver import Receiver
from taskiq.schedule_sources import LabelScheduleSource
from taskiq_redis import ListQueueBroker

from core.clock import Clock, utcnow
from core.services import retention
from db.engine import UnitOfWorkFactory

log = logging.getLogger(__name__)

QUEUE = "netroom:jobs"


@dataclass(frozen=True)
class JobDeps:
    uow_factory: UnitOfWorkFactory
    clock: Clock = utcnow


def create_broker(redis_url: str, deps: JobDeps, *, queue: str = QUEUE) -> AsyncBroker:
    broker = ListQueueBroker(redis_url, queue_name=queue)
    register_jobs(broker, deps)
    return broker


def register_jobs(broker: AsyncBroker, deps: JobDeps) -> None:
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
