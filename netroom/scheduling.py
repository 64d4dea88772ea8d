"""The scheduler of periodic jobs, the record of their runs, and the operators' alerts.

Invariants:
- The schedules are the jobs' ``schedule`` labels, read by taskiq's LabelScheduleSource (started
  before it is asked), with JOBS__SCHEDULE_OVERRIDES replacing a job's schedule by name.
- Any number of processes may run the scheduler (``netroom run``, ``netroom worker
  --scheduler``): each tick of each job is enqueued by exactly one of them, the one whose
  ``job_runs`` claim succeeded (core.services.job_runs). A scheduler that dies holds nothing;
  the others go on with the next tick. A tick that passes while no scheduler runs is not
  caught up: the next tick runs the job.
- The worker records each run of a periodic job around its execution (JobRunsMiddleware); a
  failure to record is logged and never stops the job.
- A job that failed, or has not succeeded for twice its interval, is reported to the admin chats
  once per episode, whichever scheduler sees it first; the episode ends only when the job
  succeeds after the report. A scheduler counts a job overdue only for time it has itself been
  running, and one with no bot or no admin chat only logs.
- Postgres or Redis away: a tick that cannot be claimed is tried again while it is current; one
  claimed but not enqueued is recorded as failed; the loop itself never stops for them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from taskiq import AsyncBroker, TaskiqMessage, TaskiqMiddleware, TaskiqResult
from taskiq.schedule_sources import LabelScheduleSource

from core.clock import Clock, utcnow
from core.ports import Notifier
from core.services import job_runs
from core.services.job_runs import Schedule, parse_schedule
from db.engine import UnitOfWorkFactory

log = logging.getLogger(__name__)

# The tick a message was enqueued for (ISO 8601), and the run's row once the worker has it.
TICK_LABEL = "scheduled_for"
RUN_LABEL = "job_run_id"
LOOP_SECONDS = 1.0
HEALTH_EVERY_SECONDS = 5.0
# A queue that does not answer in this time fails the tick rather than stalling every job.
ENQUEUE_TIMEOUT_SECONDS = 10.0


@dataclass(frozen=True)
class PeriodicJob:
    name: str
    schedule: Schedule
    kwargs: dict[str, Any] = field(default_factory=dict)


async def periodic_jobs(broker: AsyncBroker, overrides: dict[str, str]) -> list[PeriodicJob]:
    """Every periodic job registered on ``broker``, with its schedule, by name."""
    source = LabelScheduleSource(broker)
    await source.startup()
    try:
        scheduled = await source.get_schedules()
    finally:
        await source.shutdown()
    jobs: dict[str, PeriodicJob] = {}
    for task in scheduled:
        if task.task_name in jobs:
            raise ValueError(f"{task.task_name} has more than one schedule")
        spec = overrides.get(task.task_name)
        if spec is None:
            if task.cron is not None:
                spec = task.cron
            elif task.interval is not None:
                seconds = (
                    task.interval
                    if isinstance(task.interval, int)
                    else int(task.interval.total_seconds())
                )
                spec = f"{seconds}s"
            else:
                continue  # a one-off `time` schedule is not a periodic job
        jobs[task.task_name] = PeriodicJob(task.task_name, parse_schedule(spec), task.kwargs)
    unknown = sorted(set(overrides) - set(jobs))
    if unknown:
        raise ValueError(f"JOBS__SCHEDULE_OVERRIDES names no periodic job: {', '.join(unknown)}")
    return sorted(jobs.values(), key=lambda j: j.name)


def is_periodic(broker: AsyncBroker, task_name: str) -> bool:
    task = broker.find_task(task_name)
    return task is not None and bool(task.labels.get("schedule"))


class Scheduler:
    """Enqueues each due tick it wins the claim for; watches the jobs' health."""

    def __init__(
        self,
        broker: AsyncBroker,
        jobs: list[PeriodicJob],
        uow_factory: UnitOfWorkFactory,
        *,
        notifier: Notifier | None = None,
        admin_chat_ids: tuple[int, ...] = (),
        clock: Clock = utcnow,
    ) -> None:
        self.broker = broker
        self.jobs = jobs
        self.uow_factory = uow_factory
        self.notifier = notifier
        self.admin_chat_ids = admin_chat_ids
        self.clock = clock
        self.started_at = clock()
        self._done: dict[str, datetime] = {}
        self._logged: set[str] = set()

    async def run(self, stop: asyncio.Event) -> None:
        log.info("scheduler: %s", ", ".join(f"{j.name} ({j.schedule.spec})" for j in self.jobs))
        loop = asyncio.get_running_loop()
        next_health = loop.time()
        while not stop.is_set():
            await self.tick(self.clock())
            if loop.time() >= next_health:
                next_health = loop.time() + HEALTH_EVERY_SECONDS
                try:
                    await self.check_health(self.clock())
                except Exception as exc:
                    log.warning(
                        "scheduler: the jobs' health could not be checked: %s",
                        job_runs.describe_error(exc),
                    )
            now = self.clock()
            delay = LOOP_SECONDS - (now.timestamp() % LOOP_SECONDS)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay + 0.01)

    async def tick(self, now: datetime) -> None:
        for job in self.jobs:
            tick = job.schedule.tick_at(now)
            if tick is None or self._done.get(job.name) == tick:
                continue
            try:
                await self.fire(job, tick)
            except Exception as exc:
                # Postgres away: the claim is tried again while the tick is current.
                log.warning(
                    "scheduler: %s at %s could not be claimed: %s",
                    job.name,
                    tick.isoformat(),
                    job_runs.describe_error(exc),
                )
            else:
                self._done[job.name] = tick

    async def fire(self, job: PeriodicJob, tick: datetime) -> bool:
        """Claim the tick; the winner enqueues it. True if this scheduler enqueued it."""
        async with self.uow_factory() as uow:
            run_id = await job_runs.claim_tick(uow, job=job.name, scheduled_for=tick)
        if run_id is None:
            return False
        task = self.broker.find_task(job.name)
        try:
            if task is None:
                raise LookupError(job.name)
            kicker = task.kicker().with_labels(**{TICK_LABEL: tick.isoformat()})
            async with asyncio.timeout(ENQUEUE_TIMEOUT_SECONDS):
                await kicker.kiq(**job.kwargs)
        except Exception as exc:
            log.exception("scheduler: %s at %s could not be enqueued", job.name, tick)
            async with self.uow_factory() as uow:
                await job_runs.mark_not_enqueued(
                    uow, run_id, error=job_runs.describe_error(exc), now=self.clock()
                )
            return False
        log.info("scheduler: %s enqueued for %s", job.name, tick.isoformat())
        return True

    async def check_health(self, now: datetime) -> None:
        """Report each job that needs an operator, once per episode; end healed episodes."""
        async with self.uow_factory() as uow:
            found = await job_runs.records(uow, [j.name for j in self.jobs])
            open_alerts = await job_runs.alerted(uow)
        for job in self.jobs:
            record = found.get(job.name, job_runs.JobRecord(job.name))
            reason = job_runs.problem(record, job.schedule, now=now, watched_since=self.started_at)
            if reason is None:
                self._logged.discard(job.name)
                reported = open_alerts.get(job.name)
                # Only a success after the report ends the episode (a scheduler that has not
                # watched long enough to see a job overdue must not end another's report).
                if reported and record.last_ok_at and record.last_ok_at > reported:
                    async with self.uow_factory() as uow:
                        await job_runs.end_alert(uow, job=job.name)
                    log.info("scheduler: %s is healthy again", job.name)
                continue
            if job.name in open_alerts:
                continue
            if self.notifier is None or not self.admin_chat_ids:
                # Nobody to tell from here: logged once, left for a scheduler that can report.
                if job.name not in self._logged:
                    self._logged.add(job.name)
                    log.warning("scheduler: periodic job %s %s", job.name, reason)
                continue
            self._logged.discard(job.name)
            async with self.uow_factory() as uow:
                if not await job_runs.claim_alert(uow, job=job.name, reason=reason, now=now):
                    continue
            log.warning("scheduler: periodic job %s %s", job.name, reason)
            await self.report(job.name, reason)

    async def report(self, job: str, reason: str) -> None:
        assert self.notifier is not None
        try:
            await self.notifier.send_admin_report(
                chat_ids=self.admin_chat_ids, text=f"Periodic job {job} {reason}."
            )
        except Exception:
            # Not told: the episode is opened again at the next check.
            log.exception("scheduler: the report on %s could not be sent", job)
            async with self.uow_factory() as uow:
                await job_runs.end_alert(uow, job=job)


