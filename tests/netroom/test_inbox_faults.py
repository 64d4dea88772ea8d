"""Stars payments survive the bot's death and Telegram's side losing them, with real processes:
`netroom bot` polling the sandbox is killed (SIGKILL) right after a batch of payments and started
again; updates confirmed to Telegram but never handled are healed by the reconciliation that
`netroom worker --scheduler` runs at start-up. Every payment is credited exactly once."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiogram import Bot
from aiogram.types import LabeledPrice
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.factory import create_bot
from core.services import billing, payments
from core.services.payments import PaymentTerms
from core.services.tariffs import Tariffs
from db.engine import UnitOfWorkFactory
from db.models import LedgerEntry, Payment
from sandbox.app import SandboxServer, start_sandbox
from sandbox.client import Event, SandboxClient
from sandbox.telegram import TelegramOptions
from tests.factories import register
from tests.webapp.running_bot import SETTINGS_PREFIXES, bot_env

SECRET = "inbox-faults-secret-of-at-least-32-bytes!"
STARS = 50
KOPECKS_PER_STAR = 130
TERMS = PaymentTerms.build(
    kopecks_per_star=KOPECKS_PER_STAR,
    star_packages=[STARS],
    referral_level1_percent=10,
    referral_level2_percent=3,
    signing_secret=SECRET,
)
TARIFFS = Tariffs(free_limits={"basic": 1})
# Flood limits off: the test makes many payments at once and measures nothing.
NO_FLOOD = TelegramOptions(
    private_burst=1e9,
    private_rate=1e9,
    global_burst=1e9,
    global_rate=1e9,
    draft_burst=1e9,
    draft_rate=1e9,
)
START_TIMEOUT = 60.0


@dataclass
class Telegram:
    sandbox: SandboxServer
    control: SandboxClient
    token: str
    # The bot's own Bot API client, for what the test does in the bot's name.
    api: Bot


@pytest.fixture
async def telegram() -> AsyncIterator[Telegram]:
    sandbox = await start_sandbox(options=NO_FLOOD)
    control = SandboxClient(sandbox.url)
    token = f"{secrets.randbelow(10**9) + 10**9}:{secrets.token_urlsafe(27)}"
    api = create_bot(token, sandbox.url)
    try:
        await control.register_bot(token, f"inbox_{secrets.token_hex(3)}_bot", "NetRoom")
        yield Telegram(sandbox, control, token, api)
    finally:
        await api.session.close()
        await control.aclose()
        await sandbox.stop()


@pytest.fixture
async def spawn(
    telegram: Telegram, database_url: str, redis_url: str, tmp_path: Path
) -> AsyncIterator[Any]:
    """Starts `netroom <command>` on the sandbox, the test database and Redis; kills whatever
    is left at the end."""
    started: list[asyncio.subprocess.Process] = []
    clean = {k: v for k, v in os.environ.items() if not k.startswith(SETTINGS_PREFIXES)}
    clean = {k: v for k, v in clean.items() if k not in ("ENV", "DATA_DIR", "CATALOGUE_PATH")}
    env = bot_env(
        TERMS,
        TARIFFS,
        signing_secret=SECRET,
        token=telegram.token,
        api_base=telegram.sandbox.url,
        database_url=database_url,
        redis_url=redis_url,
        web_url="http://netroom.test",
        data_dir=tmp_path / "data",
    )

    async def run(*args: str, extra: dict[str, str] | None = None) -> asyncio.subprocess.Process:
        log = (tmp_path / f"{args[0]}-{len(started)}.log").open("wb")
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "netroom",
            *args,
            cwd=tmp_path,
            env={**clean, **env, **(extra or {})},
            stdout=log,
            stderr=asyncio.subprocess.STDOUT,
        )
        log.close()
        started.append(proc)
        return proc

    yield run
    for proc in started:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def _bot_ready(telegram: Telegram, proc: asyncio.subprocess.Process, after: int) -> None:
    """The bot sets its commands in each language at start-up, then polls."""
    deadline = asyncio.get_running_loop().time() + START_TIMEOUT
    commands = 0
    while commands < 2:
        assert proc.returncode is None, "`netroom bot` exited at start-up"
        assert asyncio.get_running_loop().time() < deadline, "`netroom bot` did not start"
        events, after = await telegram.control.events(after=after, wait=1)
        commands += sum(1 for e in events if e["type"] == "commands_set")


@dataclass
class Payer:
    telegram_id: int
    user_id: int


async def _payers(
    telegram: Telegram, factory: UnitOfWorkFactory, count: int, bot_running: bool
) -> list[Payer]:
    """People with an account who have written to the bot (so it may send them invoices)."""
    people = []
    for n in range(count):
        tg = int((await telegram.control.create_user(f"Payer{n}"))["id"])
        async with factory() as uow:
            user_id = (await register(uow, tg_id=tg)).user.id
        after = await telegram.control.last_seq()
        await telegram.control.send_text(tg, "/balance")
        if bot_running:
            await telegram.control.wait_for(
                lambda e: e["type"] == "bot_message", chat_id=tg, after=after, wait=30
            )
        people.append(Payer(tg, user_id))
    return people


async def _invoice(telegram: Telegram, payer: Payer) -> int:
    """A Stars top-up invoice as the bot sends it (a payload it signed for this account)."""
    message = await telegram.api.send_invoice(
        chat_id=payer.telegram_id,
        title="Top-up",
        description=f"{STARS} Stars",
        payload=payments.invoice_payload(TERMS, user_id=payer.user_id, stars=STARS),
        currency="XTR",
        prices=[LabeledPrice(label="Top-up", amount=STARS)],
    )
    return message.message_id


async def _pay_all(telegram: Telegram, invoices: list[tuple[Payer, int]]) -> None:
    await asyncio.gather(*(telegram.control.pay(p.telegram_id, message_id=m) for p, m in invoices))


async def _succeeded(telegram: Telegram, after: int, count: int, wait: float) -> list[Event]:
    """The next ``count`` successful payments the sandbox's Telegram records."""
    found: list[Event] = []
    deadline = asyncio.get_running_loop().time() + wait
    while len(found) < count:
        remaining = deadline - asyncio.get_running_loop().time()
        assert remaining > 0, f"only {len(found)} of {count} payments went through"
        events, after = await telegram.control.events(after=after, wait=min(remaining, 2))
        found += [e for e in events if e["type"] == "payment_succeeded"]
        failed = [e for e in events if e["type"] == "payment_failed"]
        assert not failed, failed
    return found


