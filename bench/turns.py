"""Chat turns under Telegram's flood limits: 200 users at once asking a paced model, the sandbox's
flood limits on, through the whole NetRoom bot. Printed for the bot with its send pacer and for
the previous design (no shared pacing: a 429 is retried three times, then the reply is lost) in
the same run: final replies delivered / turns, turns billed but not delivered, time to the first
text of the reply (a draft or a message) and to the final message, p50/p95/p99. Targets: every
final reply delivered, none billed undelivered, first text p95 under 1.5 s.

Two shapes of load, both printed:

* a burst: every user sends at the same instant (the worst case: 200 turns' work lands on one
  process at once, so the latencies measure how long that work takes on this machine);
* a conversation: the same users chat as people do, each asking, reading the reply for a while
  (``--think``, seconds, drawn uniformly) and asking again, for ``--minutes``; users join spread
  over the first think time.

Both designs run as deployed: ``netroom bot`` in a process of its own (the previous design with
``BOT__SEND_PACING=false``), the sandbox and this load in this one, as Telegram and the people
are; each in a world of its own (sandbox, bot token, flood budgets). The load watches the turns
through the database and reads what the sandbox recorded once a round is over, so that
watching costs the machine little while the bot is measured.

    python -m bench.turns [--users 200] [--messages 1] [--delay-ms 50] [--think 20 40]
                          [--minutes 1.5]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import random
import secrets
import shutil
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from aiogram import Bot
from sqlalchemy import func, select

from bench._db import scratch_database
from bench.faultkit import World
from core.deeplinks import parse_start_payload
from core.dto import ClientInfo
from core.services import accounts, billing
from core.services.chat import ModelTerms
from db.engine import UnitOfWorkFactory
from db.models import ChatMessageRow, LedgerEntry, Reservation
from sandbox.client import SandboxClient

POLICY = "2026-11-01"
PAID_MODEL = ModelTerms("bench-paid", "openai", "gpt-bench", 16_000, 10, 30)
REDIS_URL = "redis://127.0.0.1:6379/0"
END = "End of the paced reply."
FIRST_TEXT_P95_TARGET = 1.5


def paced_reply(words: int = 120) -> str:
    return "Paced " + " ".join(f"word{n}" for n in range(words)) + f"\n\n{END}"


def percentile(values: Sequence[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[index]


@dataclass
class LoadResult:
    turns: int = 0
    delivered: int = 0
    first_text: list[float] = field(default_factory=list)
    final: list[float] = field(default_factory=list)
    # Per Telegram user: finals delivered, text charges, replies stored as complete.
    finals_by_user: dict[int, int] = field(default_factory=dict)
    charges_by_user: dict[int, int] = field(default_factory=dict)
    complete_by_user: dict[int, int] = field(default_factory=dict)
    reserved: int = 0
    seconds: float = 0.0
    # CPU seconds this process spent, and the machine's load average, during the run: the
    # latencies depend on what else the box is doing.
    cpu: float = 0.0
    load: float = 0.0

    @property
    def billed_undelivered(self) -> int:
        return sum(
            max(0, self.charges_by_user.get(u, 0) - self.finals_by_user.get(u, 0))
            for u in self.charges_by_user
        )

    @property
    def complete_undelivered(self) -> int:
        return sum(
            max(0, self.complete_by_user.get(u, 0) - self.finals_by_user.get(u, 0))
            for u in self.complete_by_user
        )

    def lines(self, label: str) -> list[str]:
        def p(values: list[float]) -> str:
            return "/".join(f"{percentile(values, q):.2f}" for q in (50, 95, 99))

        return [
            f"{label}: delivered {self.delivered}/{self.turns}, billed but undelivered "
            f"{self.billed_undelivered}, stored complete but undelivered "
            f"{self.complete_undelivered}, {self.seconds:.1f} s, {self.cpu:.1f} CPU s in this "
            f"process, load average {self.load:.1f}",
            f"  first text p50/p95/p99 {p(self.first_text)} s; final p50/p95/p99 {p(self.final)} s",
        ]


async def register_users(
    client: SandboxClient, factory: UnitOfWorkFactory, count: int, *, money: int, policy: str
) -> dict[int, int]:
    """Sandbox users who accepted the policy and hold ``money``: Telegram id -> account id.
    Registered a few at a time, each in its own transaction."""
    people: dict[int, int] = {}
    gate = asyncio.Semaphore(10)

    async def one(n: int) -> None:
        async with gate:
            telegram_id = (await client.create_user(f"Load{n}", language_code="en"))["id"]
            async with factory() as uow:
                registration = await accounts.register_telegram_user(
                    uow,
                    telegram_id=telegram_id,
                    username=None,
                    first_name=f"Load{n}",
                    last_name=None,
                    language_code="en",
                    payload=parse_start_payload(None),
                    policy_version=policy,
                    client=ClientInfo(platform="telegram"),
                )
                user_id = registration.user.id
                if money:
                    async with uow.transaction():
                        await billing.credit(
                            uow,
                            user_id=user_id,
                            amount=money,
                            category="topup",
                            key=f"load:{secrets.token_hex(8)}",
                        )
            people[telegram_id] = user_id

    await asyncio.gather(*(one(n) for n in range(count)))
    return people


async def _stored(factory: UnitOfWorkFactory, user_ids: Sequence[int]) -> int:
    async with factory() as uow:
        count = await uow.session.scalar(
            select(func.count())
            .select_from(ChatMessageRow)
            .where(ChatMessageRow.user_id.in_(user_ids), ChatMessageRow.role == "assistant")
        )
    return int(count or 0)


async def run_load(
    client: SandboxClient,
    factory: UnitOfWorkFactory,
    bot: Bot,
    people: dict[int, int],
    *,
    messages: int = 1,
    delay_ms: int = 50,
    chunk_size: int = 24,
    deadline: float = 80.0,
) -> LoadResult:
    """Every user sends ``messages`` texts, one per round, all users at once; a round ends when
    every turn is stored (delivered or not) or at ``deadline``. Latencies are the sandbox's own
    timestamps: from the user's message to the first text shown, and to the final message."""
    result = LoadResult()
    reply = paced_reply()
    users = list(people)
    started = time.monotonic()
    cpu = time.process_time()
    for _round in range(messages):
        await client._call(
            "POST",
            "/providers/script",
            json={
                "provider": "openai",
                "reply": reply,
                "chunk_delay_ms": delay_ms,
                "chunk_size": chunk_size,
                "times": len(users),
            },
        )
        before_stored = await _stored(factory, list(people.values()))
        after = await client.last_seq()
        # One call: every message is sent at the same instant, and 200 requests at once do not
        # load this process (the sandbox's) while the bot starts on them.
        await client.send_texts([(u, f"Question {_round} from {u}") for u in users], bot_id=bot.id)
        result.turns += len(users)
        until = time.monotonic() + deadline
        # Watched through the database only: every draft and message the sandbox records is
        # read once, at the end, so that reading them does not take CPU from the bot (in the
        # comparison the bot shares this process) while it is being measured. A turn is stored
        # after its final message was delivered or given up.
        while time.monotonic() < until:
            await asyncio.sleep(0.25)
            stored = await _stored(factory, list(people.values()))
            if stored - before_stored >= len(users):
                # Every turn ended; what was not delivered by now never will be.
                await asyncio.sleep(1.0)
                break
        events, _ = await client.events(after=after)
        asked: dict[int, float] = {}
        first: dict[int, float] = {}
        final: dict[int, float] = {}
        for event in events:
            chat, kind = event["chat_id"], event["type"]
            if chat not in people:
                continue
            if kind == "user_message":
                asked.setdefault(chat, event["at"])
            elif kind == "draft" and event.get("text"):
                first.setdefault(chat, event["at"])
            elif kind == "bot_message":
                text = event["message"].get("text") or ""
                if text.startswith("Paced"):
                    first.setdefault(chat, event["at"])
                if END in text:
                    final.setdefault(chat, event["at"])
        for chat, at in asked.items():
            if chat in first:
                result.first_text.append(first[chat] - at)
            if chat in final:
                result.final.append(final[chat] - at)
                result.delivered += 1
                result.finals_by_user[chat] = result.finals_by_user.get(chat, 0) + 1
    result.seconds = time.monotonic() - started
    result.cpu = time.process_time() - cpu
    result.load = os.getloadavg()[0]
    await asyncio.sleep(0.5)
    by_account = {account: telegram for telegram, account in people.items()}
    async with factory() as uow:
        charges = await uow.session.execute(
            select(LedgerEntry.user_id, func.count())
            .where(
                LedgerEntry.user_id.in_(by_account),
                LedgerEntry.category == "text",
                LedgerEntry.kind == "debit",
            )
            .group_by(LedgerEntry.user_id)
        )
        result.charges_by_user = {by_account[u]: n for u, n in charges.all()}
        complete = await uow.session.execute(
            select(ChatMessageRow.user_id, func.count())
            .where(
                ChatMessageRow.user_id.in_(by_account),
                ChatMessageRow.role == "assistant",
                ChatMessageRow.status == "complete",
            )
            .group_by(ChatMessageRow.user_id)
        )
        result.complete_by_user = {by_account[u]: n for u, n in complete.all()}
        result.reserved = int(
            await uow.session.scalar(
                select(func.count())
                .select_from(Reservation)
                .where(Reservation.user_id.in_(by_account), Reservation.status == "held")
            )
            or 0
        )
    return result


