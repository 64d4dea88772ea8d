"""Ledger throughput: debits per second through the real billing use case with 16 concurrent
clients, beside a raw asyncpg guarded ``UPDATE … WHERE balance >= x RETURNING`` baseline in the
same run; then proof of zero overspend.

    python -m bench.ledger [--seconds 5] [--clients 16] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import random
import statistics
import time

import asyncpg

from bench._db import scratch_database
from core.services import billing
from core.services.billing import InsufficientFunds
from db.engine import UnitOfWorkFactory, create_engine
from db.models import User

USERS = 200
START = 1_000_000  # kopecks per user: enough that money never runs out mid-round
PRICE = 7


async def setup_users(factory: UnitOfWorkFactory, count: int) -> list[int]:
    async with factory() as uow:
        users = [
            User(telegram_id=9_000_000_000 + n, referral_code=f"bench{n:06d}") for n in range(count)
        ]
        uow.session.add_all(users)
        await uow.session.flush()
        ids = [u.id for u in users]
        await uow.commit()
    for user_id in ids:
        async with factory() as uow, uow.transaction():
            await billing.credit(
                uow, user_id=user_id, amount=START, category="topup", key=f"seed-{user_id}"
            )
    return ids


async def service_round(
    factory: UnitOfWorkFactory, ids: list[int], clients: int, seconds: float
) -> float:
    counter = itertools.count()
    done = 0
    deadline = time.perf_counter() + seconds

    async def client(n: int) -> None:
        nonlocal done
        rnd = random.Random(n)
        while time.perf_counter() < deadline:
            async with factory() as uow:
                try:
                    async with uow.transaction():
                        await billing.debit(
                            uow,
                            user_id=rnd.choice(ids),
                            amount=PRICE,
                            category="text",
                            key=f"b{next(counter)}-{n}-{time.perf_counter_ns()}",
                        )
                    done += 1
                except InsufficientFunds:
                    pass

    started = time.perf_counter()
    await asyncio.gather(*(client(n) for n in range(clients)))
    return done / (time.perf_counter() - started)


async def cycle_round(
    factory: UnitOfWorkFactory, ids: list[int], clients: int, seconds: float
) -> float:
    """A streamed request's money path: reserve an estimate, then settle the actual price."""
    done = 0
    deadline = time.perf_counter() + seconds

    async def client(n: int) -> None:
        nonlocal done
        rnd = random.Random(500 + n)
        i = 0
        while time.perf_counter() < deadline:
            i += 1
            user_id = rnd.choice(ids)
            async with factory() as uow, uow.transaction():
                held = await billing.reserve(
                    uow,
                    user_id=user_id,
                    amount=PRICE * 3,
                    key=f"r-{n}-{i}-{time.perf_counter_ns()}",
                )
            async with factory() as uow, uow.transaction():
                await billing.settle(
                    uow,
                    reservation=held,
                    amount=PRICE,
                    category="text",
                    key=f"s-{n}-{i}-{time.perf_counter_ns()}",
                )
            done += 1

    started = time.perf_counter()
    await asyncio.gather(*(client(n) for n in range(clients)))
    return done / (time.perf_counter() - started)


async def raw_round(dsn: str, ids: list[int], clients: int, seconds: float) -> float:
    pool = await asyncpg.create_pool(dsn, min_size=clients, max_size=clients)
    done = 0
    deadline = time.perf_counter() + seconds

    async def client(n: int) -> None:
        nonlocal done
        rnd = random.Random(1000 + n)
        async with pool.acquire() as conn:
            while time.perf_counter() < deadline:
                row = await conn.fetchrow(
                    "UPDATE balances SET balance = balance - $2"
                    " WHERE user_id = $1 AND balance - reserved >= $2 RETURNING balance",
                    rnd.choice(ids),
                    PRICE,
                )
                if row is not None:
                    done += 1

    started = time.perf_counter()
    await asyncio.gather(*(client(n) for n in range(clients)))
    rate = done / (time.perf_counter() - started)
    await pool.close()
    return rate


async def overspend_check(dsn: str, factory: UnitOfWorkFactory, ids: list[int]) -> tuple[int, int]:
    """Drain one user's balance from all clients at once: exactly balance // price succeed."""
    user_id = ids[0]
    async with factory() as uow:
        balance = (await billing.get_balance(uow, user_id)).available
    wins = 0

    async def client(n: int) -> None:
        nonlocal wins
        for i in range(balance // PRICE // 16 + 5):
            async with factory() as uow:
                try:
                    async with uow.transaction():
                        await billing.debit(
                            uow,
                            user_id=user_id,
                            amount=PRICE,
                            category="text",
                            key=f"drain-{n}-{i}",
                        )
                    wins += 1
                except InsufficientFunds:
                    return

    await asyncio.gather(*(client(n) for n in range(16)))
    async with factory() as uow:
        after = await billing.get_balance(uow, user_id)
        assert await billing.check_consistency(uow, user_id)
    return wins - balance // PRICE, after.balance


async def main_async(url: str, seconds: float, clients: int, rounds: int) -> None:
    engine = create_engine(url, pool_size=clients, max_overflow=0)
    factory = UnitOfWorkFactory.for_engine(engine)
    everyone = await setup_users(factory, 2 * USERS)
    # The baseline writes no entries, so it works on its own users.
    ids, raw_ids = everyone[:USERS], everyone[USERS:]
    dsn = url
    service, cycles, raw = [], [], []
    for _ in range(rounds):
        service.append(await service_round(factory, ids, clients, seconds))
        cycles.append(await cycle_round(factory, ids, clients, seconds))
        raw.append(await raw_round(dsn, raw_ids, clients, seconds))
    extra_wins, final_balance = await overspend_check(dsn, factory, ids)
    await engine.dispose()
    s, r = statistics.median(service), statistics.median(raw)
    c = statistics.median(cycles)
    print(f"clients={clients} rounds={rounds} seconds/round={seconds}")
    print(f"billing.debit (use case, entry + balance, commit): median {s:,.0f} debits/s")
    print(f"reserve + settle (two use cases, two commits):     median {c:,.0f} requests/s")
    print(f"raw asyncpg guarded UPDATE (no entry):             median {r:,.0f} updates/s")
    print(f"ratio use case / raw: {s / r:.2f}; bar 2,000/s: {'met' if s >= 2000 else 'NOT met'}")
    print(f"overspend check: debits beyond the balance = {extra_wins}, left = {final_balance}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with scratch_database() as url:
        asyncio.run(main_async(url, args.seconds, args.clients, args.rounds))


if __name__ == "__main__":
    main()