async def _credited(factory: UnitOfWorkFactory, charge_ids: list[str]) -> tuple[int, int]:
    """(payment rows, top-up ledger entries) for these charges."""
    async with factory() as uow:
        rows = list(
            await uow.session.scalars(
                select(Payment.id).where(
                    Payment.provider == "stars", Payment.external_id.in_(charge_ids)
                )
            )
        )
        entries = await uow.session.scalar(
            select(func.count()).where(
                LedgerEntry.category == "topup",
                LedgerEntry.idempotency_key.in_([f"payment:{i}" for i in rows]),
            )
        )
    return len(rows), int(entries or 0)


async def _wait_credited(factory: UnitOfWorkFactory, charge_ids: list[str], wait: float) -> None:
    deadline = asyncio.get_running_loop().time() + wait
    while (await _credited(factory, charge_ids))[0] < len(charge_ids):
        assert asyncio.get_running_loop().time() < deadline, "not every payment was credited"
        await asyncio.sleep(0.2)


async def _assert_each_credited_once(
    factory: UnitOfWorkFactory, payers: list[Payer], charge_ids: list[str], per_payer: int
) -> None:
    assert len(set(charge_ids)) == len(charge_ids)
    assert await _credited(factory, charge_ids) == (len(charge_ids), len(charge_ids))
    async with factory() as uow:
        for payer in payers:
            balance = await billing.get_balance(uow, payer.user_id)
            assert balance.balance == per_payer * STARS * KOPECKS_PER_STAR
            entries = await uow.ledger.earned(payer.user_id, "topup")
            assert entries == per_payer * STARS * KOPECKS_PER_STAR


async def test_a_bot_killed_right_after_a_batch_of_payments_credits_each_once_after_restart(
    telegram: Telegram, spawn: Any, engine: AsyncEngine
) -> None:
    factory = UnitOfWorkFactory.for_engine(engine)
    after = await telegram.control.last_seq()
    bot = await spawn("bot")
    await _bot_ready(telegram, bot, after)
    payers = await _payers(telegram, factory, 6, bot_running=True)
    invoices = [(p, await _invoice(telegram, p)) for p in payers for _ in range(10)]
    after = await telegram.control.last_seq()
    await _pay_all(telegram, invoices)
    succeeded = await _succeeded(telegram, after, len(invoices), wait=60)
    # Telegram has charged all 60; the bot is handed them and is handling them: kill -9 now.
    bot.kill()
    await bot.wait()
    charge_ids = [str(e["charge_id"]) for e in succeeded]
    credited_before, _ = await _credited(factory, charge_ids)
    after = await telegram.control.last_seq()
    again = await spawn("bot")
    await _bot_ready(telegram, again, after)
    await _wait_credited(factory, charge_ids, wait=30)
    # A moment more, for a second credit to show if there were one.
    await asyncio.sleep(1.0)
    await _assert_each_credited_once(factory, payers, charge_ids, per_payer=10)
    print(f"credited before the kill: {credited_before} of {len(charge_ids)}")


