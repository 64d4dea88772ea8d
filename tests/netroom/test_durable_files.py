"""No document stays unread: real `netroom worker` processes killed with SIGKILL mid-indexing,
a Redis server killed with jobs queued, jobs lost with Redis's data; after a restart every file
ends ready or failed within the deadline, and a failed one sent again is read again."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine
from taskiq import AsyncBroker

from core.media import LocalMediaStore
from core.services import files
from db.engine import UnitOfWorkFactory
from db.models import File
from netroom.jobs import JobDeps, create_broker, enqueue
from sandbox.app import start_sandbox
from sandbox.client import SandboxClient
from tests.factories import register
from tests.netroom.own_redis import OwnRedis, own_redis

ROOT = Path(__file__).resolve().parents[2]
CLEAN_ENV = {
    k: v
    for k, v in os.environ.items()
    if not k.startswith(
        ("BOT__", "DATABASE__", "REDIS__", "WEB__", "SANDBOX__", "DATA_DIR", "FILES__")
    )
}
DEADLINE = 2.0
REDELIVER = 3.0
# Big enough that reading it takes seconds: time to kill the worker in the middle.
MAX_CHARS = 30_000_000
BOT_TOKEN = f"{secrets.randbelow(10**9) + 10**9}:{secrets.token_urlsafe(27)}"
LIMITS = files.FileLimits(max_chars=MAX_CHARS, index_deadline=timedelta(seconds=DEADLINE))


def big_document(tag: str) -> bytes:
    section = (
        "The quick brown fox jumps over the lazy dog near the river bank at dawn. " * 8 + "\n\n"
    ) * 200
    parts = [f"# {tag}\n\n"]
    for n in range(12):
        parts.append(f"## Part {n}\n\n{section}")
    return "".join(parts).encode()


class Worker:
    """`python -m netroom worker`, its output in a file (a pipe nobody reads would fill up)."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.log = log
        self.out = log.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "netroom", "worker"],
            cwd=ROOT,
            env={**CLEAN_ENV, **env},
            stdout=self.out,
            stderr=subprocess.STDOUT,
        )

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]

    async def ready(self, wait: float = 60) -> None:
        deadline = time.monotonic() + wait
        while "NetRoom is running." not in self.log.read_text(errors="replace"):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError("the worker did not start:\n" + self.output())
            await asyncio.sleep(0.1)

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=40)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.out.close()


@pytest.fixture
def workers(database_url: str, tmp_path: Path) -> Iterator[Callable[..., Worker]]:
    started: list[Worker] = []

    def start(redis: OwnRedis, *, telegram: str | None = None) -> Worker:
        # With ``telegram`` (the sandbox's URL) the worker has a bot to tell owners with.
        bot = {"BOT__TOKEN": BOT_TOKEN, "BOT__API_BASE": telegram} if telegram else {}
        env = {
            **bot,
            "DATABASE__URL": database_url,
            "REDIS__URL": redis.url,
            "REDIS__JOB_REDELIVER_SECONDS": str(REDELIVER),
            "DATA_DIR": str(tmp_path / "data"),
            "FILES__MAX_CHARS": str(MAX_CHARS),
            "FILES__INDEX_DEADLINE_SECONDS": str(DEADLINE),
            "FILES__INDEX_ATTEMPTS": "3",
            "FILES__EMBEDDINGS_PROVIDER": "none",
            "LOG_LEVEL": "INFO",
        }
        worker = Worker(env, tmp_path / f"worker-{len(started)}.log")
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop()


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[OwnRedis]:
    with own_redis(tmp_path / "redis") as server:
        yield server


@dataclass(frozen=True)
class Seen:
    status: str
    error: str | None
    attempts: int
    chunks: int


class Uploads:
    def __init__(self, engine: AsyncEngine, data_dir: Path) -> None:
        self.factory = UnitOfWorkFactory.for_engine(engine)
        self.store = LocalMediaStore(data_dir / "media")
        self.user_id = 0

    async def user(self, telegram_id: int | None = None) -> int:
        async with self.factory() as uow:
            self.user_id = (await register(uow, tg_id=telegram_id)).user.id
        return self.user_id

    async def upload(self, name: str, data: bytes) -> files.FileDTO:
        async with self.factory() as uow:
            return await files.upload(
                uow,
                self.store,
                user_id=self.user_id,
                name=name,
                data=data,
                limits=LIMITS,
                now=_now(),
            )

    async def get(self, file_id: int) -> Seen:
        async with self.factory() as uow, uow.reading():
            row = (
                await uow.session.execute(
                    select(File.status, File.error, File.attempts, File.chunks).where(
                        File.id == file_id
                    )
                )
            ).one()
        return Seen(*row)

    async def settle(self, file_ids: list[int], wait: float) -> dict[int, Seen]:
        """Every file ready or failed within ``wait`` seconds."""
        deadline = time.monotonic() + wait
        while True:
            rows = {i: await self.get(i) for i in file_ids}
            if all(r.status in ("ready", "failed") for r in rows.values()):
                return rows
            if time.monotonic() > deadline:
                stuck = {i: r.status for i, r in rows.items()}
                raise AssertionError(f"not finished within {wait} s: {stuck}")
            await asyncio.sleep(0.1)

    async def backdate(self, file_id: int, **values: object) -> None:
        async with self.factory() as uow:
            await uow.session.execute(update(File).where(File.id == file_id).values(**values))
            await uow.commit()


def _now() -> datetime:
    return datetime.now(UTC)


@pytest.fixture
async def uploads(engine: AsyncEngine, tmp_path: Path) -> Uploads:
    made = Uploads(engine, tmp_path / "data")
    await made.user()
    return made


