"""Faults against the running service: `netroom run` as a real process on a scratch database,
the Telegram sandbox and its fake providers over HTTP, killed, stopped or cut off from Postgres
at chosen points; then the money is checked from the database.

Used by the fault tests (tests/faults/) and by ``python -m bench.faults``. What is counted:
- payments lost: Stars top-ups paid in the sandbox that are not on the balance;
- holds left: reservations still held (and balances with money reserved) after the deadline;
- unbilled: replies delivered to a user (a final message with the model's text) without a
  charge for them in the ledger;
- locked out: users who, after the fault, cannot get an answer to a new message in time;
- inconsistent: balances that are not the sum of their ledger entries.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import httpx
from redis.asyncio import Redis
from sqlalchemy import TextClause, text

from core import owners
from core.deeplinks import parse_start_payload
from core.dto import ClientInfo
from core.services import accounts, billing, conversations, settlement
from db.engine import UnitOfWorkFactory, create_engine
from sandbox.app import SandboxServer, start_sandbox
from sandbox.client import SandboxClient

POLICY = "2026-11-01"
STARTUP_TIMEOUT = 120.0
# Settings of the process under test come from here only, never from a .env of the checkout.
SETTINGS_PREFIXES = (
    "BOT__",
    "DATABASE__",
    "REDIS__",
    "WEB__",
    "SANDBOX__",
    "PAYMENTS__",
    "FREE_TIER__",
    "POLICY__",
    "YOOKASSA__",
    "PROVIDERS__",
    "SHUTDOWN__",
    "HOLDS__",
    "AUTH__",
    "EMAIL__",
    "OAUTH__",
    "FILES__",
)
SLOW_MARKER = "Aardvark"
FAST_MARKER = "Zebra"
BUSY_TEXT = "still answering"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def slow_reply(words: int = 60) -> str:
    return SLOW_MARKER + " " + " ".join(f"word{i}" for i in range(words)) + "."


@dataclass
class Figures:
    payments_lost: int = 0
    holds_left: int = 0
    unbilled: int = 0
    locked_out: int = 0
    inconsistent: int = 0
    notes: list[str] = field(default_factory=list)
    # Scenarios that could not run to the end (the figures above are then incomplete).
    broken: int = 0

    def add(self, other: Figures) -> Figures:
        return Figures(
            self.payments_lost + other.payments_lost,
            self.holds_left + other.holds_left,
            self.unbilled + other.unbilled,
            self.locked_out + other.locked_out,
            self.inconsistent + other.inconsistent,
            [*self.notes, *other.notes],
            self.broken + other.broken,
        )

    @property
    def clean(self) -> bool:
        return not (
            self.payments_lost
            or self.holds_left
            or self.unbilled
            or self.locked_out
            or self.inconsistent
            or self.broken
        )


class ScratchPostgres:
    """A Postgres cluster of our own on a free port, which a fault may stop and start. Run as
    the ``postgres`` system user when we are root (Postgres refuses root)."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="netroom-faults-pg-"))
        self.data = self.root / "data"
        self.port = free_port()
        self._as: list[str] = []
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres", "postgres")
            self._as = ["runuser", "-u", "postgres", "--"]

    def _run(self, *args: str) -> None:
        subprocess.run([*self._as, *args], check=True, capture_output=True, timeout=120)  # noqa: S603 (our own fixed arguments)

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/netroom"

    def init(self) -> str:
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8")
        self.start()
        self._run("psql", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-c",
                  "CREATE DATABASE netroom")  # fmt: skip
        return self.url

    def start(self) -> None:
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run(
            "pg_ctl", "-D", str(self.data), "-o", options, "-l", str(self.root / "log"), "-w",
            "start",
        )  # fmt: skip

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")

    def destroy(self) -> None:
        with contextlib.suppress(subprocess.SubprocessError, OSError):
            self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


