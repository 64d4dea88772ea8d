"""Export of a user with 100,000 messages: wall time and peak memory of the export itself.
The bar: under 10 seconds with bounded memory.

    python -m bench.export [--messages 100000]
"""

from __future__ import annotations

import argparse
import asyncio
import time
import tracemalloc
from datetime import UTC, datetime, timedelta

from bench._db import scratch_database
from core.deeplinks import parse_start_payload
from core.dto import ClientInfo
from core.services import accounts, privacy
from db.engine import UnitOfWorkFactory, create_engine


async def main_async(url: str, messages: int) -> None:
    engine = create_engine(url, pool_size=2, max_overflow=0)
    factory = UnitOfWorkFactory.for_engine(engine)
    now = datetime.now(UTC)
    async with factory() as uow:
        user = (
            await accounts.register_telegram_user(
                uow,
                telegram_id=1,
                username="big",
                first_name="Big",
                last_name=None,
                language_code="en",
                payload=parse_start_payload(None),
                policy_version="2026-11-01",
                client=ClientInfo(platform="telegram"),
            )
        ).user
        conn = await uow.session.connection()
        driver = (await conn.get_raw_connection()).driver_connection
        assert driver is not None
        conversation = await driver.fetchval(
            "INSERT INTO conversations (user_id, model_id, title)"
            " VALUES ($1, 'm', 't') RETURNING id",
            user.id,
        )
        text = "A question or an answer of a realistic length, with some words in it. " * 4
        rows = [
            (
                conversation,
                user.id,
                "user" if n % 2 == 0 else "assistant",
                f"{n} {text}",
                "m",
                "complete",
                now,
                now + timedelta(days=14),
            )
            for n in range(messages)
        ]
        await driver.copy_records_to_table(
            "messages",
            records=rows,
            columns=[
                "conversation_id",
                "user_id",
                "role",
                "content",
                "model_id",
                "status",
                "created_at",
                "expires_at",
            ],
        )
        await uow.commit()
    hour = 0
    for fmt in ("json", "zip"):
        # Timed without memory tracing (it slows Python down), then traced for the peak.
        timings: list[float] = []
        peaks: list[float] = []
        for traced in (False, True):
            hour += 2  # exports are limited to one an hour
            if traced:
                tracemalloc.start()
            started = time.perf_counter()
            async with factory() as uow:
                export = await privacy.export_user(
                    uow, user.id, fmt=fmt, now=now + timedelta(hours=hour)
                )
                size = export.data.seek(0, 2)
                export.data.close()
            (peaks if traced else timings).append(time.perf_counter() - started)
            if traced:
                peaks[-1] = tracemalloc.get_traced_memory()[1]
                tracemalloc.stop()
        elapsed = timings[0]
        verdict = "met" if elapsed < 10 else "NOT met"
        print(
            f"{fmt}: {export.rows:,} rows, {size / 1e6:.1f} MB in {elapsed:.2f} s "
            f"(bar 10 s: {verdict}); peak Python memory {peaks[0] / 1e6:.1f} MB"
        )
    await engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=100_000)
    args = parser.parse_args()
    with scratch_database() as url:
        asyncio.run(main_async(url, args.messages))


if __name__ == "__main__":
    main()