@contextlib.asynccontextmanager
async def queue_client(engine: AsyncEngine, redis_url: str) -> AsyncIterator[AsyncBroker]:
    """What the bot and the web app hold: a broker that queues jobs."""
    broker = create_broker(redis_url, JobDeps(uow_factory=UnitOfWorkFactory.for_engine(engine)))
    await broker.startup()
    try:
        yield broker
    finally:
        await broker.shutdown()


async def test_a_file_whose_worker_is_killed_mid_indexing_is_ready_after_a_restart(
    engine: AsyncEngine,
    uploads: Uploads,
    redis_server: OwnRedis,
    workers: Callable[[OwnRedis], Worker],
) -> None:
    stored = await uploads.upload("handbook.md", big_document("Handbook"))
    async with queue_client(engine, redis_server.url) as broker:
        await enqueue(broker, "files.index", file_id=stored.id)
    first = workers(redis_server)
    await first.ready()
    deadline = time.monotonic() + 60
    while (await uploads.get(stored.id)).status != "indexing":
        assert time.monotonic() < deadline, "indexing never started:\n" + first.output()
        await asyncio.sleep(0.02)
    first.kill()
    assert (await uploads.get(stored.id)).status == "indexing", "killed too late to matter"

    second = workers(redis_server)
    await second.ready()
    rows = await uploads.settle([stored.id], wait=30)
    row = rows[stored.id]
    assert (row.status, row.error) == ("ready", None), second.output()
    assert row.chunks > 0
    # The killed start counts; the second one finished it.
    assert row.attempts == 2


async def test_files_queued_when_redis_is_killed_are_read_after_it_restarts(
    engine: AsyncEngine,
    uploads: Uploads,
    redis_server: OwnRedis,
    workers: Callable[[OwnRedis], Worker],
) -> None:
    stored = [
        await uploads.upload(f"doc-{n}.md", f"# Doc {n}\n\nSome text {n}.\n".encode())
        for n in range(3)
    ]
    async with queue_client(engine, redis_server.url) as broker:
        for f in stored:
            await enqueue(broker, "files.index", file_id=f.id)
    # Past the log's sync (every second, or two when the disk is busy): then the server dies.
    await asyncio.sleep(2.5)
    redis_server.kill()
    redis_server.start()
    worker = workers(redis_server)
    await worker.ready()
    # Well within the deadline: the jobs themselves came back, no sweep was needed.
    rows = await uploads.settle([f.id for f in stored], wait=DEADLINE + 15)
    assert {r.status for r in rows.values()} == {"ready"}, worker.output()
    assert {r.attempts for r in rows.values()} == {1}


async def test_stuck_files_are_queued_again_or_failed_and_a_failed_one_sent_again_is_read(
    engine: AsyncEngine,
    uploads: Uploads,
    redis_server: OwnRedis,
    workers: Callable[..., Worker],
) -> None:
    sandbox = await start_sandbox()
    try:
        async with SandboxClient(sandbox.url) as telegram:
            bot = await telegram.register_bot(BOT_TOKEN, username="netroom_durable_bot")
            owner = await telegram.create_user("Wren", language_code="en")
            # The owner has started the bot, so it may write to them.
            await telegram.send_text(owner["id"], "/start", bot_id=bot["id"])
            await uploads.user(owner["id"])
            await _stuck_files_healed(engine, uploads, redis_server, workers, telegram, owner)
    finally:
        await sandbox.stop()


async def _stuck_files_healed(
    engine: AsyncEngine,
    uploads: Uploads,
    redis_server: OwnRedis,
    workers: Callable[..., Worker],
    telegram: SandboxClient,
    owner: dict[str, Any],
) -> None:
    # Their jobs were lost (Redis lost its data): one never started, one was interrupted as
    # often as allowed.
    lost = await uploads.upload("lost.md", b"# Lost\n\nA job that was never run.\n")
    worn = await uploads.upload("worn.md", b"# Worn\n\nInterrupted three times.\n")
    long_ago = _now() - timedelta(minutes=10)
    await uploads.backdate(lost.id, updated_at=long_ago)
    await uploads.backdate(worn.id, status="indexing", attempts=3, updated_at=long_ago)

    after = await telegram.last_seq()
    worker = workers(redis_server, telegram=str(telegram.base_url))
    await worker.ready()
    rows = await uploads.settle([lost.id, worn.id], wait=30)
    assert (rows[lost.id].status, rows[lost.id].attempts) == ("ready", 1), worker.output()
    assert (rows[worn.id].status, rows[worn.id].error) == ("failed", files.INTERRUPTED)
    # The owner is told of both, the given-up one with the reason.
    for expected in ("lost.md is ready", "interrupted 3 times, so I stopped trying"):
        told = await telegram.wait_for(
            lambda e, text=expected: (
                e["type"] == "bot_message" and text in (e["message"].get("text") or "")
            ),
            chat_id=owner["id"],
            after=after,
            wait=20,
        )
        assert told, worker.output()

    # Sent again: queued once more with fresh attempts, and read this time.
    again = await uploads.upload("worn-again.md", b"# Worn\n\nInterrupted three times.\n")
    assert (again.id, again.new, again.retried, again.status) == (worn.id, False, True, "queued")
    async with queue_client(engine, redis_server.url) as broker:
        await enqueue(broker, "files.index", file_id=again.id)
    rows = await uploads.settle([worn.id], wait=30)
    assert (rows[worn.id].status, rows[worn.id].attempts) == ("ready", 1)

    # A ready file sent again is left as it is.
    same = await uploads.upload("lost-again.md", b"# Lost\n\nA job that was never run.\n")
    assert (same.id, same.new, same.retried, same.status) == (lost.id, False, False, "ready")
