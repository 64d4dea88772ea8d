"""Periodic jobs: when they are due, the record of their runs, and when operators are told.

Invariants:
- A tick of a job (the minute a cron expression matches, or an interval's slot counted from the
  Unix epoch, so every scheduler computes the same ticks) is claimed by inserting its
  ``job_runs`` row (job, scheduled_for) in a short transaction of its own, committed before the
  job is enqueued. The unique key lets exactly one claim succeed however many schedulers try,
  and no lock outlives that statement: a scheduler that dies mid-tick never holds up the next.
- A claimed tick that could not be enqueued is recorded as failed, never silently lost.
- Every run of a periodic job, scheduled or enqueued by hand, has a row: started, finished,
  ``ok`` or ``failed``, the error's kind and first line, and the rows it affected.
- A job whose last run failed, or that has not succeeded for twice its interval, is one episode:
  claimed once in ``job_alerts`` (so it is reported once, whichever scheduler sees it first)
  and ended by the job's next success.
- ``job_runs`` holds names, times and counts, no personal data; rows older than 90 days go.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pycron
from sqlalchemy import bindparam, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.types import String

from db.uow import UnitOfWork

HISTORY = timedelta(days=90)
PURGE_BATCH = 5_000
# A cron expression that matches nothing within this horizon is refused.
HORIZON_DAYS = 5 * 366
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
ERROR_CHARS = 300

_INTERVAL = re.compile(r"^\s*(\d+)\s*([smh])\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3600}


@dataclass(frozen=True)
class Schedule:
    """A five-field cron expression in UTC, or a fixed interval."""

    spec: str
    cron: str | None = None
    interval: timedelta | None = None

    def tick_at(self, now: datetime) -> datetime | None:
        """The tick ``now`` falls in, if the job is due in it."""
        if self.interval is not None:
            step = int(self.interval.total_seconds())
            seconds = int((now - EPOCH).total_seconds())
            return EPOCH + timedelta(seconds=seconds - seconds % step)
        assert self.cron is not None
        minute = now.astimezone(UTC).replace(second=0, microsecond=0)
        return minute if pycron.is_now(self.cron, minute) else None

    def next_due(self, now: datetime) -> datetime:
        """The first tick after ``now``."""
        if self.interval is not None:
            current = self.tick_at(now)
            assert current is not None
            return current + self.interval
        assert self.cron is not None
        found = _next_cron(self.cron, now)
        if found is None:
            raise ValueError(f"{self.spec!r} matches no time in the next five years")
        return found

    def period(self, now: datetime) -> timedelta:
        """How long between two runs around ``now`` (for a cron expression, the next gap)."""
        if self.interval is not None:
            return self.interval
        first = self.next_due(now)
        return self.next_due(first) - first


def parse_schedule(spec: str) -> Schedule:
    """``30s``, ``10m``, ``2h`` (an interval) or a five-field cron expression (UTC)."""
    interval = _INTERVAL.match(spec)
    if interval:
        seconds = int(interval.group(1)) * _UNITS[interval.group(2)]
        if seconds < 1:
            raise ValueError("an interval is at least one second")
        return Schedule(spec=spec.strip(), interval=timedelta(seconds=seconds))
    fields = spec.split()
    if len(fields) != 5:
        raise ValueError(f"{spec!r} is neither an interval (30s, 10m, 2h) nor a 5-field cron")
    cron = " ".join(fields)
    try:
        pycron.is_now(cron, EPOCH)
        found = _next_cron(cron, EPOCH)
    except (ValueError, KeyError, IndexError) as exc:
        raise ValueError(f"{spec!r} is not a valid cron expression") from exc
    if found is None:
        raise ValueError(f"{spec!r} matches no time in five years")
    return Schedule(spec=cron, cron=cron)


def _next_cron(cron: str, now: datetime) -> datetime | None:
    """The first minute after ``now`` the expression matches: the minutes and hours it allows
    are found once, then the days are walked, so even a yearly expression takes a few thousand
    checks, and one that can never match is known at once."""
    minute, hour, dom, month, dow = cron.split(" ")
    base = datetime(2026, 1, 1, tzinfo=UTC)  # any day: minutes and hours do not depend on it
    minutes = [m for m in range(60) if pycron.is_now(f"{minute} * * * *", base.replace(minute=m))]
    hours = [h for h in range(24) if pycron.is_now(f"* {hour} * * *", base.replace(hour=h))]
    if not minutes or not hours:
        return None
    start = now.astimezone(UTC).replace(second=0, microsecond=0) + timedelta(minutes=1)
    day = start.replace(hour=0, minute=0)
    for _ in range(HORIZON_DAYS):
        if pycron.is_now(f"* * {dom} {month} {dow}", day):
            for h in hours:
                for m in minutes:
                    candidate = day.replace(hour=h, minute=m)
                    if candidate >= start:
                        return candidate
        day += timedelta(days=1)
    return None


@dataclass(frozen=True)
class JobRecord:
    """What the runs of one job say about it."""

    job: str
    last_started_at: datetime | None = None
    last_finished_at: datetime | None = None
    last_status: str | None = None
    last_error: str | None = None
    last_ok_at: datetime | None = None
    first_scheduled_for: datetime | None = None


def describe_error(exc: BaseException | None) -> str:
    """The kind of the error and the first line of its message, briefly."""
    if exc is None:
        return "failed"
    message = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    described = f"{type(exc).__name__}: {message}" if message else type(exc).__name__
    return described[:ERROR_CHARS]


def rows_affected(result: object) -> int | None:
    """A job's result as a count: an int, or the sum of a dict's int values."""
    if isinstance(result, bool):
        return None
    if isinstance(result, int):
        return result
    if isinstance(result, dict):
        counts = [v for v in result.values() if isinstance(v, int) and not isinstance(v, bool)]
        return sum(counts) if counts else None
    return None


CLAIM_TICK = text(
    """
    INSERT INTO job_runs (job, scheduled_for, status)
    VALUES (:job, :scheduled_for, 'queued')
    ON CONFLICT (job, scheduled_for) DO NOTHING
    RETURNING id
    """
)


async def claim_tick(uow: UnitOfWork, *, job: str, scheduled_for: datetime) -> int | None:
    """The run's id if this caller is the one to enqueue the tick, else None."""
    result = await uow.session.execute(CLAIM_TICK, {"job": job, "scheduled_for": scheduled_for})
    run_id = result.scalar_one_or_none()
    await uow.commit()
    return run_id


