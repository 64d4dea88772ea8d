"""One account everywhere, end to end with the bot running as its own process against the
sandbox's Telegram: a web account cannot buy plans, asks for its Telegram link, the Telegram user
opens it in the bot and confirms, and the same web account then buys a plan (paid in Telegram)."""

from __future__ import annotations

from typing import Any

from sandbox.client import Event
from tests.webapp.test_subscription_api import Env, env, telegram

__all__ = ["env", "telegram"]


def _bot_message(containing: str) -> Any:
    return lambda e: e["type"] == "bot_message" and containing in (e["message"].get("text") or "")


def _button(event: Event, label: str) -> str:
    markup = event["message"].get("reply_markup") or {}
    for row in markup.get("inline_keyboard", []):
        for button in row:
            if button["text"] == label:
                return str(button["callback_data"])
    raise AssertionError(f"no {label!r} button")


async def test_a_web_account_linked_to_telegram_in_the_bot_can_buy_plans_on_the_web(
    env: Env,
) -> None:
    web = await env.user(telegram=False)
    _, balance = await env.call(web, "GET", "/api/balance")
    assert balance["plans_purchasable"] is False

    status, code = await env.call(web, "POST", "/api/link/telegram")
    assert status == 200, code
    payload = str(code["deep_link"]).rsplit("?start=", 1)[1]
    ann = await env.control.create_user("Ann", username="ann_links")
    after = await env.control.last_seq()
    await env.control.send_text(int(ann["id"]), f"/start {payload}")
    question = await env.control.wait_for(
        _bot_message("Link this Telegram account"), chat_id=int(ann["id"]), after=after
    )
    await env.control.tap(
        int(ann["id"]), question["message"]["message_id"], _button(question, "Link")
    )
    await env.control.wait_for(
        _bot_message("now share one NetRoom account"), chat_id=int(ann["id"]), after=after
    )

    _, balance = await env.call(web, "GET", "/api/balance")
    assert balance["plans_purchasable"] is True
    status, bought = await env.call(web, "POST", "/api/subscription", {"plan": "plus"})
    assert status == 201, bought
    assert str(bought["invoice_link"]).startswith("https://t.me/$")
