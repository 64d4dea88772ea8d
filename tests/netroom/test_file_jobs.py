"""The index job on a real worker: the redelivered job of a worker that died mid-indexing waits
for that worker's claim to go stale and finishes the file itself, with no sweep involved."""

from __future__ import annotations

import asyncio
import secrets
from datetime import UTC, datetime, timedelta
from pathlib import Path

from redis.asyncio import Redis
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from core.media import LocalMediaStore
from core.services import files
from db.engine import UnitOfWorkFactory
from db.models import File
from netroom.jobs import JobDeps, create_broker, enqueue, run_worker
from tests.factories import register

LIMITS = files.FileLimits(index_deadline=timedelta(seconds=1.5))


async def test_the_job_of_a_worker_that_died_mid_indexing_finishes_the_file(
    engine: AsyncEngine, redis_url: str, redis: Redis, tmp_path: Path
) -> None:
    factory = UnitOfWorkFactory.for_engine(engine)
    store = LocalMediaStore(tmp_path / "media")
    async with factory() as uow:
        user = (await register(uow)).user
        stored = await files.upload(
            uow,
            store,
            user_id=user.id,
            name="runbook.md",
            data=b"# Runbook\n\nDrain a worker before stopping it.\n",
            limits=LIMITS,
            now=datetime.now(UTC),
        )
    queue = f"netroom:test:{secrets.token_hex(4)}"
    deps = JobDeps(uow_factory=factory, media_store=store, file_limits=LIMITS)
    worker_broker = create_broker(redis_url, deps, queue=queue)
    client_broker = create_broker(redis_url, deps, queue=queue)
    await client_broker.startup()
    stop = asyncio.Event()
    worker = asyncio.create_task(run_worker(worker_broker, stop))
    try:
        # The start-up sweep has run and found nothing stale.
        async with asyncio.timeout(15):
            while True:
                if not await redis.xlen(f"{queue}:stream"):
                    break
                await asyncio.sleep(0.05)
        # A worker claimed the file a moment ago and died; its job is delivered again.
        async with factory() as uow:
            await uow.session.execute(
                update(File)
                .where(File.id == stored.id)
                .values(status="indexing", attempts=1, updated_at=datetime.now(UTC))
            )
            await uow.commit()
        await enqueue(client_broker, "files.index", file_id=stored.id)
        async with asyncio.timeout(15):
            while True:
                async with factory() as uow, uow.reading():
                    status, attempts = (
                        await uow.session.execute(
                            select(File.status, File.attempts).where(File.id == stored.id)
                        )
                    ).one()
                if status != "indexing":
                    break
                await asyncio.sleep(0.1)
        assert (status, attempts) == ("ready", 2)
    finally:
        stop.set()
        await asyncio.wait_for(worker, 40)
        await client_broker.shutdown()