class JobRunsMiddleware(TaskiqMiddleware):
    """Records each run of a periodic job in ``job_runs``: started, finished, status, error and
    the rows it affected (its result, when an int or a dict of ints)."""

    def __init__(self, uow_factory: UnitOfWorkFactory, clock: Clock = utcnow) -> None:
        super().__init__()
        self.uow_factory = uow_factory
        self.clock = clock

    async def pre_execute(self, message: TaskiqMessage) -> TaskiqMessage:
        if not is_periodic(self.broker, message.task_name):
            return message
        raw = message.labels.get(TICK_LABEL)
        scheduled_for = datetime.fromisoformat(raw) if isinstance(raw, str) and raw else None
        try:
            async with self.uow_factory() as uow:
                run_id = await job_runs.start_run(
                    uow, job=message.task_name, scheduled_for=scheduled_for, now=self.clock()
                )
        except Exception:
            log.exception("the start of %s could not be recorded", message.task_name)
            return message
        message.labels[RUN_LABEL] = run_id
        return message

    async def post_execute(self, message: TaskiqMessage, result: TaskiqResult[Any]) -> None:
        run_id = message.labels.get(RUN_LABEL)
        if not isinstance(run_id, int):
            return
        failed = result.is_err
        try:
            async with self.uow_factory() as uow:
                await job_runs.finish_run(
                    uow,
                    run_id,
                    now=self.clock(),
                    error=job_runs.describe_error(result.error) if failed else None,
                    rows=None if failed else job_runs.rows_affected(result.return_value),
                )
        except Exception:
            log.exception("the end of %s could not be recorded", message.task_name)


