"""Metrics of the bot, scraped over HTTP from the metrics port's app after a chat turn, a Stars
payment and a flood-control refusal through the real dispatcher and the sandbox."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Awaitable, Callable

from aiohttp import web
from aiohttp.test_utils import TestClient

from core.services import billing
from netroom.observe import metrics_app
from tests.bot.conftest import BotHarness, Person, PersonFactory, buttons
from tests.metrics_scrape import Samples, grew, parse, total

ClientMaker = Callable[..., Awaitable[TestClient[web.Request, web.Application]]]


async def _scrape(client: TestClient[web.Request, web.Application]) -> Samples:
    response = await client.get("/metrics")
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/plain")
    return parse(await response.text())


async def _ready(harness: BotHarness, person: PersonFactory, name: str) -> Person:
    someone: Person = await person(name)
    [consent] = await someone.say("/start")
    await someone.accept(consent)
    async with harness.uow_factory() as uow:
        user = await uow.users.by_telegram_id(someone.id)
        assert user is not None
        async with uow.transaction():
            await billing.credit(
                uow, user_id=user.id, amount=100_000, category="topup", key=secrets.token_hex(8)
            )
    return someone


async def test_a_chat_turn_a_payment_and_a_429_show_in_the_scraped_metrics(
    harness: BotHarness, person: PersonFactory, aiohttp_client: ClientMaker
) -> None:
    scraper = await aiohttp_client(metrics_app(None, ()))
    uma = await _ready(harness, person, "Uma")
    before = await _scrape(scraper)

    await harness.client._call(
        "POST", "/providers/script", json={"provider": "openai", "reply": "Metered words " * 5}
    )
    after_seq = await harness.client.last_seq()
    await harness.client.send_text(uma.id, "Count this turn")
    await harness.client.wait_for(
        lambda e: e["type"] == "bot_message" and "Metered words" in (e["message"]["text"] or ""),
        chat_id=uma.id,
        after=after_seq,
        wait=20,
    )

    # Telegram refuses the next message once for flood control; the pacer waits and retries.
    await harness.client.fault("sendMessage", 429, retry_after=1, count=1, chat_id=uma.id)
    [view] = await uma.say("/balance", wait=15)
    offer = next(b for b in buttons(view) if b["text"].startswith("⭐️ 50 "))
    [invoice] = await uma.tap(view, offer["callback_data"])
    after_seq = await harness.client.last_seq()
    await harness.client._call(
        "POST", f"/chats/{uma.id}/pay", json={"message_id": invoice["message_id"]}
    )
    await harness.client.wait_for(
        lambda e: e["type"] == "payment_succeeded", chat_id=uma.id, after=after_seq
    )
    await uma.replies(after_seq, 1)

    # The turn is counted once it is settled and told, just after its last message is sent.
    async with asyncio.timeout(10):
        while True:
            after = await _scrape(scraper)
            if grew(before, after, "netroom_payments_total", provider="stars") and grew(
                before, after, "netroom_turns_total"
            ):
                break
            await asyncio.sleep(0.1)

    assert grew(before, after, "netroom_turns_total", outcome="complete", provider="openai") == 1
    assert grew(before, after, "netroom_turns_total") == 1
    assert grew(before, after, "netroom_turn_first_text_seconds_count", provider="openai") == 1
    assert grew(before, after, "netroom_turn_final_seconds_count", provider="openai") == 1
    assert grew(before, after, "netroom_turn_final_seconds_sum", provider="openai") > 0
    assert grew(before, after, "netroom_provider_calls_total", provider="openai", kind="chat") == 1
    assert grew(before, after, "netroom_provider_tokens_total", provider="openai") > 0
    assert grew(before, after, "netroom_provider_errors_total") == 0
    # The turn held money and settled it; the payment credited the balance.
    assert grew(before, after, "netroom_ledger_operations_total", operation="reserve") >= 1
    assert (
        grew(before, after, "netroom_ledger_operations_total", operation="settle", result="applied")
        >= 1
    )
    assert (
        grew(before, after, "netroom_ledger_operations_total", operation="credit", result="applied")
        >= 1
    )
    assert grew(before, after, "netroom_payments_total", provider="stars", outcome="credited") == 1
    # Updates by type: the chat message, the command, the tap, the checkout, the payment.
    assert grew(before, after, "netroom_updates_total", type="message", result="ok") >= 3
    assert grew(before, after, "netroom_updates_total", type="callback_query", result="ok") == 1
    assert grew(before, after, "netroom_updates_total", type="pre_checkout_query") == 1
    assert grew(before, after, "netroom_update_duration_seconds_count", type="message") >= 3
    # Bot API calls by method; the refused one counted as a 429, its retry as ok.
    assert (
        grew(before, after, "netroom_telegram_api_calls_total", method="sendMessage", result="429")
        == 1
    )
    assert (
        grew(before, after, "netroom_telegram_api_calls_total", method="sendMessage", result="ok")
        >= 2
    )
    assert (
        grew(
            before,
            after,
            "netroom_telegram_api_calls_total",
            method="answerPreCheckoutQuery",
            result="ok",
        )
        == 1
    )
    assert total(after, "process_resident_memory_bytes") > 0


async def test_metrics_are_refused_through_a_proxy_and_open_to_the_token(
    aiohttp_client: ClientMaker,
) -> None:
    token = secrets.token_urlsafe(24)
    client = await aiohttp_client(metrics_app(token, ()))
    # Straight from this machine: allowed.
    assert (await client.get("/metrics")).status == 200
    # Relayed by a proxy on this machine: not local any more; only the token opens it.
    proxied = {"X-Forwarded-For": "203.0.113.9"}
    assert (await client.get("/metrics", headers=proxied)).status == 404
    wrong = {**proxied, "Authorization": "Bearer not-the-token"}
    assert (await client.get("/metrics", headers=wrong)).status == 404
    right = {**proxied, "Authorization": f"Bearer {token}"}
    response = await client.get("/metrics", headers=right)
    assert response.status == 200
    assert "netroom_updates_total" in await response.text()
