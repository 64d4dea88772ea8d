"""Periodic jobs as they run in production: real scheduler and worker processes, a short schedule
set through JOBS__SCHEDULE_OVERRIDES, and `netroom jobs` reading what they recorded."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import secrets
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.dispatcher import create_i18n
from bot.factory import create_bot
from bot.notifier import BotNotifier
from core.services import job_runs, turns
from core.services.chat import ModelTerms
from core.services.job_runs import parse_schedule
from db.engine import UnitOfWorkFactory
from db.models import ChatMessageRow
from netroom.jobs import JobDeps, create_broker
from netroom.scheduling import PeriodicJob, Scheduler
from sandbox.app import start_sandbox
from sandbox.client import SandboxClient
from tests.factories import register
from tests.netroom.running import Running
from tests.netroom.test_cli import free_port

CLEAN_ENV = {
    k: v
    for k, v in os.environ.items()
    if not k.startswith(
        ("BOT__", "DATABASE__", "REDIS__", "WEB__", "SANDBOX__", "DATA_DIR", "JOBS__", "YOOKASSA__")
    )
}
ENQUEUED = re.compile(r"scheduler: (\S+) enqueued for (\S+)")


Spawn = Callable[..., Awaitable[Running]]


@pytest.fixture
async def netroom(tmp_path: Path) -> AsyncIterator[Spawn]:
    started: list[Running] = []

    async def spawn(*args: str, env: dict[str, str]) -> Running:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "netroom",
            *args,
            cwd=tmp_path,
            env={**CLEAN_ENV, "DATA_DIR": str(tmp_path / "data"), **env},
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        process = Running(proc)
        started.append(process)
        return process

    yield spawn
    for process in started:
        if process.proc.returncode is None:
            process.proc.kill()
            await process.proc.wait()
        process.reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await process.reader


async def jobs_json(netroom: Spawn, env: dict[str, str]) -> dict[str, dict[str, Any]]:
    listing = await netroom("jobs", "--json", env=env)
    assert await asyncio.wait_for(listing.proc.wait(), 60) == 0, listing.output
    await listing.reader
    start = listing.output.index("[")
    return {job["name"]: job for job in json.loads(listing.output[start:])}


async def test_two_schedulers_side_by_side_enqueue_each_tick_once(
    netroom: Spawn, engine: AsyncEngine, database_url: str, redis_url: str
) -> None:
    job = "retention.scrub_technical_data"
    env = {
        "DATABASE__URL": database_url,
        "REDIS__URL": redis_url,
        "JOBS__SCHEDULE_OVERRIDES": json.dumps({job: "1s"}),
    }
    first = await netroom("worker", "--scheduler", env=env)
    second = await netroom("worker", "--scheduler", env=env)
    await first.wait_for_line(r"scheduler: .*retention\.scrub_technical_data \(1s\)")
    await second.wait_for_line(r"scheduler: .*retention\.scrub_technical_data \(1s\)")
    began = datetime.now(UTC)
    await asyncio.sleep(5)
    # One scheduler dies mid-whatever: the other goes on with the next ticks alone.
    first.proc.kill()
    await first.stop()
    killed = datetime.now(UTC)
    await asyncio.sleep(4)
    ended = datetime.now(UTC)
    assert await second.stop() == 0

    def enqueued(process: Running) -> set[datetime]:
        return {
            datetime.fromisoformat(m.group(2))
            for m in ENQUEUED.finditer(process.output)
            if m.group(1) == job
        }

    by_first, by_second = enqueued(first), enqueued(second)
    assert not by_first & by_second, "a tick was enqueued by both schedulers"
    async with engine.connect() as conn:
        rows = (
            await conn.execute(
                text(
                    "SELECT scheduled_for, status, started_at, finished_at FROM job_runs"
                    " WHERE job = :job AND scheduled_for IS NOT NULL ORDER BY scheduled_for"
                ),
                {"job": job},
            )
        ).all()
    ticks = [r.scheduled_for for r in rows]
    # Every enqueued tick was claimed, and every claimed tick was enqueued by exactly one of the
    # two, but for one the kill -9 may have cut between its claim and the line saying so.
    assert by_first | by_second <= set(ticks)
    unlogged = set(ticks) - (by_first | by_second)
    assert all(abs((t - killed).total_seconds()) <= 2 for t in unlogged), (unlogged, killed)
    # Ticks well inside the window (about three) ran and finished. A tick that passes while no
    # scheduler gets the CPU is not caught up (the module's invariants), and on a machine busy
    # with other tests both may miss one second.
    window = [r for r in rows if began <= r.scheduled_for <= killed - timedelta(seconds=2)]
    assert len(window) >= 2, rows
    assert {r.status for r in window} == {"ok"}
    assert all(r.finished_at >= r.started_at >= r.scheduled_for for r in window)
    after_kill = {t for t in ticks if killed + timedelta(seconds=1) <= t <= ended}
    assert len(after_kill) >= 2 and after_kill <= by_second
    # No tick ran twice: each execution the workers logged started one recorded run.
    executed = sum(p.output.count(f"Executing task {job} with ID") for p in (first, second))
    started = sum(1 for r in rows if r.started_at is not None)
    assert started - 1 <= executed <= started


async def test_run_purges_an_expired_message_by_itself_within_one_interval(
    netroom: Spawn, engine: AsyncEngine, database_url: str, redis_url: str
) -> None:
    interval = 3
    web_port, sandbox_port = free_port(), free_port()
    env = {
        "DATABASE__URL": database_url,
        "REDIS__URL": redis_url,
        "WEB__PORT": str(web_port),
        "WEB__PUBLIC_URL": f"http://127.0.0.1:{web_port}",
        "SANDBOX__PORT": str(sandbox_port),
        "JOBS__SCHEDULE_OVERRIDES": json.dumps({"retention.purge_expired": f"{interval}s"}),
    }
    service = await netroom("run", env=env)
    await service.wait_for_line(r"NetRoom is running", wait=90)

    factory = UnitOfWorkFactory.for_engine(engine)
    written = datetime.now(UTC) - timedelta(days=15)
    async with factory() as uow:
        user = (await register(uow)).user
        turn = await turns.begin_turn(
            uow,
            user_id=user.id,
            text="a prompt past its 14 days",
            model=ModelTerms("free", "openai", "free", 4_000, 0, 0),
            now=written,
        )
    made_expired = asyncio.get_running_loop().time()
    # The run in progress when it was written may be the one that purges it.
    inserted_at = datetime.now(UTC) - timedelta(seconds=interval + 1)
    async with asyncio.timeout(interval + 10):
        while True:
            async with factory() as uow:
                left = await uow.session.scalar(
                    select(ChatMessageRow.id).filter_by(conversation_id=turn.conversation_id)
                )
            if left is None:
                break
            await asyncio.sleep(0.2)
    # No `netroom retention`: the running service purged it on its own schedule.
    assert asyncio.get_running_loop().time() - made_expired <= interval + 10
    # The run that purged it finishes and records its counts, summed.
    async with asyncio.timeout(30):
        while True:
            async with engine.connect() as conn:
                affected = await conn.scalar(
                    text(
                        "SELECT max(rows_affected) FROM job_runs"
                        " WHERE job = 'retention.purge_expired' AND status = 'ok'"
                        " AND started_at >= :written"
                    ),
                    {"written": inserted_at},
                )
            if affected:
                break
            await asyncio.sleep(0.2)
    assert affected >= 1
    listed = (await jobs_json(netroom, env))["retention.purge_expired"]
    assert set(listed) == {
        "name",
        "schedule",
        "last_started_at",
        "last_finished_at",
        "last_status",
        "next_due_at",
    }
    assert listed["schedule"] == f"{interval}s"
    assert listed["last_status"] == "ok"
    last_started = datetime.fromisoformat(listed["last_started_at"])
    assert last_started >= inserted_at
    # The service is still running: a later run may have started after the last finish.
    assert datetime.fromisoformat(listed["last_finished_at"]) >= inserted_at
    assert datetime.fromisoformat(listed["next_due_at"]) > last_started
    assert service.proc.returncode is None
    assert await service.stop() == 0


async def test_a_failing_job_is_reported_to_the_admin_chat_once(
    netroom: Spawn, database_url: str, redis_url: str
) -> None:
    sandbox = await start_sandbox()
    token = f"{secrets.randbelow(10**9) + 10**9}:{secrets.token_urlsafe(27)}"
    try:
        async with SandboxClient(sandbox.url) as client:
            await client.register_bot(token, username="netroom_ops_bot", first_name="NetRoom")
            admin = await client.create_user("Operator", language_code="en")
            desk = await client.create_group("Operators", [admin["id"]], with_bot=True)
            env = {
                "DATABASE__URL": database_url,
                "REDIS__URL": redis_url,
                "BOT__TOKEN": token,
                "BOT__API_BASE": sandbox.url,
                "BOT__ADMIN_IDS": json.dumps([admin["id"]]),
                "BOT__ADMIN_CHAT_ID": str(desk["id"]),
                # YooKassa cannot be reached: every reconciliation fails.
                "YOOKASSA__SHOP_ID": "shop",
                "YOOKASSA__SECRET_KEY": "key",
                "YOOKASSA__API_BASE": f"http://127.0.0.1:{free_port()}/v3",
                "JOBS__SCHEDULE_OVERRIDES": json.dumps({"payments.reconcile": "2s"}),
            }
            worker = await netroom("worker", "--scheduler", env=env)
            await worker.wait_for_line(r"scheduler: .*payments\.reconcile \(2s\)")
            report = await client.wait_for(
                lambda e: (
                    e["type"] == "bot_message"
                    and "payments.reconcile" in (e["message"]["text"] or "")
                ),
                chat_id=desk["id"],
                wait=30,
            )
            assert "failed" in report["message"]["text"]
            assert "PaymentGatewayError" in report["message"]["text"]
            # The job goes on failing every 2 s; the episode is reported once.
            await worker.wait_for_line(r"Executing task payments\.reconcile", wait=10)
            failures_before = worker.output.count("Executing task payments.reconcile")
            await asyncio.sleep(5)
            assert worker.output.count("Executing task payments.reconcile") > failures_before
            reports = [
                m
                for m in await client.bot_messages(desk["id"])
                if "payments.reconcile" in (m.get("text") or "")
            ]
            assert len(reports) == 1
            assert await worker.stop() == 0
            listing = await netroom("jobs", env=env)
            assert await asyncio.wait_for(listing.proc.wait(), 60) == 0
            await listing.reader
            assert re.search(r"^! payments\.reconcile failed", listing.output, re.M)
            assert re.search(r"^payments\.reconcile\s+2s\s.*\bfailed\b", listing.output, re.M)
    finally:
        await sandbox.stop()


async def test_an_episode_is_reported_once_by_any_number_of_schedulers_and_ends_on_success(
    engine: AsyncEngine, redis_url: str
) -> None:
    job = f"test.flaky_{secrets.token_hex(3)}"
    factory = UnitOfWorkFactory.for_engine(engine)
    sandbox = await start_sandbox()
    token = f"{secrets.randbelow(10**9) + 10**9}:{secrets.token_urlsafe(27)}"
    bot = create_bot(token, sandbox.url)
    broker = create_broker(redis_url, JobDeps(uow_factory=factory))

    async def run(*, error: str | None) -> None:
        now = datetime.now(UTC)
        async with factory() as uow:
            run_id = await job_runs.start_run(uow, job=job, scheduled_for=None, now=now)
            await job_runs.finish_run(uow, run_id, now=now, error=error, rows=None)

    try:
        async with SandboxClient(sandbox.url) as client:
            await client.register_bot(token, username="netroom_watch_bot", first_name="NetRoom")
            admin = await client.create_user("Operator", language_code="en")
            desk = await client.create_group("Operators", [admin["id"]], with_bot=True)

            def scheduler() -> Scheduler:
                return Scheduler(
                    broker,
                    [PeriodicJob(job, parse_schedule("10m"))],
                    factory,
                    notifier=BotNotifier(bot, create_i18n()),
                    admin_chat_ids=(desk["id"],),
                )

            async def reports() -> list[str]:
                messages = await client.bot_messages(desk["id"])
                return [m["text"] for m in messages if job in (m.get("text") or "")]

            one, two = scheduler(), scheduler()
            await run(error="RuntimeError: the provider is away")
            for watcher in (one, two, one, two):
                await watcher.check_health(datetime.now(UTC))
            [report] = await reports()
            assert "RuntimeError: the provider is away" in report
            # A success after the report ends the episode; the next failure is a new one.
            await run(error=None)
            await one.check_health(datetime.now(UTC))
            async with factory() as uow:
                assert job not in await job_runs.alerted(uow)
            await run(error="RuntimeError: away again")
            await two.check_health(datetime.now(UTC))
            await one.check_health(datetime.now(UTC))
            assert len(await reports()) == 2
    finally:
        await broker.shutdown()
        await bot.session.close()
        await sandbox.stop()


class CuttableLink:
    """A TCP link to Postgres that the test can cut (every connection dropped, new ones refused)
    and restore on the same port: Postgres gone for a while, as the scheduler sees it."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.port = free_port()
        self.server: asyncio.Server | None = None
        self.transports: set[asyncio.BaseTransport] = set()

    async def open(self) -> None:
        self.server = await asyncio.start_server(self._relay, "127.0.0.1", self.port)

    async def cut(self) -> None:
        assert self.server is not None
        self.server.close()
        for transport in self.transports:
            transport.abort()  # type: ignore[attr-defined]
        self.transports.clear()
        await self.server.wait_closed()
        self.server = None

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return
        self.transports |= {writer.transport, up_writer.transport}

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError, ConnectionError):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))