async def mark_not_enqueued(uow: UnitOfWork, run_id: int, *, error: str, now: datetime) -> None:
    await uow.session.execute(
        text(
            """
            UPDATE job_runs SET status = 'failed', finished_at = :now, error = :error
            WHERE id = :id AND started_at IS NULL
            """
        ),
        {"id": run_id, "now": now, "error": f"not enqueued: {error}"[:ERROR_CHARS]},
    )
    await uow.commit()


# The scheduler's row when there is one (scheduled_for set); a new row for a run by hand
# (NULL never conflicts). A redelivered message starts its run again.
START_RUN = text(
    """
    INSERT INTO job_runs (job, scheduled_for, started_at, status)
    VALUES (:job, :scheduled_for, :now, 'running')
    ON CONFLICT (job, scheduled_for) DO UPDATE
       SET started_at = excluded.started_at, status = 'running', finished_at = NULL,
           error = NULL, rows_affected = NULL
    RETURNING id
    """
)


async def start_run(
    uow: UnitOfWork, *, job: str, scheduled_for: datetime | None, now: datetime
) -> int:
    result = await uow.session.execute(
        START_RUN, {"job": job, "scheduled_for": scheduled_for, "now": now}
    )
    run_id = int(result.scalar_one())
    await uow.commit()
    return run_id


async def finish_run(
    uow: UnitOfWork,
    run_id: int,
    *,
    now: datetime,
    error: str | None,
    rows: int | None,
) -> None:
    await uow.session.execute(
        text(
            """
            UPDATE job_runs SET finished_at = :now, status = :status, error = :error,
                   rows_affected = :rows
            WHERE id = :id
            """
        ),
        {
            "id": run_id,
            "now": now,
            "status": "ok" if error is None else "failed",
            "error": error,
            "rows": rows,
        },
    )
    await uow.commit()


