"""The scale-out layout of the README, as real processes on one Postgres and one Redis: two
`netroom web` in webhook mode behind a load balancer, two `netroom worker --scheduler` (two
workers, two schedulers), the Telegram sandbox in front. A few hundred updates (chat messages,
button taps, Stars payments) reach both web processes, some of them twice at once and all of them
again afterwards (Telegram sending an update again when it did not see the answer); an admin
broadcast goes out through the two workers while both schedulers run a job every second.

Each update is handled once, by one process; each message answered once, each tap answered
once, each payment credited once; each tick of the periodic job runs once; each person gets the
broadcast once."""

from __future__ import annotations

import asyncio
import json
import re
import secrets
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from sqlalchemy import text

from bench import faultkit
from bench.faultkit import Service, User, World, free_port
from core.services import billing
from db.migrate import upgrade

# How long the two schedulers are watched at the least, in seconds.
MIN_TICKING_SECONDS = 12

PEOPLE = 24
STARS = 50
JOB = "retention.scrub_technical_data"
HOOK_PATH = "/telegram/webhook"
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
HANDLED = re.compile(r"Update id=(\d+) is (?:not )?handled")
ENQUEUED = re.compile(r"scheduler: (\S+) enqueued for (\S+)")


class Balancer:
    """The load balancer in front of the web processes, where Telegram sends the webhook: each
    update goes to the next web process in turn, and every third one at the same moment to the
    other one too (Telegram sending it again while the first is handling it)."""

    def __init__(self, backends: list[str]) -> None:
        self.backends = backends
        self.port = free_port()
        self.bodies: list[bytes] = []
        self.sent_twice = 0
        self._http: aiohttp.ClientSession | None = None
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        self._http = aiohttp.ClientSession()
        app = web.Application()
        app.router.add_post(HOOK_PATH, self._relay)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._http is not None:
            await self._http.close()

    async def post(self, backend: str, body: bytes, secret: str) -> int:
        assert self._http is not None
        async with self._http.post(
            backend + HOOK_PATH,
            data=body,
            headers={SECRET_HEADER: secret, "Content-Type": "application/json"},
        ) as response:
            await response.read()
            return response.status

    async def _relay(self, request: web.Request) -> web.Response:
        body = await request.read()
        secret = request.headers.get(SECRET_HEADER, "")
        turn = len(self.bodies)
        self.bodies.append(body)
        first = self.backends[turn % 2]
        sends = [self.post(first, body, secret)]
        if turn % 3 == 0:
            self.sent_twice += 1
            sends.append(self.post(self.backends[(turn + 1) % 2], body, secret))
        statuses = await asyncio.gather(*sends)
        return web.json_response({}, status=statuses[0])

    def update_ids(self) -> set[int]:
        return {int(json.loads(body)["update_id"]) for body in self.bodies}


@pytest.fixture
async def world(postgres_server_url: str, redis_url: str, tmp_path: Path) -> AsyncIterator[World]:
    async with faultkit.scratch_database(postgres_server_url) as database_url:
        await asyncio.to_thread(upgrade, database_url)
        async with World.open(database_url, redis_url, tmp_path) as opened:
            yield opened


def _handled(services: list[Service]) -> Counter[int]:
    counts: Counter[int] = Counter()
    for service in services:
        counts.update(int(m.group(1)) for m in HANDLED.finditer(service.tail(10**8)))
    return counts


async def _bot_texts(world: World, user: User) -> list[str]:
    return [m.get("text") or "" for m in await world.control.bot_messages(user.telegram_id)]


async def _ask(world: World, user: User, asked: str) -> None:
    await world.control.send_text(user.telegram_id, asked)
    await world.control.wait_for(
        lambda e: (
            e["type"] == "bot_message" and f"You said: {asked}" in (e["message"].get("text") or "")
        ),
        chat_id=user.telegram_id,
        wait=60,
    )


