"""The service under faults, as a real `netroom run` process: kill -9 and SIGTERM mid-stream,
Postgres gone at the end of a turn, a reply the database cannot store. Afterwards, for every
user: balance = Σ entries, nothing held, every delivered reply billed, nobody locked out."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bench import faultkit
from bench.faultkit import Figures, ScratchPostgres, World


@pytest.fixture
async def world(postgres_server_url: str, redis_url: str, tmp_path: Path) -> AsyncIterator[World]:
    async with (
        faultkit.scratch_database(postgres_server_url) as database_url,
        World.open(database_url, redis_url, tmp_path) as opened,
    ):
        yield opened


def _assert_clean(figures: Figures) -> None:
    assert figures.inconsistent == 0, figures
    assert figures.holds_left == 0, figures
    assert figures.unbilled == 0, figures
    assert figures.locked_out == 0, figures
    assert figures.broken == 0, figures


async def test_kill_9_mid_stream_frees_every_user_and_every_hold(world: World) -> None:
    async with asyncio.timeout(300):
        figures = await faultkit.kill_mid_stream(world, users=20)
    _assert_clean(figures)


async def test_kill_9_with_the_products_heartbeat_times_frees_every_user_at_the_restart(
    world: World,
) -> None:
    """With the 30 s heartbeats of a real deployment, a process restarted on the same machine
    knows the dead one is gone (its process id is) and takes over its users at once."""
    async with asyncio.timeout(300):
        figures = await faultkit.kill_mid_stream(world, users=10, holds={}, answer_within=15)
    _assert_clean(figures)


async def test_sigterm_lets_replies_in_flight_finish_within_the_grace_period(
    world: World,
) -> None:
    async with asyncio.timeout(240):
        figures, code, took, shown = await faultkit.sigterm_mid_stream(
            world, users=8, grace=20, reply_words=30, chunk_delay_ms=100
        )
    assert code == 0, figures
    assert took < 20 + 5, figures
    # Every reply was finished and shown whole.
    assert shown == 8, figures
    _assert_clean(figures)


async def test_sigterm_cuts_replies_that_outlast_the_grace_period_and_bills_what_was_shown(
    world: World,
) -> None:
    async with asyncio.timeout(240):
        figures, code, took, shown = await faultkit.sigterm_mid_stream(
            world, users=8, grace=2, reply_words=300, chunk_delay_ms=150
        )
    assert code == 0, figures
    # The grace period, the cut replies' bounded clean-up, and closing down.
    assert took < 2 + 10 + 5, figures
    # Each user is left with what was written so far, as a message, told it was cut short.
    assert shown == 8, figures
    _assert_clean(figures)


async def test_postgres_gone_for_15_seconds_at_the_end_of_turns_loses_no_settlement(
    redis_url: str, tmp_path: Path
) -> None:
    pg = ScratchPostgres()
    try:
        url = await asyncio.to_thread(pg.init)
        async with asyncio.timeout(300), World.open(url, redis_url, tmp_path) as world:
            figures, shown = await faultkit.postgres_pause(world, pg, users=5)
    finally:
        await asyncio.to_thread(pg.destroy)
    assert shown == 5, figures
    _assert_clean(figures)


async def test_a_reply_with_a_nul_byte_or_a_deleted_conversation_is_billed_and_frees_the_user(
    world: World,
) -> None:
    async with asyncio.timeout(240):
        figures = await faultkit.broken_replies(world, users=4)
    _assert_clean(figures)


async def test_in_webhook_mode_an_update_arriving_while_stopping_is_answered_by_the_next_process(
    world: World,
) -> None:
    async with asyncio.timeout(240):
        figures, code, delivered = await faultkit.webhook_drain(world)
    assert code == 0, figures
    assert delivered, figures
    _assert_clean(figures)


async def test_an_inline_answer_whose_process_was_killed_tells_the_asker_to_ask_again(
    world: World,
) -> None:
    """An inline answer lives in someone else's chat: after a kill -9 mid-answer, a living
    process edits it from "writing…" to "ask again", and the asker's hold comes back."""
    env = {**faultkit.QUICK_HOLDS, "BOT__INLINE_MODE": "true"}
    async with asyncio.timeout(180):
        service = await world.start_service("inline", **env)
        [asker] = await world.users(1)
        group = await world.control.create_group("Friends", [asker.telegram_id], with_bot=False)
        await world.script(faultkit.slow_reply(200), times=1, chunk_delay_ms=150)
        asked = await world.control.inline_query(
            asker.telegram_id, "Tell me a long story", chat_type="group"
        )
        query_id = str(asked["inline_query_id"])
        answer = await world.control.wait_for(
            lambda e: e["type"] == "inline_answered" and e["inline_query_id"] == query_id,
            chat_id=asker.telegram_id,
            wait=30,
        )
        [result] = answer["results"]
        sent = await world.control.choose_inline_result(
            query_id, result["id"], chat_id=int(group["id"])
        )
        message_id = sent["message"]["message_id"]
        assert "writing" in sent["message"]["text"]
        await world.wait_held([asker], 1)
        service.kill()
        assert service.proc is not None
        await service.proc.wait()

        after = await world.control.last_seq()
        await world.start_service("inline-restarted", **env)
        told = await world.control.wait_for(
            lambda e: e["type"] == "message_edited" and e["message_id"] == message_id,
            chat_id=int(group["id"]),
            after=after,
            wait=60,
        )
        text = told["message"]["text"]
        assert text.startswith("❓ Tell me a long story")
        assert "restarted while writing it" in text and "ask again" in text
        assert faultkit.SLOW_MARKER not in text
        figures = await world.figures(
            [asker], hold_deadline=120, markers=(faultkit.SLOW_MARKER,), drafts=False
        )
    assert figures.holds_left == 0, figures
    assert figures.inconsistent == 0, figures
