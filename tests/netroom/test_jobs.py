from __future__ import annotations

import asyncio
import secrets
from datetime import UTC, datetime, timedelta

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncEngine

from core.dto import ClientInfo
from db.engine import UnitOfWorkFactory
from db.models import SignupAttribution
from netroom.jobs import JobDeps, create_broker, enqueue, run_worker
from tests.factories import register


async def test_a_queued_job_runs_in_the_worker_against_the_database(
    engine: AsyncEngine, redis_url: str
) -> None:
    factory = UnitOfWorkFactory.for_engine(engine)
    async with factory() as uow:
        user = (
            await register(
                uow, client=ClientInfo(platform="web", ip="198.51.100.4", user_agent="UA")
            )
        ).user
        await uow.session.execute(
            update(SignupAttribution)
            .filter_by(user_id=user.id)
            .values(created_at=datetime(2026, 1, 1, tzinfo=UTC))
        )
        await uow.commit()

    now = datetime(2026, 11, 24, tzinfo=UTC)
    deps = JobDeps(uow_factory=factory, clock=lambda: now)
    queue = f"netroom:test:{secrets.token_hex(4)}"
    worker_broker = create_broker(redis_url, deps, queue=queue)
    client_broker = create_broker(redis_url, deps, queue=queue)
    stop = asyncio.Event()
    worker = asyncio.create_task(run_worker(worker_broker, stop))
    try:
        await client_broker.startup()
        await enqueue(client_broker, "retention.scrub_technical_data")
        async with asyncio.timeout(10):
            while True:
                async with factory() as uow:
                    attribution = await uow.users.attribution(user.id)
                    assert attribution is not None
                    seen = (attribution.ip, attribution.user_agent, attribution.created_at)
                if seen[0] is None:
                    break
                await asyncio.sleep(0.05)
        assert seen[1] is None
        assert now - seen[2] > timedelta(days=90)
    finally:
        stop.set()
        await asyncio.wait_for(worker, 10)
        await client_broker.shutdown()


async def test_enqueue_of_an_unknown_job_is_refused(engine: AsyncEngine, redis_url: str) -> None:
    broker = create_broker(redis_url, JobDeps(uow_factory=UnitOfWorkFactory.for_engine(engine)))
    try:
        try:
            await enqueue(broker, "no.such.job")
        except LookupError as exc:
            assert "no.such.job" in str(exc)
        else:
            raise AssertionError("an unknown job was accepted")
    finally:
        await broker.shutdown()