async def run_conversations(
    client: SandboxClient,
    factory: UnitOfWorkFactory,
    bot: Bot,
    people: dict[int, int],
    *,
    seconds: float,
    think: tuple[float, float],
    delay_ms: int = 50,
    chunk_size: int = 24,
) -> LoadResult:
    """Every user chats: asks, waits for the final reply, reads it for a random ``think`` time,
    asks again, until ``seconds`` have passed; then the turns in flight finish. Users join
    spread uniformly over the first think time. Latencies are the sandbox's timestamps."""
    result = LoadResult()
    rng = random.Random(20261206)  # nosec B311 # a reproducible load shape, no secret
    await client._call(
        "POST",
        "/providers/script",
        json={
            "provider": "openai",
            "reply": paced_reply(),
            "chunk_delay_ms": delay_ms,
            "chunk_size": chunk_size,
            "times": 100_000,
        },
    )
    finals: dict[int, asyncio.Event] = {u: asyncio.Event() for u in people}
    seq = await client.last_seq()
    first_seq = seq
    stop_polling = asyncio.Event()

    async def poll() -> None:
        nonlocal seq
        while not stop_polling.is_set():
            batch, _ = await client.events(after=seq, wait=1.0)
            for event in batch:
                seq = max(seq, event["seq"])
                final = event["type"] == "bot_message" and END in (
                    event["message"].get("text") or ""
                )
                if final and (done := finals.get(event["chat_id"])) is not None:
                    done.set()

    started = time.monotonic()
    cpu = time.process_time()
    until = started + seconds

    async def person(user: int) -> None:
        await asyncio.sleep(rng.uniform(0, think[1]))
        n = 0
        while time.monotonic() < until:
            finals[user].clear()
            await client.send_text(user, f"Question {n} from {user}", bot_id=bot.id)
            result.turns += 1
            n += 1
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(finals[user].wait(), 120)
            await asyncio.sleep(rng.uniform(*think))

    poller = asyncio.create_task(poll())
    try:
        await asyncio.gather(*(person(u) for u in people))
        await asyncio.sleep(1.0)
    finally:
        stop_polling.set()
        await asyncio.gather(poller, return_exceptions=True)
    result.seconds = time.monotonic() - started
    result.cpu = time.process_time() - cpu
    result.load = os.getloadavg()[0]
    # Each person has one turn at a time: a turn's first text and final follow its question.
    events, _ = await client.events(after=first_seq)
    asked: dict[int, float] = {}
    first_seen: set[int] = set()
    for event in events:
        chat, kind = event["chat_id"], event["type"]
        if chat not in people:
            continue
        if kind == "user_message":
            asked[chat] = event["at"]
            first_seen.discard(chat)
            continue
        if chat not in asked:
            continue
        text = (event["message"].get("text") or "") if kind == "bot_message" else ""
        is_text = (kind == "draft" and event.get("text")) or text.startswith("Paced")
        if is_text and chat not in first_seen:
            first_seen.add(chat)
            result.first_text.append(event["at"] - asked[chat])
        if END in text:
            result.final.append(event["at"] - asked.pop(chat))
            result.delivered += 1
    return result


