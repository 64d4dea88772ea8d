from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text

from core.services import job_runs
from core.services.job_runs import JobRecord, parse_schedule
from db.uow import UnitOfWork

NOW = datetime(2026, 12, 5, 18, 59, 30, tzinfo=UTC)


def test_a_cron_schedule_is_due_in_its_minute_and_names_the_next() -> None:
    nightly = parse_schedule("17 3 * * *")
    assert nightly.tick_at(NOW) is None
    assert nightly.tick_at(datetime(2026, 12, 6, 3, 17, 42, tzinfo=UTC)) == datetime(
        2026, 12, 6, 3, 17, tzinfo=UTC
    )
    assert nightly.next_due(NOW) == datetime(2026, 12, 6, 3, 17, tzinfo=UTC)
    assert nightly.period(NOW) == timedelta(days=1)
    assert parse_schedule("*/10  * * * *").next_due(NOW) == datetime(2026, 12, 5, 19, tzinfo=UTC)
    assert parse_schedule("0 0 29 2 *").next_due(NOW) == datetime(2028, 2, 29, tzinfo=UTC)


def test_interval_ticks_are_the_same_in_every_process() -> None:
    every = parse_schedule("10m")
    assert every.interval == timedelta(minutes=10)
    # Counted from the epoch, not from when a scheduler started.
    assert every.tick_at(NOW) == datetime(2026, 12, 5, 18, 50, tzinfo=UTC)
    assert every.next_due(NOW) == datetime(2026, 12, 5, 19, 0, tzinfo=UTC)
    assert parse_schedule("5s").tick_at(NOW) == NOW.replace(microsecond=0)


@pytest.mark.parametrize("spec", ["", "often", "0s", "61 * * * *", "* * * *", "0 0 31 2 *"])
def test_a_schedule_that_never_runs_is_refused(spec: str) -> None:
    with pytest.raises(ValueError):
        parse_schedule(spec)


def test_rows_affected_come_from_an_int_or_a_dict_of_ints() -> None:
    assert job_runs.rows_affected(7) == 7
    assert job_runs.rows_affected({"messages": 3, "media": 2, "note": "x"}) == 5
    assert job_runs.rows_affected("done") is None
    assert job_runs.rows_affected(True) is None


async def test_a_tick_is_claimed_once(uow: UnitOfWork) -> None:
    job = f"test.{secrets.token_hex(4)}"
    tick = NOW.replace(second=0)
    first = await job_runs.claim_tick(uow, job=job, scheduled_for=tick)
    second = await job_runs.claim_tick(uow, job=job, scheduled_for=tick)
    assert first is not None and second is None
    assert await job_runs.claim_tick(uow, job=job, scheduled_for=tick + timedelta(minutes=1))


async def test_a_run_is_recorded_on_its_tick_or_on_its_own(uow: UnitOfWork) -> None:
    job = f"test.{secrets.token_hex(4)}"
    tick = NOW.replace(second=0)
    claimed = await job_runs.claim_tick(uow, job=job, scheduled_for=tick)
    started = await job_runs.start_run(uow, job=job, scheduled_for=tick, now=NOW)
    assert started == claimed
    await job_runs.finish_run(uow, started, now=NOW + timedelta(seconds=2), error=None, rows=4)
    by_hand = await job_runs.start_run(uow, job=job, scheduled_for=None, now=NOW)
    assert by_hand != started
    await job_runs.finish_run(
        uow, by_hand, now=NOW + timedelta(seconds=3), error="RuntimeError: boom", rows=None
    )
    record = (await job_runs.records(uow, [job]))[job]
    assert record.last_started_at == NOW
    assert record.last_finished_at == NOW + timedelta(seconds=3)
    assert (record.last_status, record.last_error) == ("failed", "RuntimeError: boom")
    assert record.last_ok_at == NOW + timedelta(seconds=2)
    assert record.first_scheduled_for == tick


async def test_a_tick_that_could_not_be_enqueued_is_recorded_as_failed(uow: UnitOfWork) -> None:
    job = f"test.{secrets.token_hex(4)}"
    run_id = await job_runs.claim_tick(uow, job=job, scheduled_for=NOW)
    assert run_id is not None
    await job_runs.mark_not_enqueued(uow, run_id, error="ConnectionError", now=NOW)
    record = (await job_runs.records(uow, [job]))[job]
    assert record.last_status == "failed"
    assert record.last_error == "not enqueued: ConnectionError"


def test_a_job_needs_an_operator_when_it_failed_or_is_overdue() -> None:
    every = parse_schedule("10m")
    ok = JobRecord("j", last_status="ok", last_ok_at=NOW - timedelta(minutes=15))
    assert job_runs.problem(ok, every, now=NOW, watched_since=NOW - timedelta(days=1)) is None
    failed = JobRecord("j", last_status="failed", last_error="RuntimeError: boom")
    reason = job_runs.problem(failed, every, now=NOW, watched_since=NOW)
    assert reason is not None and "RuntimeError: boom" in reason
    stale = JobRecord(
        "j",
        last_status="ok",
        last_ok_at=NOW - timedelta(minutes=21),
        first_scheduled_for=NOW - timedelta(days=3),
    )
    reason = job_runs.problem(stale, every, now=NOW, watched_since=NOW - timedelta(hours=1))
    assert reason is not None and "twice its interval" in reason
    # Time when no scheduler was watching does not count against the job.
    assert job_runs.problem(stale, every, now=NOW, watched_since=NOW - timedelta(minutes=5)) is None
    # A job that was never scheduled is not overdue.
    assert (
        job_runs.problem(JobRecord("j"), every, now=NOW, watched_since=NOW - timedelta(days=9))
        is None
    )


async def test_an_alert_episode_is_claimed_once_until_it_ends(uow: UnitOfWork) -> None:
    job = f"test.{secrets.token_hex(4)}"
    assert await job_runs.claim_alert(uow, job=job, reason="failed", now=NOW)
    assert not await job_runs.claim_alert(uow, job=job, reason="failed", now=NOW)
    assert job in await job_runs.alerted(uow)
    assert await job_runs.end_alert(uow, job=job)
    assert await job_runs.claim_alert(uow, job=job, reason="failed again", now=NOW)


async def test_runs_older_than_the_kept_history_are_dropped(uow: UnitOfWork) -> None:
    job = f"test.{secrets.token_hex(4)}"
    old = await job_runs.claim_tick(uow, job=job, scheduled_for=NOW - timedelta(days=91))
    recent = await job_runs.claim_tick(uow, job=job, scheduled_for=NOW - timedelta(days=89))
    await uow.session.execute(
        text("UPDATE job_runs SET enqueued_at = scheduled_for WHERE job = :job"), {"job": job}
    )
    assert await job_runs.purge_history(uow, now=NOW) >= 1
    left = (
        await uow.session.scalars(text("SELECT id FROM job_runs WHERE job = :job"), {"job": job})
    ).all()
    assert left == [recent] and old not in left