RECORDS = text(
    """
    SELECT j.job,
           s.started_at,
           f.finished_at, f.status, f.error,
           o.finished_at AS ok_at,
           (SELECT min(scheduled_for) FROM job_runs WHERE job = j.job) AS first_scheduled
    FROM unnest(:jobs) AS j(job)
    LEFT JOIN LATERAL (
        SELECT started_at FROM job_runs
        WHERE job = j.job AND started_at IS NOT NULL
        ORDER BY started_at DESC LIMIT 1) s ON true
    LEFT JOIN LATERAL (
        SELECT finished_at, status, error FROM job_runs
        WHERE job = j.job AND finished_at IS NOT NULL
        ORDER BY finished_at DESC LIMIT 1) f ON true
    LEFT JOIN LATERAL (
        SELECT finished_at FROM job_runs
        WHERE job = j.job AND finished_at IS NOT NULL AND status = 'ok'
        ORDER BY finished_at DESC LIMIT 1) o ON true
    """
).bindparams(bindparam("jobs", type_=ARRAY(String())))


async def records(uow: UnitOfWork, jobs: list[str]) -> dict[str, JobRecord]:
    async with uow.reading():
        rows = (await uow.session.execute(RECORDS, {"jobs": jobs})).all()
    return {
        row.job: JobRecord(
            job=row.job,
            last_started_at=row.started_at,
            last_finished_at=row.finished_at,
            last_status=row.status,
            last_error=row.error,
            last_ok_at=row.ok_at,
            first_scheduled_for=row.first_scheduled,
        )
        for row in rows
    }


def problem(
    record: JobRecord, schedule: Schedule, *, now: datetime, watched_since: datetime
) -> str | None:
    """Why the job needs an operator, or None. ``watched_since`` is when the caller began to
    watch: a job is not called overdue for time when no scheduler was running."""
    if record.last_status == "failed":
        return f"failed at {_short(record.last_finished_at)}: {record.last_error or 'error'}"
    if record.first_scheduled_for is None:
        return None
    since = max(record.last_ok_at or record.first_scheduled_for, watched_since)
    if now - since > 2 * schedule.period(now):
        last = _short(record.last_ok_at) if record.last_ok_at else "never"
        return f"has not succeeded for over twice its interval ({schedule.spec}); last: {last}"
    return None


def _short(at: datetime | None) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC") if at else "?"


async def claim_alert(uow: UnitOfWork, *, job: str, reason: str, now: datetime) -> bool:
    """True once per episode: the caller reports it."""
    result = await uow.session.execute(
        text(
            """
            INSERT INTO job_alerts (job, reason, reported_at) VALUES (:job, :reason, :now)
            ON CONFLICT (job) DO NOTHING RETURNING job
            """
        ),
        {"job": job, "reason": reason, "now": now},
    )
    claimed = result.scalar_one_or_none() is not None
    await uow.commit()
    return claimed


async def end_alert(uow: UnitOfWork, *, job: str) -> bool:
    """The episode is over (or its report could not be sent, so it is tried again)."""
    result = await uow.session.execute(
        text("DELETE FROM job_alerts WHERE job = :job"), {"job": job}
    )
    await uow.commit()
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def alerted(uow: UnitOfWork) -> dict[str, datetime]:
    """The jobs with an open episode, and when it was reported."""
    async with uow.reading():
        rows = (await uow.session.execute(text("SELECT job, reported_at FROM job_alerts"))).all()
    return {row.job: row.reported_at for row in rows}


async def purge_history(uow: UnitOfWork, *, now: datetime) -> int:
    """Runs older than the kept history, in batches."""
    total = 0
    while True:
        result = await uow.session.execute(
            text(
                """
                DELETE FROM job_runs WHERE id IN (
                    SELECT id FROM job_runs WHERE enqueued_at < :cutoff
                    LIMIT :batch FOR UPDATE SKIP LOCKED)
                """
            ),
            {"cutoff": now - HISTORY, "batch": PURGE_BATCH},
        )
        await uow.commit()
        count = int(result.rowcount or 0)  # type: ignore[attr-defined]
        total += count
        if count < PURGE_BATCH:
            return total