@dataclass(frozen=True, slots=True)
class Shape:
    users: int
    messages: int
    delay_ms: int
    think: tuple[float, float]
    minutes: float


async def deployed(
    url: str, shape: Shape, *, pacing: bool, talk: bool
) -> tuple[LoadResult, LoadResult | None]:
    """The burst (and, with ``talk``, the conversation) against a real ``netroom bot``
    process, with the send pacer or without it (the previous design)."""
    workdir = Path(tempfile.mkdtemp(prefix="netroom-bench-turns-"))
    try:
        async with World.open(url, REDIS_URL, workdir) as world:
            await world.start_command(
                "bot",
                ("bot",),
                LOG_LEVEL="WARNING",
                BOT__SEND_PACING="true" if pacing else "false",
            )
            # Only its id is used: which bot the people write to.
            bot = Bot(world.token)
            try:
                # A process that has been serving for a while: its first turns are behind it.
                warm = await register_users(
                    world.control, world.uow_factory, 5, money=1_000_000, policy=POLICY
                )
                await run_load(world.control, world.uow_factory, bot, warm, deadline=60)
                people = await register_users(
                    world.control, world.uow_factory, shape.users, money=1_000_000, policy=POLICY
                )
                burst = await run_load(
                    world.control,
                    world.uow_factory,
                    bot,
                    people,
                    messages=shape.messages,
                    delay_ms=shape.delay_ms,
                    deadline=120,
                )
                conversation = None
                if talk and shape.minutes > 0:
                    people = await register_users(
                        world.control,
                        world.uow_factory,
                        shape.users,
                        money=1_000_000,
                        policy=POLICY,
                    )
                    conversation = await run_conversations(
                        world.control,
                        world.uow_factory,
                        bot,
                        people,
                        seconds=shape.minutes * 60,
                        think=shape.think,
                        delay_ms=shape.delay_ms,
                    )
            finally:
                await bot.session.close()
        return burst, conversation
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


