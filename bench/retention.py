"""Retention purge of 1,000,000 expired messages while new messages keep arriving: the purge
rate, and the worst and median latency of the inserts that ran meanwhile (the purge must not
block live traffic).

    python -m bench.retention [--messages 1000000]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from datetime import UTC, datetime, timedelta

import asyncpg

from bench._db import scratch_database
from core.services import retention
from db.engine import UnitOfWorkFactory, create_engine

CHUNK = 100_000


async def main_async(url: str, messages: int) -> None:
    dsn = url.replace("+asyncpg", "")
    conn = await asyncpg.connect(dsn)
    now = datetime.now(UTC)
    user_id = await conn.fetchval(
        "INSERT INTO users (referral_code) VALUES ('benchretention') RETURNING id"
    )
    conversation = await conn.fetchval(
        "INSERT INTO conversations (user_id, model_id, title) VALUES ($1, 'm', 't') RETURNING id",
        user_id,
    )
    old = now - timedelta(days=15)
    text = "An expired message of a realistic length. " * 3
    for start in range(0, messages, CHUNK):
        rows = [
            (conversation, user_id, "user", text, "complete", old, old + timedelta(days=14))
            for _ in range(min(CHUNK, messages - start))
        ]
        await conn.copy_records_to_table(
            "messages",
            records=rows,
            columns=[
                "conversation_id",
                "user_id",
                "role",
                "content",
                "status",
                "created_at",
                "expires_at",
            ],
        )
    await conn.execute("ANALYZE messages")

    latencies: list[float] = []
    done = asyncio.Event()

    async def live_inserts() -> None:
        writer = await asyncpg.connect(dsn)
        try:
            while not done.is_set():
                started = time.perf_counter()
                await writer.execute(
                    "INSERT INTO messages (conversation_id, user_id, role, content, status,"
                    " created_at, expires_at) VALUES ($1, $2, 'user', 'live', 'complete', $3, $4)",
                    conversation,
                    user_id,
                    datetime.now(UTC),
                    datetime.now(UTC) + timedelta(days=14),
                )
                latencies.append(time.perf_counter() - started)
                await asyncio.sleep(0.005)
        finally:
            await writer.close()

    engine = create_engine(url, pool_size=2, max_overflow=0)
    writer_task = asyncio.create_task(live_inserts())
    started = time.perf_counter()
    async with UnitOfWorkFactory.for_engine(engine)() as uow:
        purged = await retention.purge_expired(uow, now=now)
    elapsed = time.perf_counter() - started
    done.set()
    await writer_task
    left = await conn.fetchval("SELECT count(*) FROM messages WHERE expires_at <= $1", now)
    await conn.close()
    await engine.dispose()
    print(
        f"purged {purged.messages:,} expired messages in {elapsed:.1f} s "
        f"({purged.messages / elapsed:,.0f} messages/s); expired left: {left}"
    )
    print(
        f"{len(latencies):,} live inserts meanwhile: median "
        f"{statistics.median(latencies) * 1000:.2f} ms, worst {max(latencies) * 1000:.1f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=1_000_000)
    args = parser.parse_args()
    with scratch_database() as url:
        asyncio.run(main_async(url, args.messages))


if __name__ == "__main__":
    main()
