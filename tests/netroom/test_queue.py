"""The job queue keeps jobs until they are done: acknowledged only after the job ends, taken
over from a worker that died, never handed to a second worker while the first still runs it,
and kept through a Redis crash (SIGKILL of the server, append-only log)."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine
from taskiq import AsyncBroker
from taskiq.schedule_sources import LabelScheduleSource
from taskiq_redis import ListQueueBroker

from db.engine import UnitOfWorkFactory
from netroom.jobs import JobDeps, create_broker, run_worker
from netroom.queue import GROUP
from tests.netroom.own_redis import own_redis

Job = Callable[..., Awaitable[object]]


class Jobs:
    """Brokers on one fresh queue; each worker runs in this loop until the test ends."""

    def __init__(self, redis_url: str, deps: JobDeps) -> None:
        self.redis_url = redis_url
        self.deps = deps
        self.queue = f"netroom:test:{secrets.token_hex(4)}"
        self.stream = f"{self.queue}:stream"
        self.workers: list[tuple[asyncio.Event, asyncio.Task[None]]] = []
        self.brokers: list[AsyncBroker] = []

    def broker(self, jobs: dict[str, Job], *, redeliver_after: float = 60.0) -> AsyncBroker:
        broker = create_broker(
            self.redis_url, self.deps, queue=self.queue, redeliver_after=redeliver_after
        )
        for name, job in jobs.items():
            broker.register_task(job, task_name=name)
        return broker

    async def client(self, jobs: dict[str, Job]) -> AsyncBroker:
        broker = self.broker(jobs)
        await broker.startup()
        self.brokers.append(broker)
        return broker

    def worker(
        self, jobs: dict[str, Job], *, redeliver_after: float = 60.0, concurrency: int = 8
    ) -> None:
        stop = asyncio.Event()
        broker = self.broker(jobs, redeliver_after=redeliver_after)
        task = asyncio.create_task(run_worker(broker, stop, concurrency=concurrency))
        self.workers.append((stop, task))

    async def close(self) -> None:
        for stop, _ in self.workers:
            stop.set()
        for _, task in self.workers:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(task, 40)
        for broker in self.brokers:
            with contextlib.suppress(Exception):
                await broker.shutdown()


@pytest.fixture
async def jobs(engine: AsyncEngine, redis_url: str) -> AsyncIterator[Jobs]:
    made = Jobs(redis_url, JobDeps(uow_factory=UnitOfWorkFactory.for_engine(engine)))
    try:
        yield made
    finally:
        await made.close()


async def _until(check: Callable[[], Awaitable[bool]], wait: float, what: str) -> None:
    try:
        async with asyncio.timeout(wait):
            while True:
                if await check():
                    return
                await asyncio.sleep(0.05)
    except TimeoutError:
        raise AssertionError(f"not within {wait} s: {what}") from None


async def _pending(redis: Redis, stream: str) -> int:
    return int((await redis.xpending(stream, GROUP))["pending"])


async def test_a_job_is_acknowledged_only_after_it_ends(jobs: Jobs, redis: Redis) -> None:
    started, release = asyncio.Event(), asyncio.Event()

    async def hold() -> str:
        started.set()
        await release.wait()
        return "done"

    client = await jobs.client({"test.hold": hold})
    jobs.worker({"test.hold": hold})

    # The sweep a worker queues as it starts is done first: queued (the stream was empty
    # already before the worker started) and then gone.
    async def sweep_done() -> bool:
        added = int((await redis.xinfo_stream(jobs.stream))["entries-added"])
        return added >= 1 and await _empty(redis, jobs.stream)

    await _until(sweep_done, 15, "the start-up sweep done")
    await client.find_task("test.hold").kiq()  # type: ignore[union-attr]
    try:
        async with asyncio.timeout(15):
            await started.wait()
        # Running: still in the stream and pending for the group.
        await asyncio.sleep(0.3)
        assert await redis.xlen(jobs.stream) == 1
        assert await _pending(redis, jobs.stream) == 1
    finally:
        release.set()

    async def gone() -> bool:
        return await redis.xlen(jobs.stream) == 0 and await _pending(redis, jobs.stream) == 0

    await _until(gone, 10, "the finished job acknowledged and removed")


async def test_a_job_a_dead_worker_held_runs_elsewhere_after_the_idle_timeout(
    jobs: Jobs, redis: Redis
) -> None:
    runs: list[int] = []

    async def count(n: int) -> int:
        runs.append(n)
        return n

    client = await jobs.client({"test.count": count})
    await client.find_task("test.count").kiq(n=7)  # type: ignore[union-attr]
    # A worker takes the job and dies before it ends: it is pending for a consumer that is gone.
    taken = await redis.xreadgroup(GROUP, "worker-that-died", {jobs.stream: ">"}, count=10)
    assert len(taken[0][1]) == 1
    assert await _pending(redis, jobs.stream) == 1

    jobs.worker({"test.count": count}, redeliver_after=1.0)

    async def ran() -> bool:
        return runs == [7] and await _pending(redis, jobs.stream) == 0

    await _until(ran, 15, "the abandoned job run once by the other worker")
    assert await redis.xlen(jobs.stream) == 0


async def test_a_long_job_is_not_handed_to_a_second_worker_while_it_runs(
    jobs: Jobs, redis: Redis
) -> None:
    runs: list[str] = []
    finished = asyncio.Event()

    async def slow() -> None:
        runs.append("start")
        # Four idle timeouts: the running worker's touches keep the job its own.
        await asyncio.sleep(4.0)
        finished.set()

    client = await jobs.client({"test.slow": slow})
    jobs.worker({"test.slow": slow}, redeliver_after=1.0)
    jobs.worker({"test.slow": slow}, redeliver_after=1.0)
    await client.find_task("test.slow").kiq()  # type: ignore[union-attr]
    async with asyncio.timeout(20):
        await finished.wait()
    await _until(lambda: _empty(redis, jobs.stream), 10, "the long job acknowledged after it ended")
    # Another idle timeout and a reclaim round later, nobody has run it again.
    await asyncio.sleep(2.5)
    assert runs == ["start"]


async def _empty(redis: Redis, stream: str) -> bool:
    return await redis.xlen(stream) == 0 and await _pending(redis, stream) == 0


async def test_a_job_that_kills_its_worker_every_time_is_set_aside(
    jobs: Jobs, redis: Redis
) -> None:
    runs: list[int] = []

    async def count(n: int) -> int:
        runs.append(n)
        return n

    client = await jobs.client({"test.count": count})
    await client.find_task("test.count").kiq(n=1)  # type: ignore[union-attr]
    [[_, [(msg_id, _)]]] = await redis.xreadgroup(GROUP, "crashing-1", {jobs.stream: ">"})
    # Five more workers took it over and died with it.
    for n in range(2, 7):
        await redis.xclaim(jobs.stream, GROUP, f"crashing-{n}", 0, [msg_id])
    jobs.worker({"test.count": count}, redeliver_after=1.0)

    async def set_aside() -> bool:
        return await redis.xlen(f"{jobs.queue}:stream:dead") == 1

    await _until(set_aside, 15, "the job moved to the dead-letter stream")
    assert await _empty(redis, jobs.stream)
    assert runs == []


async def test_jobs_queued_in_the_old_list_are_moved_to_the_stream(
    jobs: Jobs, redis_url: str
) -> None:
    runs: list[int] = []

    async def count(n: int) -> int:
        runs.append(n)
        return n

    # What the list queue of an earlier version held when it was stopped.
    old = ListQueueBroker(redis_url, queue_name=jobs.queue)
    old.register_task(count, task_name="test.count")
    await old.startup()
    try:
        for n in (1, 2, 3):
            await old.find_task("test.count").kiq(n=n)  # type: ignore[union-attr]
    finally:
        await old.shutdown()
    jobs.worker({"test.count": count})

    async def ran() -> bool:
        return sorted(runs) == [1, 2, 3]

    await _until(ran, 15, "the jobs of the old list run")


async def test_jobs_survive_a_redis_crash_queued_running_and_idle(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    runs: list[int] = []
    started, release = asyncio.Event(), asyncio.Event()

    async def count(n: int) -> int:
        runs.append(n)
        return n

    async def hold() -> str:
        started.set()
        await release.wait()
        return "done"

    table: dict[str, Job] = {"test.count": count, "test.hold": hold}
    deps = JobDeps(uow_factory=UnitOfWorkFactory.for_engine(engine))
    with own_redis(tmp_path / "redis") as server:
        busy, idle = Jobs(server.url, deps), Jobs(server.url, deps)
        redis = Redis.from_url(server.url)
        try:
            client = await busy.client(table)
            await client.find_task("test.hold").kiq()  # type: ignore[union-attr]
            busy.worker(table, concurrency=1)
            # A worker of another queue waits for work all through the crash.
            idle.worker(table)
            async with asyncio.timeout(15):
                await started.wait()
            # The busy worker holds one job; more wait in its queue. Then the server dies.
            for n in (1, 2, 3):
                await client.find_task("test.count").kiq(n=n)  # type: ignore[union-attr]
            # Past the log's sync (every second, or two when the disk is busy).
            await asyncio.sleep(2.5)
            assert runs == []
            server.kill()
            # The running job ends while the server is away: its acknowledgement, and every
            # worker's reads, wait for it (longer than the client's own reconnects last).
            release.set()
            await asyncio.sleep(8.0)
            server.start()
            idle_client = await idle.client(table)
            await idle_client.find_task("test.count").kiq(n=4)  # type: ignore[union-attr]

            async def all_ran() -> bool:
                return (
                    sorted(runs) == [1, 2, 3, 4]
                    and await _empty(redis, busy.stream)
                    and await _empty(redis, idle.stream)
                )

            await _until(all_ran, 30, "the queued jobs run after the crash and none is left")
            assert not any(task.done() for _, task in busy.workers + idle.workers)
        finally:
            await busy.close()
            await idle.close()
            await redis.aclose()


async def test_the_stuck_file_sweep_is_scheduled_every_minute(jobs: Jobs) -> None:
    source = LabelScheduleSource(jobs.broker({}))
    await source.startup()
    schedules = await source.get_schedules()
    assert [s.cron for s in schedules if s.task_name == "files.reap"] == ["* * * * *"]
