"""Indexing under redelivery and crashes: a file is claimed before it is worked on, a second
delivery of its job does nothing, an abandoned claim is taken over, and the sweep queues stuck
files again or gives up on them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, update

from core.media import LocalMediaStore
from core.services import files
from db.models import File, FileChunk
from db.uow import UnitOfWork
from tests.factories import register

NOW = datetime(2026, 12, 5, 12, tzinfo=UTC)
LIMITS = files.FileLimits(index_deadline=timedelta(minutes=5), index_attempts=3)
TEXT = b"# Runbook\n\nRestart the queue workers one at a time.\n"


@pytest.fixture
def store(tmp_path: Path) -> LocalMediaStore:
    return LocalMediaStore(tmp_path / "store")


async def _uploaded(uow: UnitOfWork, store: LocalMediaStore, data: bytes = TEXT) -> int:
    user = (await register(uow)).user
    stored = await files.upload(
        uow, store, user_id=user.id, name="runbook.md", data=data, limits=LIMITS, now=NOW
    )
    return stored.id


async def _set(uow: UnitOfWork, file_id: int, **values: object) -> None:
    await uow.session.execute(update(File).where(File.id == file_id).values(**values))
    await uow.commit()


async def _row(uow: UnitOfWork, file_id: int) -> tuple[str, str | None, int, datetime]:
    async with uow.reading():
        row = (
            await uow.session.execute(
                select(File.status, File.error, File.attempts, File.updated_at).where(
                    File.id == file_id
                )
            )
        ).one()
    return row[0], row[1], row[2], row[3]


async def _index(
    uow: UnitOfWork, store: LocalMediaStore, file_id: int, now: datetime
) -> files.FileDTO:
    return await files.index(uow, store, file_id=file_id, limits=LIMITS, embedder=None, now=now)


async def test_a_second_delivery_of_a_finished_file_does_nothing(
    uow: UnitOfWork, store: LocalMediaStore
) -> None:
    file_id = await _uploaded(uow, store)
    first = await _index(uow, store, file_id, NOW)
    assert (first.status, first.finished_here) == ("ready", True)
    chunks = list(await uow.session.scalars(select(FileChunk.id).filter_by(file_id=file_id)))

    again = await _index(uow, store, file_id, NOW + timedelta(minutes=1))
    assert (again.status, again.finished_here) == ("ready", False)
    assert list(await uow.session.scalars(select(FileChunk.id).filter_by(file_id=file_id))) == (
        chunks
    )
    assert (await _row(uow, file_id))[2] == 1


async def test_a_file_a_live_worker_holds_is_left_to_it(
    uow: UnitOfWork, store: LocalMediaStore
) -> None:
    file_id = await _uploaded(uow, store)
    await _set(uow, file_id, status="indexing", attempts=1, updated_at=NOW - timedelta(minutes=1))
    held = await _index(uow, store, file_id, NOW)
    assert (held.status, held.finished_here) == ("indexing", False)
    assert (await _row(uow, file_id))[:3] == ("indexing", None, 1)


async def test_an_abandoned_claim_is_taken_over(uow: UnitOfWork, store: LocalMediaStore) -> None:
    file_id = await _uploaded(uow, store)
    await _set(uow, file_id, status="indexing", attempts=1, updated_at=NOW - timedelta(minutes=6))
    done = await _index(uow, store, file_id, NOW)
    assert (done.status, done.finished_here, done.chunks > 0) == ("ready", True, True)
    assert (await _row(uow, file_id))[2] == 2


async def test_keeping_a_claim_keeps_the_sweep_away(
    uow: UnitOfWork, store: LocalMediaStore
) -> None:
    file_id = await _uploaded(uow, store)
    await _set(uow, file_id, status="indexing", attempts=1, updated_at=NOW - timedelta(minutes=6))
    # Someone else's older claim is left to go stale...
    claimed_at = NOW - timedelta(minutes=6)
    assert not await files.keep_claim(uow, file_id, now=NOW, since=NOW - timedelta(minutes=1))
    assert (await _row(uow, file_id))[3] == claimed_at
    # ... one's own is kept fresh, and the sweep leaves it alone.
    assert await files.keep_claim(uow, file_id, now=NOW, since=claimed_at)
    reaped = await files.reap_stuck(uow, limits=LIMITS, now=NOW + timedelta(minutes=1))
    assert file_id not in reaped.requeued
    assert (await _row(uow, file_id))[0] == "indexing"


async def test_the_sweep_queues_stuck_files_again_and_gives_up_after_the_attempts(
    uow: UnitOfWork, store: LocalMediaStore
) -> None:
    lost = await _uploaded(uow, store, TEXT)
    interrupted = await _uploaded(uow, store, TEXT + b"\nOnce.\n")
    worn = await _uploaded(uow, store, TEXT + b"\nThrice.\n")
    fresh = await _uploaded(uow, store, TEXT + b"\nJust now.\n")
    old = NOW - timedelta(minutes=6)
    await _set(uow, lost, updated_at=old)
    await _set(uow, interrupted, status="indexing", attempts=1, updated_at=old)
    await _set(uow, worn, status="indexing", attempts=3, updated_at=old)
    await _set(uow, fresh, status="indexing", attempts=1, updated_at=NOW - timedelta(minutes=1))

    reaped = await files.reap_stuck(uow, limits=LIMITS, now=NOW)
    assert set(reaped.requeued) >= {lost, interrupted}
    assert worn not in reaped.requeued and fresh not in reaped.requeued
    assert [f.id for f in reaped.failed if f.id in (lost, interrupted, worn, fresh)] == [worn]
    assert (await _row(uow, lost))[:3] == ("queued", None, 0)
    assert (await _row(uow, interrupted))[:3] == ("queued", None, 1)
    assert (await _row(uow, worn))[:3] == ("failed", files.INTERRUPTED, 3)
    assert (await _row(uow, fresh))[:3] == ("indexing", None, 1)
    # Queued again now: not swept again before another deadline has passed.
    again = await files.reap_stuck(uow, limits=LIMITS, now=NOW + timedelta(minutes=1))
    assert lost not in again.requeued and interrupted not in again.requeued


async def test_a_failed_file_sent_again_is_queued_with_fresh_attempts_and_a_ready_one_is_not(
    uow: UnitOfWork, store: LocalMediaStore
) -> None:
    user = (await register(uow)).user

    async def send(data: bytes) -> files.FileDTO:
        return await files.upload(
            uow, store, user_id=user.id, name="a.md", data=data, limits=LIMITS, now=NOW
        )

    failed = await send(TEXT)
    await _set(uow, failed.id, status="failed", error=files.INTERRUPTED, attempts=3)
    retried = await send(TEXT)
    assert (retried.id, retried.new, retried.retried) == (failed.id, False, True)
    assert (await _row(uow, failed.id))[:3] == ("queued", None, 0)
    # Sent once more while it waits: nothing new to queue.
    waiting = await send(TEXT)
    assert (waiting.new, waiting.retried, waiting.status) == (False, False, "queued")

    ready = await _index(uow, store, failed.id, NOW)
    assert ready.status == "ready"
    same = await send(TEXT)
    assert (same.new, same.retried, same.status) == (False, False, "ready")