@dataclass(frozen=True)
class JobStatus:
    """One line of ``netroom jobs``."""

    name: str
    schedule: str
    last_started_at: datetime | None
    last_finished_at: datetime | None
    last_status: str | None
    next_due_at: datetime
    problem: str | None

    def as_json(self) -> dict[str, str | None]:
        def iso(at: datetime | None) -> str | None:
            return at.isoformat() if at else None

        return {
            "name": self.name,
            "schedule": self.schedule,
            "last_started_at": iso(self.last_started_at),
            "last_finished_at": iso(self.last_finished_at),
            "last_status": self.last_status,
            "next_due_at": iso(self.next_due_at),
        }


async def job_statuses(
    uow_factory: UnitOfWorkFactory, jobs: list[PeriodicJob], *, now: datetime
) -> list[JobStatus]:
    async with uow_factory() as uow:
        found = await job_runs.records(uow, [j.name for j in jobs])
        open_alerts = await job_runs.alerted(uow)
    statuses = []
    for job in jobs:
        record = found.get(job.name, job_runs.JobRecord(job.name))
        reason = job_runs.problem(
            record, job.schedule, now=now, watched_since=record.first_scheduled_for or now
        )
        reported = open_alerts.get(job.name)
        if reason is None and reported and not (record.last_ok_at and record.last_ok_at > reported):
            reason = "was reported to the operators and has not succeeded since"
        statuses.append(
            JobStatus(
                name=job.name,
                schedule=job.schedule.spec,
                last_started_at=record.last_started_at,
                last_finished_at=record.last_finished_at,
                last_status=record.last_status,
                next_due_at=job.schedule.next_due(now),
                problem=reason,
            )
        )
    return statuses