@contextlib.asynccontextmanager
async def scratch_database(server_url: str) -> AsyncIterator[str]:
    """A fresh, empty database on ``server_url`` (the process under test migrates it)."""
    name = f"netroom_faults_{secrets.token_hex(4)}"
    admin = server_url.replace("postgresql+asyncpg://", "postgresql://")
    conn = await asyncpg.connect(admin)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    base, _, _db = admin.rpartition("/")
    try:
        yield f"{base}/{name}"
    finally:
        conn = await asyncpg.connect(admin)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()


class Service:
    """One `netroom` process (`netroom run` unless told otherwise: `web`, `worker
    --scheduler`...); its output goes to a log file in the work directory."""

    def __init__(
        self,
        env: dict[str, str],
        workdir: Path,
        name: str,
        command: tuple[str, ...] = ("run",),
    ) -> None:
        self.env = env
        self.workdir = workdir
        self.name = name
        self.command = command
        self.log_path = workdir / f"{name}.log"
        self.proc: asyncio.subprocess.Process | None = None
        self._term_at = 0.0
        # Seconds from the spawn to "NetRoom is running." (after ``start``).
        self.startup_seconds = 0.0

    def tail(self, chars: int = 4000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:]

    async def start(self) -> None:
        clean = {k: v for k, v in os.environ.items() if not k.startswith(SETTINGS_PREFIXES)}
        clean = {k: v for k, v in clean.items() if k not in ("ENV", "DATA_DIR", "CATALOGUE_PATH")}
        began = time.monotonic()
        with self.log_path.open("ab") as log:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "netroom",
                *self.command,
                cwd=self.workdir,
                env={**clean, **self.env},
                stdout=log,
                stderr=asyncio.subprocess.STDOUT,
            )
        deadline = time.monotonic() + STARTUP_TIMEOUT
        start = self.log_path.stat().st_size
        while "NetRoom is running." not in self.log_path.read_text(errors="replace")[start:]:
            if self.proc.returncode is not None or time.monotonic() > deadline:
                command = " ".join(self.command)
                raise AssertionError(f"`netroom {command}` did not start:\n{self.tail()}")
            await asyncio.sleep(0.05)
        self.startup_seconds = time.monotonic() - began

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)

    async def terminate(self, within: float) -> tuple[int | None, float]:
        """SIGTERM; the exit code (None if it did not exit ``within`` seconds) and how long."""
        self.term()
        return await self.exited(within)

    def term(self) -> None:
        assert self.proc is not None
        self._term_at = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)

    async def exited(self, within: float) -> tuple[int | None, float]:
        """The exit code after the SIGTERM (None if not within ``within`` s) and how long."""
        assert self.proc is not None
        try:
            async with asyncio.timeout(within):
                code = await self.proc.wait()
        except TimeoutError:
            return None, time.monotonic() - self._term_at
        return code, time.monotonic() - self._term_at

    async def close(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()


@dataclass
class User:
    telegram_id: int
    user_id: int


class World:
    """The sandbox (Telegram and providers) in this process, a database and a Redis for the
    service, and the users in them."""

    def __init__(
        self, sandbox: SandboxServer, database_url: str, redis_url: str, workdir: Path
    ) -> None:
        self.sandbox = sandbox
        self.database_url = database_url
        self.redis_url = redis_url
        self.workdir = workdir
        self.control = SandboxClient(sandbox.url)
        self.token = f"{secrets.randbelow(9 * 10**8) + 10**8}:{secrets.token_urlsafe(27)}"
        self.web_port = free_port()
        self.engine = create_engine(database_url, pool_size=2, max_overflow=4)
        self.uow_factory = UnitOfWorkFactory.for_engine(self.engine)
        self.redis = Redis.from_url(redis_url)
        self.services: list[Service] = []

    @classmethod
    @contextlib.asynccontextmanager
    async def open(cls, database_url: str, redis_url: str, workdir: Path) -> AsyncIterator[World]:
        sandbox = await start_sandbox("127.0.0.1", 0)
        world = cls(sandbox, database_url, redis_url, workdir)
        try:
            await world.control.register_bot(world.token, "netroom_faults_bot", "NetRoom")
            # Settlements kept by an earlier run on this Redis are not this world's.
            await world.redis.delete(settlement.PENDING)
            yield world
        finally:
            for service in world.services:
                await service.close()
            await world.control.aclose()
            await world.redis.delete(settlement.PENDING)
            await world.redis.aclose()
            await world.engine.dispose()
            await sandbox.stop()

    def env(self, **extra: str) -> dict[str, str]:
        base = self.sandbox.url
        return {
            "BOT__TOKEN": self.token,
            "BOT__API_BASE": base,
            "DATABASE__URL": self.database_url,
            "DATABASE__POOL_SIZE": "20",
            "REDIS__URL": self.redis_url,
            "WEB__PORT": str(self.web_port),
            "WEB__PUBLIC_URL": f"http://127.0.0.1:{self.web_port}",
            "DATA_DIR": str(self.workdir / "data"),
            "PROVIDERS__OPENAI__API_KEY": "sk-sandbox-openai",
            "PROVIDERS__OPENAI__BASE_URL": f"{base}/openai/v1",
            # Every request is paid: the free allowance would hide the billing.
            "FREE_TIER__LIMITS": "{}",
            "LOG_LEVEL": "INFO",
            **extra,
        }

    async def start_service(self, name: str, **extra: str) -> Service:
        return await self.start_command(name, ("run",), **extra)

    async def start_command(self, name: str, command: tuple[str, ...], **extra: str) -> Service:
        """`netroom <command>` (`web`, `worker --scheduler`...) with this world's settings."""
        service = Service(self.env(**extra), self.workdir, name, command)
        self.services.append(service)
        await service.start()
        return service

    async def users(self, count: int, balance: int = 500_00) -> list[User]:
        made: list[User] = []
        for i in range(count):
            person = await self.control.create_user(f"Faulty{i}", language_code="en")
            async with self.uow_factory() as uow:
                registration = await accounts.register_telegram_user(
                    uow,
                    telegram_id=person["id"],
                    username=None,
                    first_name=person["first_name"],
                    last_name=None,
                    language_code="en",
                    payload=parse_start_payload(None),
                    policy_version=POLICY,
                    client=ClientInfo(platform="telegram"),
                )
                user_id = registration.user.id
            if balance > 0:
                async with self.uow_factory() as uow, uow.transaction():
                    await billing.credit(
                        uow,
                        user_id=user_id,
                        amount=balance,
                        category="topup",
                        key=f"seed:{user_id}",
                    )
            made.append(User(person["id"], user_id))
        return made

    async def script(
        self, reply: str, *, times: int, chunk_delay_ms: int = 100, chunk_size: int = 8
    ) -> None:
        response = await self.control.http.post(
            f"{self.sandbox.url}/sandbox/api/providers/script",
            json={
                "provider": "openai",
                "reply": reply,
                "chunk_delay_ms": chunk_delay_ms,
                "chunk_size": chunk_size,
                "times": times,
            },
        )
        response.raise_for_status()

    async def clear_scripts(self) -> None:
        await self.control.http.delete(f"{self.sandbox.url}/sandbox/api/providers/script")

    async def send_all(self, users: list[User], text: str) -> None:
        await asyncio.gather(*(self.control.send_text(u.telegram_id, text) for u in users))

    async def nothing_waiting(self, users: list[User]) -> bool:
        """No update from these users waits in the inbox (each was handled)."""
        async with self.uow_factory() as uow:
            count = await uow.session.scalar(
                _sql("SELECT count(*) FROM inbox_updates WHERE telegram_id = ANY(:ids)"),
                {"ids": [u.telegram_id for u in users]},
            )
            return not count

    async def held(self, users: list[User]) -> int:
        async with self.uow_factory() as uow:
            count = await uow.session.scalar(
                _sql(
                    "SELECT count(*) FROM reservations WHERE status = 'held'"
                    " AND user_id = ANY(:ids)"
                ),
                {"ids": [u.user_id for u in users]},
            )
            return int(count or 0)

    async def wait_until(
        self, check: Callable[[], Awaitable[bool]], seconds: float, pause: float = 0.25
    ) -> bool:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if await check():
                return True
            await asyncio.sleep(pause)
        return await check()

    async def wait_held(self, users: list[User], count: int, seconds: float = 60) -> None:
        async def enough() -> bool:
            return await self.held(users) >= count

        if not await self.wait_until(enough, seconds):
            raise AssertionError(f"only {await self.held(users)} of {count} replies began")

    async def replies(self, user: User, marker: str) -> list[str]:
        """Final messages the bot sent this user with the model's text in them."""
        return [
            m.get("text") or ""
            for m in await self.control.bot_messages(user.telegram_id)
            if marker in (m.get("text") or "")
        ]

    async def heartbeats(self) -> list[str]:
        """The owner ids of the processes alive now (by their heartbeat keys)."""
        return [
            key.decode().removeprefix(owners.HEARTBEAT_PREFIX)
            async for key in self.redis.scan_iter(match=owners.HEARTBEAT_PREFIX + "*")
        ]

    async def delivered(self, user: User, marker: str) -> int:
        """Replies the user saw any of: streamed drafts (one draft id per reply) or final
        messages with ``marker`` in them."""
        events, _ = await self.control.events(chat_id=user.telegram_id)
        drafts = {
            e.get("draft_id")
            for e in events
            if e["type"] == "draft" and marker in (e.get("text") or "")
        }
        return max(len(drafts), len(await self.replies(user, marker)))

    async def shown(self, users: list[User], marker: str) -> int:
        """How many users have a final message with ``marker`` in it."""
        return len([u for u in users if await self.replies(u, marker)])

    async def answered_again(self, users: list[User], seconds: float) -> int:
        """Each user sends a new message; how many are NOT answered by the model in time."""
        await self.clear_scripts()
        await self.script(FAST_MARKER + " here again.", times=len(users), chunk_delay_ms=5)
        before = {u.telegram_id: len(await self.replies(u, FAST_MARKER)) for u in users}
        await self.send_all(users, "Are you there?")

        async def all_answered() -> bool:
            for u in users:
                if len(await self.replies(u, FAST_MARKER)) <= before[u.telegram_id]:
                    return False
            return True

        await self.wait_until(all_answered, seconds, pause=0.5)
        missing = 0
        for u in users:
            if len(await self.replies(u, FAST_MARKER)) <= before[u.telegram_id]:
                missing += 1
        return missing

    async def figures(
        self,
        users: list[User],
        *,
        hold_deadline: float,
        markers: tuple[str, ...],
        drafts: bool = True,
    ) -> Figures:
        """Wait up to ``hold_deadline`` seconds for every hold to be gone, then count. With
        ``drafts``, a reply the user saw only streaming counts as delivered (the process lived
        to bill it); without, only final messages do (after a kill -9 nothing can bill the
        part a dead process had streamed, and its hold goes back instead)."""
        out = Figures()

        async def no_holds() -> bool:
            return await self.held(users) == 0 and not await self._reserved(users)

        began = time.monotonic()
        await self.wait_until(no_holds, hold_deadline, pause=0.5)
        out.notes.append(f"holds gone after {time.monotonic() - began:.1f}s")
        out.holds_left = await self.held(users) + len(await self._reserved(users))
        async with self.uow_factory() as uow:
            for u in users:
                if not await billing.check_consistency(uow, u.user_id):
                    out.inconsistent += 1
                billed = await uow.session.scalar(
                    _sql(
                        "SELECT count(*) FROM ledger_entries WHERE user_id = :u"
                        " AND category = 'text' AND amount < 0"
                    ),
                    {"u": u.user_id},
                )
                delivered = 0
                for marker in markers:
                    if drafts:
                        delivered += await self.delivered(u, marker)
                    else:
                        delivered += len(await self.replies(u, marker))
                if delivered > int(billed or 0):
                    out.unbilled += delivered - int(billed or 0)
        return out

    async def _reserved(self, users: list[User]) -> list[int]:
        async with self.uow_factory() as uow:
            rows = await uow.session.execute(
                _sql("SELECT user_id FROM balances WHERE reserved <> 0 AND user_id = ANY(:ids)"),
                {"ids": [u.user_id for u in users]},
            )
            return [int(r[0]) for r in rows]

    async def delete_conversations(self, users: list[User]) -> int:
        """Each user deletes their current conversation (as from the web app), mid-reply."""
        deleted = 0
        async with self.uow_factory() as uow, uow.reading():
            rows = await uow.session.execute(
                _sql("SELECT id, user_id FROM conversations WHERE user_id = ANY(:ids)"),
                {"ids": [u.user_id for u in users]},
            )
            found = [(int(r[0]), int(r[1])) for r in rows]
        for conversation_id, user_id in found:
            async with self.uow_factory() as uow:
                await conversations.delete_conversation(uow, user_id, conversation_id)
                deleted += 1
        return deleted


def _sql(statement: str) -> TextClause:
    return text(statement)


# --- scenarios: each starts the service, makes the fault, and counts --------------------------

# Short heartbeats and sweeps (real settings) keep the tests quick; the product defaults keep
# the same promises within two minutes.
QUICK_HOLDS = {"HOLDS__HEARTBEAT_TTL_SECONDS": "4", "HOLDS__SWEEP_SECONDS": "2"}


async def kill_mid_stream(
    world: World, *, users: int = 20, holds: dict[str, str] | None = None, answer_within: float = 30
) -> Figures:
    """kill -9 while every user's reply streams, restart: everyone is answered again within
    ``answer_within`` seconds, and no hold is left within two minutes."""
    env = holds if holds is not None else QUICK_HOLDS
    service = await world.start_service("kill", **env)
    people = await world.users(users)
    await world.script(slow_reply(80), times=users, chunk_delay_ms=150)
    await world.send_all(people, "Tell me a long story")
    await world.wait_held(people, users)
    await asyncio.sleep(1.0)
    service.kill()
    assert service.proc is not None
    await service.proc.wait()
    # The updates the dead process was answering are answered again at start-up (the inbox
    # keeps them until handled); a message sent while that answer runs is rightly told to
    # wait. The probe below comes once they are handled, so it finds only a lock left behind.
    await world.clear_scripts()
    await world.script(FAST_MARKER + " again.", times=users, chunk_delay_ms=5)
    await world.start_service("kill-restarted", **env)
    handled = await world.wait_until(lambda: world.nothing_waiting(people), answer_within)
    locked = await world.answered_again(people, answer_within)
    out = await world.figures(
        people, hold_deadline=120, markers=(SLOW_MARKER, FAST_MARKER), drafts=False
    )
    out.locked_out = locked
    if not handled:
        out.broken += 1
        out.notes.append("the updates the dead process left were not handled")
    return out


async def sigterm_mid_stream(
    world: World, *, users: int = 8, grace: float, reply_words: int, chunk_delay_ms: int
) -> tuple[Figures, int | None, float, int]:
    """SIGTERM while replies stream: the exit code, how long the stop took, and how many users
    saw a final message with the model's text (the whole reply, or what was delivered)."""
    service = await world.start_service(
        f"sigterm-{grace:g}", SHUTDOWN__GRACE_SECONDS=str(grace), **QUICK_HOLDS
    )
    people = await world.users(users)
    await world.script(slow_reply(reply_words), times=users, chunk_delay_ms=chunk_delay_ms)
    await world.send_all(people, "Tell me a story")
    await world.wait_held(people, users)
    await asyncio.sleep(1.0)
    # Renewed every third of its 4 s life: on a machine this loaded a beat can be late, so the
    # process's own key is looked for over a few seconds.
    beating = await world.heartbeats()
    for _ in range(12):
        if beating:
            break
        await asyncio.sleep(0.25)
        beating = await world.heartbeats()
    service.term()
    out_refused: tuple[int, object] | None = None
    if grace >= 3:
        # While replies finish, a new chat turn from the web app is refused, and says why.
        await asyncio.sleep(0.5)
        async with httpx.AsyncClient(timeout=5) as http:
            refused = await http.post(f"http://127.0.0.1:{world.web_port}/api/chat", json={})
        out_refused = (refused.status_code, refused.json().get("error"))
    code, took = await service.exited(within=grace + 20)
    left_beating = await world.heartbeats()
    shown = await world.shown(people, SLOW_MARKER)
    out = await world.figures(people, hold_deadline=10, markers=(SLOW_MARKER,))
    out.notes.append(f"exit code {code} after {took:.1f}s (grace {grace:g}s)")
    if len(beating) != 1 or left_beating:
        out.broken += 1
        out.notes.append(f"heartbeats while serving {beating}, after stopping {left_beating}")
    if grace >= 3 and out_refused != (503, "shutting_down"):
        out.broken += 1
        out.notes.append(f"a new turn while stopping got {out_refused}")
    return out, code, took, shown


async def postgres_pause(
    world: World, pg: ScratchPostgres, *, users: int = 5, outage: float = 15
) -> tuple[Figures, int]:
    """Postgres stops for ``outage`` seconds just before the replies end; afterwards every
    delivered reply is billed and nothing is held. How many users saw their reply."""
    await world.start_service("pg-pause", **QUICK_HOLDS)
    people = await world.users(users)
    # About 6 s of streaming; Postgres goes away after about 4.
    await world.script(slow_reply(40), times=users, chunk_delay_ms=150)
    await world.send_all(people, "Tell me a story")
    await world.wait_held(people, users)
    await asyncio.sleep(3.5)
    await asyncio.to_thread(pg.stop)
    await asyncio.sleep(outage)
    await asyncio.to_thread(pg.start)
    out = await world.figures(people, hold_deadline=120, markers=(SLOW_MARKER,))
    shown = await world.shown(people, SLOW_MARKER)
    return out, shown


async def broken_replies(world: World, *, users: int = 4) -> Figures:
    """A reply with a NUL byte in it, and conversations deleted while their replies stream:
    every delivered reply is billed, nothing is held, nobody is locked out."""
    await world.start_service("broken", **QUICK_HOLDS)
    people = await world.users(users)
    nul = SLOW_MARKER + " before\x00after " + " ".join(f"w{i}" for i in range(30))
    await world.script(nul, times=users, chunk_delay_ms=120)
    await world.send_all(people, "Say something odd")
    await world.wait_held(people, users)
    await asyncio.sleep(1.0)
    await world.delete_conversations(people[: users // 2])

    async def all_shown() -> bool:
        return all([await world.replies(u, SLOW_MARKER) for u in people])

    await world.wait_until(all_shown, 30, pause=0.5)
    out = await world.figures(people, hold_deadline=20, markers=(SLOW_MARKER,))
    out.locked_out = await world.answered_again(people, 30)
    return out


async def _invoice(world: World, user: User, stars: int = 50) -> int:
    """The user opens /balance and taps a Stars package; the invoice message's id."""
    after = await world.control.last_seq()
    await world.control.send_text(user.telegram_id, "/balance")
    view = await world.control.wait_for(
        lambda e: e["type"] == "bot_message" and bool(e["message"].get("reply_markup")),
        chat_id=user.telegram_id,
        after=after,
        wait=30,
    )
    rows = view["message"]["reply_markup"]["inline_keyboard"]
    offer = next(b for row in rows for b in row if b["text"].startswith(f"⭐️ {stars} "))
    after = await world.control.last_seq()
    await world.control.tap(user.telegram_id, view["message_id"], offer["callback_data"])
    invoice = await world.control.wait_for(
        lambda e: e["type"] == "bot_message" and "invoice" in e["message"],
        chat_id=user.telegram_id,
        after=after,
        wait=30,
    )
    return int(invoice["message_id"])


async def payments_in_flight(world: World, *, users: int = 10) -> Figures:
    """Every user pays a Stars invoice and the service is killed (-9) while the payments arrive;
    after a restart every payment Telegram took is on the user's balance."""
    service = await world.start_service("payments", **QUICK_HOLDS)
    people = await world.users(users, balance=0)
    invoices = [await _invoice(world, u) for u in people]
    after = await world.control.last_seq()
    await asyncio.gather(
        *(
            world.control.pay(u.telegram_id, message_id=m)
            for u, m in zip(people, invoices, strict=True)
        )
    )

    # Killed once Telegram has taken half the payments: the rest are mid-way (pre-checkout
    # answered, the successful payment not yet recorded, or not yet answered).
    async def half_paid() -> bool:
        events, _ = await world.control.events(after=after)
        return sum(e["type"] == "payment_succeeded" for e in events) >= users // 2

    await world.wait_until(half_paid, 30, pause=0.05)
    service.kill()
    assert service.proc is not None
    await service.proc.wait()
    # Pre-checkouts answered before the kill complete at Telegram's side on their own.
    await asyncio.sleep(2)
    events, _ = await world.control.events(after=after)
    paid = {e["chat_id"] for e in events if e["type"] == "payment_succeeded"}
    await world.start_service("payments-restarted", **QUICK_HOLDS)

    async def credited() -> set[int]:
        async with world.uow_factory() as uow:
            rows = await uow.session.execute(
                _sql("SELECT DISTINCT user_id FROM payments WHERE user_id = ANY(:ids)"),
                {"ids": [u.user_id for u in people]},
            )
            return {int(r[0]) for r in rows}

    by_user = {u.user_id: u.telegram_id for u in people}

    async def all_credited() -> bool:
        return paid <= {by_user[i] for i in await credited()}

    await world.wait_until(all_credited, 60, pause=0.5)
    out = await world.figures(people, hold_deadline=10, markers=())
    out.payments_lost = len(paid - {by_user[i] for i in await credited()})
    out.notes.append(f"{len(paid)} of {users} payments went through Telegram before the kill")
    if out.payments_lost:
        out.notes.append("not credited within 60 s of the restart (daily reconciliation heals)")
    return out


async def webhook_drain(world: World, *, grace: float = 20) -> tuple[Figures, int | None, bool]:
    """Webhook mode: SIGTERM while one user's reply streams; another user's message arriving
    during the drain is refused (503) so Telegram keeps it, and the next process answers it.
    The exit code and whether that message was answered."""
    port = world.web_port
    hook = {
        "BOT__WEBHOOK_URL": f"http://127.0.0.1:{port}",
        "BOT__WEBHOOK_SECRET": secrets.token_urlsafe(16),
        "SHUTDOWN__GRACE_SECONDS": str(grace),
        **QUICK_HOLDS,
    }
    service = await world.start_service("webhook", **hook)
    first, second = await world.users(2)
    await world.script(slow_reply(40), times=1, chunk_delay_ms=120)
    await world.send_all([first], "Tell me a story")
    await world.wait_held([first], 1)
    service.term()
    await asyncio.sleep(0.5)
    await world.script(FAST_MARKER + " after the restart.", times=1, chunk_delay_ms=5)
    await world.control.send_text(second.telegram_id, "Anyone there?")
    code, _took = await service.exited(within=grace + 20)
    await world.start_service("webhook-restarted", **hook)

    async def answered() -> bool:
        return bool(await world.replies(second, FAST_MARKER))

    delivered = await world.wait_until(answered, 60, pause=0.5)
    out = await world.figures([first, second], hold_deadline=10, markers=(SLOW_MARKER, FAST_MARKER))
    if not await world.replies(first, SLOW_MARKER):
        out.notes.append("the reply in flight was not shown")
        out.broken += 1
    return out, code, delivered