async def _drop_updates(telegram: Telegram, stop: asyncio.Event) -> None:
    """A process that takes the bot's updates and loses them: it answers pre-checkout queries
    (so the payments go through) and confirms everything without handling it."""
    offset: int | None = None
    while not stop.is_set():
        updates = await telegram.api.get_updates(offset=offset, timeout=1)
        for update in updates:
            if update.pre_checkout_query is not None:
                await telegram.api.answer_pre_checkout_query(update.pre_checkout_query.id, ok=True)
            offset = update.update_id + 1
    if offset is not None:
        await telegram.api.get_updates(offset=offset, timeout=0)


async def test_payments_whose_updates_were_lost_are_credited_by_reconciliation_at_start_up(
    telegram: Telegram, spawn: Any, engine: AsyncEngine
) -> None:
    factory = UnitOfWorkFactory.for_engine(engine)
    stop = asyncio.Event()
    dropper = asyncio.create_task(_drop_updates(telegram, stop))
    try:
        admin = int((await telegram.control.create_user("Ops"))["id"])
        await telegram.control.send_text(admin, "/start")
        payers = await _payers(telegram, factory, 2, bot_running=False)
        invoices = [(p, await _invoice(telegram, p)) for p in payers for _ in range(3)]
        after = await telegram.control.last_seq()
        await _pay_all(telegram, invoices)
        succeeded = await _succeeded(telegram, after, len(invoices), wait=30)
    finally:
        stop.set()
        await asyncio.wait_for(dropper, 10)
    charge_ids = [str(e["charge_id"]) for e in succeeded]
    # Telegram charged them and counts them delivered; nothing reached the database.
    assert await _credited(factory, charge_ids) == (0, 0)
    after = await telegram.control.last_seq()
    worker = await spawn("worker", "--scheduler", extra={"BOT__ADMIN_IDS": f"[{admin}]"})
    report = await telegram.control.wait_for(
        lambda e: e["type"] == "bot_message" and "healed" in (e["message"]["text"] or ""),
        chat_id=admin,
        after=after,
        wait=60,
    )
    text = report["message"]["text"]
    assert text.startswith("Reconciliation"), text
    healed = [line for line in text.splitlines() if line.startswith("+ healed: stars")]
    assert sorted(charge for charge in charge_ids if any(charge in h for h in healed)) == sorted(
        charge_ids
    ), text
    await _assert_each_credited_once(factory, payers, charge_ids, per_payer=3)
    # Each payer is told, as the lost update would have told them.
    for payer in payers:
        notices = await _messages(telegram, payer.telegram_id, after, "Payment received", 3)
        assert len(notices) == 3, notices
    await _stop(worker)

    # A refund whose update nobody handles: the next start's reconciliation reverses it.
    refunded = charge_ids[0]
    chat = next(e["chat_id"] for e in succeeded if e["charge_id"] == refunded)
    payer = next(p for p in payers if p.telegram_id == chat)
    await telegram.api.refund_star_payment(
        user_id=payer.telegram_id, telegram_payment_charge_id=refunded
    )
    after = await telegram.control.last_seq()
    worker = await spawn("worker", "--scheduler", extra={"BOT__ADMIN_IDS": f"[{admin}]"})
    report = await telegram.control.wait_for(
        lambda e: e["type"] == "bot_message" and "reversed" in (e["message"]["text"] or ""),
        chat_id=admin,
        after=after,
        wait=60,
    )
    assert f"+ healed: stars {refunded} reversed" in report["message"]["text"]
    async with factory() as uow:
        status = await uow.session.scalar(
            select(Payment.status).where(Payment.external_id == refunded)
        )
        balance = await billing.get_balance(uow, payer.user_id)
    assert status == "refunded"
    assert balance.balance == 2 * STARS * KOPECKS_PER_STAR
    await _stop(worker)


async def _messages(
    telegram: Telegram, chat_id: int, after: int, starting: str, count: int
) -> list[str]:
    """The bot's messages to ``chat_id`` after ``after`` that contain ``starting``, once
    ``count`` of them arrived (or 15 seconds passed)."""
    deadline = asyncio.get_running_loop().time() + 15
    while True:
        events, _ = await telegram.control.events(after=after, chat_id=chat_id, wait=1)
        found = [
            str(e["message"]["text"])
            for e in events
            if e["type"] == "bot_message" and starting in (e["message"]["text"] or "")
        ]
        if len(found) >= count or asyncio.get_running_loop().time() > deadline:
            return found


async def _stop(proc: asyncio.subprocess.Process) -> None:
    proc.terminate()
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(proc.wait(), 30)