async def main_async(url: str, shape: Shape) -> None:
    # The sandbox's default flood limits: about 1/s per private chat, 30/s per bot. Each
    # design runs in a world of its own, so the two do not share a budget.
    old, _ = await deployed(url, shape, pacing=False, talk=False)
    burst, talk = await deployed(url, shape, pacing=True, talk=True)
    print(
        f"users={shape.users} messages/user={shape.messages} paced model: {shape.delay_ms} ms "
        "per chunk; sandbox flood limits on; `netroom bot` in a process of its own, as deployed"
    )
    print("burst, every user sending at the same instant:")
    for line in old.lines("previous design (no shared pacing)") + burst.lines("send pacer"):
        print(line)
    if talk is not None:
        low, high = shape.think
        print(
            f"conversation: {shape.users} users for {shape.minutes:g} min, each reading a reply "
            f"{low:g}-{high:g} s before asking again ({talk.turns / talk.seconds:.1f} turns/s)"
        )
        for line in talk.lines("conversation"):
            print(line)
    checks: dict[str, bool] = {
        "burst: 100 % delivered": burst.delivered == burst.turns,
        "burst: none billed undelivered": burst.billed_undelivered == 0,
        f"burst: first text p95 < {FIRST_TEXT_P95_TARGET} s": (
            percentile(burst.first_text, 95) < FIRST_TEXT_P95_TARGET
        ),
    }
    if talk is not None:
        checks["conversation: 100 % delivered"] = talk.delivered == talk.turns
        checks["conversation: none billed undelivered"] = talk.billed_undelivered == 0
        checks[f"conversation: first text p95 < {FIRST_TEXT_P95_TARGET} s"] = (
            percentile(talk.first_text, 95) < FIRST_TEXT_P95_TARGET
        )
    for name, ok in checks.items():
        print(f"target {name}: {'met' if ok else 'NOT met'}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--users", type=int, default=200)
    parser.add_argument("--messages", type=int, default=1)
    parser.add_argument("--delay-ms", type=int, default=50)
    parser.add_argument("--think", type=float, nargs=2, default=(20.0, 40.0))
    parser.add_argument(
        "--minutes", type=float, default=1.5, help="the conversation run; 0: the burst only"
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    with scratch_database() as url:
        asyncio.run(
            main_async(
                url,
                Shape(
                    args.users,
                    args.messages,
                    args.delay_ms,
                    (args.think[0], args.think[1]),
                    args.minutes,
                ),
            )
        )


if __name__ == "__main__":
    main()
