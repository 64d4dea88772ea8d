"""The service under faults: `netroom run` as a real process against the Telegram sandbox, its
fake providers, a scratch database and Redis, with the product's default hold timings.

Scenarios: kill -9 with Stars payments in flight; kill -9 while 20 replies stream, then a
restart; SIGTERM while replies stream (finishing within the grace period, and outlasting it);
SIGTERM in webhook mode with an update arriving while the process stops; Postgres stopped for
15 s at the end of replies; a reply with a NUL byte and conversations deleted mid-reply.
Prints, per scenario and in all: payments lost, holds left, delivered but unbilled replies,
users locked out (and balances that are not the sum of their entries). The bar is zero for
each.

    python -m bench.faults [--quick] [--only NAME]   (--quick: short heartbeats, as the tests)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from pathlib import Path

from bench import faultkit
from bench._db import scratch_database
from bench.faultkit import Figures, ScratchPostgres, World

REDIS = os.environ.get("BENCH_REDIS_URL") or os.environ.get(
    "TEST_REDIS_URL", "redis://127.0.0.1:6379/0"
)


@contextlib.asynccontextmanager
async def shared_world(server: str, work: Path) -> AsyncIterator[World]:
    async with (
        faultkit.scratch_database(server) as url,
        World.open(url, REDIS, work) as world,
    ):
        yield world


async def postgres_scenario() -> Figures:
    """On a Postgres of its own, which it stops and starts."""
    pg = ScratchPostgres()
    try:
        url = await asyncio.to_thread(pg.init)
        with tempfile.TemporaryDirectory(prefix="netroom-faults-") as work:
            try:
                async with World.open(url, REDIS, Path(work)) as world:
                    figures, shown = await faultkit.postgres_pause(world, pg)
                    figures.notes.append(f"{shown}/5 shown a reply")
            except Exception as exc:  # a scenario that breaks is a finding, not a crash
                figures = Figures(notes=[f"did not finish: {type(exc).__name__}: {exc}"[:300]])
                figures.broken = 1
    finally:
        await asyncio.to_thread(pg.destroy)
    print(row("Postgres gone 15 s", figures), flush=True)
    return figures


def row(name: str, f: Figures) -> str:
    return (
        f"{name:<34} {f.payments_lost:>8} {f.holds_left:>6} {f.unbilled:>9} {f.locked_out:>7}"
        f" {f.inconsistent:>7}   {'; '.join(f.notes)}"
    )


async def run(server: str, quick: bool, only: str | None = None) -> Figures:
    holds = faultkit.QUICK_HOLDS if quick else {}
    total = Figures()
    print(
        f"{'scenario':<34} {'payments':>8} {'holds':>6} {'unbilled':>9} {'locked':>7} {'Σ≠bal':>7}"
    )
    print(f"{'':<34} {'lost':>8} {'left':>6} {'replies':>9} {'out':>7}")

    async def scenario(name: str, body: Callable[[World], Awaitable[Figures]]) -> None:
        nonlocal total
        if only and only not in name:
            return
        with tempfile.TemporaryDirectory(prefix="netroom-faults-") as work:
            try:
                async with shared_world(server, Path(work)) as world:
                    figures = await body(world)
            except Exception as exc:  # a scenario that breaks is a finding, not a crash
                figures = Figures(notes=[f"did not finish: {type(exc).__name__}: {exc}"[:300]])
                figures.broken = 1
        total = total.add(figures)
        print(row(name, figures), flush=True)

    await scenario("kill -9, payments in flight", lambda w: faultkit.payments_in_flight(w))
    await scenario(
        "kill -9, 20 replies streaming", lambda w: faultkit.kill_mid_stream(w, holds=holds)
    )

    async def sigterm(world: World, grace: float, words: int) -> Figures:
        figures, code, took, shown = await faultkit.sigterm_mid_stream(
            world, grace=grace, reply_words=words, chunk_delay_ms=150
        )
        if code != 0 or took > grace + 15:
            figures.broken += 1
            figures.notes.append("did not exit 0 in time")
        figures.notes.append(f"{shown}/8 shown a reply")
        return figures

    await scenario("SIGTERM, replies within grace", lambda w: sigterm(w, 20, 30))
    await scenario("SIGTERM, replies outlast grace", lambda w: sigterm(w, 2, 300))
    await scenario("NUL byte, deleted conversation", lambda w: faultkit.broken_replies(w))

    async def webhook(world: World) -> Figures:
        figures, code, delivered = await faultkit.webhook_drain(world)
        if code != 0 or not delivered:
            figures.broken += 1
            figures.notes.append(
                f"exit code {code}; update sent while stopping answered: {delivered}"
            )
        return figures

    await scenario("SIGTERM in webhook mode", webhook)

    if not only or only in "Postgres gone 15 s":
        total = total.add(await postgres_scenario())
    print(row("all", replace(total, notes=[f"{total.broken} scenarios did not finish"])))
    print("bar: 0 everywhere ->", "met" if total.clean else "NOT met")
    return total


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="short heartbeats (as the tests)")
    parser.add_argument("--only", help="run the scenarios whose name contains this")
    args = parser.parse_args()
    with scratch_database() as server:
        asyncio.run(run(server, args.quick, args.only))


if __name__ == "__main__":
    main()