async def test_the_scheduler_outlives_postgres_going_away_and_goes_on_after(
    netroom: Spawn, engine: AsyncEngine, database_url: str, redis_url: str
) -> None:
    job = "tariffs.expire_subscriptions"
    url = make_url(database_url)
    link = CuttableLink(url.host or "127.0.0.1", url.port or 5432)
    await link.open()
    env = {
        "DATABASE__URL": url.set(host="127.0.0.1", port=link.port).render_as_string(
            hide_password=False
        ),
        "REDIS__URL": redis_url,
        "JOBS__SCHEDULE_OVERRIDES": json.dumps({job: "1s"}),
    }
    try:
        worker = await netroom("worker", "--scheduler", env=env)
        await worker.wait_for_line(r"scheduler: .*tariffs\.expire_subscriptions \(1s\)")
        await worker.wait_for_line(rf"scheduler: {re.escape(job)} enqueued", wait=20)
        await link.cut()
        await worker.wait_for_line(
            rf"scheduler: {re.escape(job)} at \S+ could not be claimed", wait=20
        )
        await asyncio.sleep(3)
        await link.open()
        restored = datetime.now(UTC)
        await asyncio.sleep(5)
        assert worker.proc.returncode is None, worker.output[-3000:]
        async with engine.connect() as conn:
            after = (
                await conn.execute(
                    text(
                        "SELECT scheduled_for, status FROM job_runs"
                        " WHERE job = :job AND scheduled_for >= :since"
                        " AND scheduled_for <= :until"
                    ),
                    {
                        "job": job,
                        "since": restored + timedelta(seconds=1),
                        "until": restored + timedelta(seconds=3),
                    },
                )
            ).all()
        # Back on its own: the ticks after Postgres returned were claimed, run and recorded.
        assert len(after) >= 2, worker.output[-3000:]
        assert {r.status for r in after} == {"ok"}
        assert await worker.stop() == 0
    finally:
        if link.server is not None:
            await link.cut()
