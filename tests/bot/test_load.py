"""200 users at once asking a paced model through the real bot, the sandbox's flood limits on
(about one message a second per chat, 30 a second per bot): every final reply arrives, and no
turn is billed or stored as complete without its reply in the chat."""

from __future__ import annotations

import asyncio

from bench.turns import END, register_users, run_load
from tests.bot.conftest import POLICY_VERSION, BotHarness

USERS = 200


async def test_two_hundred_users_at_once_all_get_their_final_reply_and_pay_only_for_it(
    harness: BotHarness,
) -> None:
    client, factory = harness.client, harness.uow_factory
    people = await register_users(client, factory, USERS, money=100_000, policy=POLICY_VERSION)

    result = await asyncio.wait_for(
        run_load(client, factory, harness.bot, people, messages=1, delay_ms=50, deadline=60),
        timeout=80,
    )

    assert result.turns == USERS
    assert result.delivered == USERS, f"{USERS - result.delivered} final replies lost"
    # Telegram's own record of each chat: the whole reply is there, once.
    transcripts = await asyncio.gather(*(client.bot_messages(chat) for chat in people))
    finals = [sum(END in (m["text"] or "") for m in messages) for messages in transcripts]
    assert finals == [1] * USERS
    # Each turn charged once, stored as complete, nothing left on hold.
    assert result.charges_by_user == dict.fromkeys(people, 1)
    assert result.complete_by_user == dict.fromkeys(people, 1)
    assert result.billed_undelivered == 0
    assert result.reserved == 0