async def _visit(world: World, user: User, index: int) -> None:
    """What one person does: a question, a Stars top-up by the button, another question."""
    await _ask(world, user, f"ask-{index}-first")
    invoice = await faultkit._invoice(world, user, STARS)
    after = await world.control.last_seq()
    await world.control.pay(user.telegram_id, message_id=invoice)
    await world.control.wait_for(
        lambda e: e["type"] == "payment_succeeded", chat_id=user.telegram_id, after=after, wait=60
    )
    await _ask(world, user, f"ask-{index}-second")


async def test_two_web_processes_two_workers_and_two_schedulers_do_everything_once(
    world: World,
) -> None:
    secret = secrets.token_urlsafe(24)
    web_ports = [free_port(), free_port()]
    balancer = Balancer([f"http://127.0.0.1:{port}" for port in web_ports])
    await balancer.start()
    try:
        async with asyncio.timeout(150):
            people = await world.users(PEOPLE, balance=100_00)
            [admin] = await world.users(1, balance=100_00)
            shared = {
                "BOT__ADMIN_IDS": json.dumps([admin.telegram_id]),
                "DATABASE__POOL_SIZE": "4",
                "WEB__PUBLIC_URL": balancer.url,
            }
            hook = {**shared, "BOT__WEBHOOK_URL": balancer.url, "BOT__WEBHOOK_SECRET": secret}
            jobs = {**shared, "JOBS__SCHEDULE_OVERRIDES": json.dumps({JOB: "1s"})}
            # This run's ticks: the database may hold an earlier test's runs of the same job.
            launched = datetime.now(UTC).replace(microsecond=0)
            started = await asyncio.gather(
                *(
                    world.start_command(f"web-{i}", ("web",), WEB__PORT=str(port), **hook)
                    for i, port in enumerate(web_ports)
                ),
                *(
                    world.start_command(f"worker-{i}", ("worker", "--scheduler"), **jobs)
                    for i in range(2)
                ),
            )
            webs, workers = list(started[:2]), list(started[2:])
            began = datetime.now(UTC)
            [bot] = await world.control.bots()
            assert bot["webhook"]["url"] == balancer.url + HOOK_PATH

            await asyncio.gather(*(_visit(world, u, i) for i, u in enumerate(people)))

            # The admin writes the message and replies to it with /broadcast all.
            token = f"Broadcast-{secrets.token_hex(4)}"
            await _ask(world, admin, token)
            source = next(
                m
                for m in (await world.control.transcript(admin.telegram_id))["messages"]
                if not m["is_bot_message"] and m.get("text") == token
            )
            await world.control.send_text(
                admin.telegram_id, "/broadcast all", reply_to_message_id=source["message_id"]
            )

            async def everyone_has_it() -> bool:
                texts = await asyncio.gather(*(_bot_texts(world, u) for u in people))
                return all(any(token in t for t in mine) for mine in texts)

            assert await world.wait_until(everyone_has_it, 60, pause=0.5)

            async def broadcast_finished() -> bool:
                async with world.uow_factory() as uow:
                    done = await uow.session.scalar(
                        text("SELECT count(*) FROM broadcasts WHERE finished_at IS NOT NULL")
                    )
                return bool(done)

            assert await world.wait_until(broadcast_finished, 30, pause=0.5)
            # The schedulers are watched long enough for their ticks to be counted (a quick
            # run would leave a window too short to hold the ticks asked of it below).
            ticking = (datetime.now(UTC) - began).total_seconds()
            await asyncio.sleep(max(0.0, MIN_TICKING_SECONDS - ticking))
            ended = datetime.now(UTC)

            # Every update again, to both web processes, after it was handled: as Telegram
            # does when the 200 was lost on the way. Nothing is handled again.
            handled_before = _handled(webs)
            again = await asyncio.gather(
                *(
                    balancer.post(backend, body, secret)
                    for body in balancer.bodies
                    for backend in balancer.backends
                )
            )
            assert set(again) == {200}
            await asyncio.sleep(2)
            # Stopped, each process has finished (and logged) whatever it had in hand.
            stopped = await asyncio.gather(*(s.terminate(within=40) for s in [*webs, *workers]))
            assert [code for code, _ in stopped] == [0, 0, 0, 0]
    finally:
        await balancer.close()

    # Each update handled exactly once, by one of the two, and both took a share.
    handled = _handled(webs)
    assert handled == handled_before
    sent = balancer.update_ids()
    assert len(sent) >= 6 * PEOPLE
    assert balancer.sent_twice >= len(sent) // 3
    assert set(handled) == sent
    assert {n for n in handled.values()} == {1}
    by_process = [set(_handled([s])) for s in webs]
    assert not by_process[0] & by_process[1]
    assert all(len(share) > len(sent) // 4 for share in by_process)

    # Each question answered once, each tap answered once, one invoice each.
    for i, user in enumerate(people):
        texts = await _bot_texts(world, user)
        for asked in (f"ask-{i}-first", f"ask-{i}-second"):
            assert sum(f"You said: {asked}" in t for t in texts) == 1, (asked, texts)
        assert sum(token in t for t in texts) == 1, texts
        events, _ = await world.control.events(chat_id=user.telegram_id)
        assert sum(e["type"] == "callback_answered" for e in events) == 1
        messages = (await world.control.transcript(user.telegram_id))["messages"]
        assert sum("invoice" in m for m in messages if m["is_bot_message"]) == 1

    # Each payment credited once: one payment per person, the balance the sum of its entries.
    ids = [u.user_id for u in people]
    async with world.uow_factory() as uow:
        payments = (
            await uow.session.execute(
                text(
                    "SELECT user_id, count(*) AS n, sum(credited) AS credited FROM payments"
                    " WHERE user_id = ANY(:ids) GROUP BY user_id"
                ),
                {"ids": ids},
            )
        ).all()
        assert len(payments) == PEOPLE and {p.n for p in payments} == {1}
        credited = sum(int(p.credited) for p in payments)
        assert credited == PEOPLE * STARS * 130
        topups = await uow.session.scalar(
            text(
                "SELECT sum(amount) FROM ledger_entries WHERE user_id = ANY(:ids)"
                " AND category = 'topup'"
            ),
            {"ids": ids},
        )
        assert int(topups or 0) == PEOPLE * 100_00 + credited
        for user_id in ids:
            assert await billing.check_consistency(uow, user_id)
        broadcast = (
            await uow.session.execute(text("SELECT total, sent, failed FROM broadcasts"))
        ).one()
        assert (broadcast.sent, broadcast.failed) == (broadcast.total, 0)
        assert broadcast.total == PEOPLE + 1
        runs = (
            await uow.session.execute(
                text(
                    "SELECT scheduled_for, status, started_at FROM job_runs"
                    " WHERE job = :job AND scheduled_for >= :since ORDER BY scheduled_for"
                ),
                {"job": JOB, "since": launched},
            )
        ).all()

    # Each tick of the periodic job enqueued by one scheduler and run once by one worker, and
    # the job ran all along (a tick both schedulers were too busy to see in its second is not
    # caught up, by design: on this shared machine one may pass).
    def enqueued(service: Service) -> set[datetime]:
        return {
            datetime.fromisoformat(m.group(2))
            for m in ENQUEUED.finditer(service.tail(10**8))
            if m.group(1) == JOB
        }

    first, second = (enqueued(w) for w in workers)
    assert not first & second
    ticks = [r.scheduled_for for r in runs]
    assert set(ticks) == first | second
    window = [t for t in ticks if began + timedelta(seconds=2) <= t <= ended - timedelta(seconds=2)]
    seconds = int((ended - began).total_seconds()) - 4
    assert len(window) >= max(5, seconds * 2 // 3), (window, began, ended)
    assert {r.status for r in runs if r.scheduled_for in window} == {"ok"}
    executed = sum(w.tail(10**8).count(f"Executing task {JOB} with ID") for w in workers)
    started = sum(1 for r in runs if r.started_at is not None)
    assert executed == started
