"""Telegram Stars: invoices, the pre-checkout round trip with its deadline, successful and
refunded payments, Star transactions, subscriptions. A person pays through the control API or
the page.

Control API (JSON under ``/sandbox/api``):

- ``POST /chats/{chat_id}/pay`` ``{message_id | invoice_link, from_user_id?, bot_id?}`` → 202.
- ``POST /chats/{chat_id}/replay-payment`` ``{message_id, times?, bot_id?}`` → 201
  ``{update_ids}``.
- ``POST /chats/{chat_id}/renew-subscription`` ``{telegram_payment_charge_id, bot_id?}`` → 201
  ``{message, update_id, telegram_payment_charge_id, subscription_expiration_date}``: the next
  period is paid (no pre-checkout query, as in Telegram): a new charge, a ``successful_payment``
  with ``is_recurring`` and the expiration date moved on by the period. A subscription canceled
  by the bot or by the person is not renewed: 409 ``{"error"}`` and a
  ``subscription_not_renewed`` event.
- ``POST /chats/{chat_id}/cancel-subscription`` ``{telegram_payment_charge_id, is_canceled?,
  bot_id?}`` → ``{subscription}``: the person cancels (or re-enables) the renewal.

``telegram_payment_charge_id`` names a subscription by its first charge (any of its charges is
accepted). A bot that lists ``subscription`` in ``allowed_updates`` also gets Bot API 10.2's
``subscription`` update (``{user, invoice_payload, state}``) when the person cancels or
re-enables. ``editUserStarSubscription(is_canceled=false)`` lifts the bot's own cancellation
(the person's consent is taken as given).
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web

from sandbox.telegram.botapi import (
    WORLD,
    Params,
    _int,
    _public,
    _record_bot_message,
    _sendable_chat,
    check_markup,
    method,
)
from sandbox.telegram.control import ControlError, _body, _bot, _chat, guarded
from sandbox.telegram.state import ApiError, Bot, Chat, World, bad_request


def _invoice(params: Params) -> dict[str, Any]:
    title = str(params.get("title") or "")
    description = str(params.get("description") or "")
    payload = str(params.get("payload") or "")
    currency = str(params.get("currency") or "")
    prices = params.get("prices")
    if isinstance(prices, str):
        import json

        try:
            prices = json.loads(prices)
        except ValueError as exc:
            raise bad_request("can't parse prices JSON object") from exc
    if not 1 <= len(title) <= 32:
        raise bad_request("INVOICE_TITLE_INVALID" if title else "title is empty")
    if not 1 <= len(description) <= 255:
        raise bad_request("INVOICE_DESCRIPTION_INVALID")
    if not 1 <= len(payload.encode()) <= 128:
        raise bad_request("INVOICE_PAYLOAD_INVALID")
    if currency != "XTR":
        raise bad_request("CURRENCY_INVALID")
    if params.get("provider_token"):
        raise bad_request("PROVIDER_TOKEN_INVALID: Stars invoices take an empty provider token")
    if not isinstance(prices, list) or len(prices) != 1:
        raise bad_request("Stars invoices must have exactly one price")
    amount = prices[0].get("amount") if isinstance(prices[0], dict) else None
    if not isinstance(amount, int) or amount <= 0:
        raise bad_request("CURRENCY_TOTAL_AMOUNT_INVALID")
    period = _int(params, "subscription_period")
    if period is not None and (period != 2592000 or amount > 10000):
        raise bad_request("SUBSCRIPTION_PERIOD_INVALID")
    return {
        "title": title,
        "description": description,
        "payload": payload,
        "currency": currency,
        "total_amount": amount,
        "subscription_period": period,
        "start_parameter": str(params.get("start_parameter") or ""),
    }


@method("sendInvoice")
async def send_invoice(world: World, bot: Bot, params: Params) -> Any:
    chat = _sendable_chat(world, bot, params, "sendinvoice")
    invoice = _invoice(params)
    if invoice["subscription_period"]:
        raise bad_request("subscriptions are created with createInvoiceLink")
    reply_markup = check_markup(chat, params.get("reply_markup")) or {
        "inline_keyboard": [[{"text": f"Pay ⭐️{invoice['total_amount']}", "pay": True}]]
    }
    world.check_flood(bot, chat)
    message = world.new_message(
        chat,
        bot.as_user(),
        invoice={k: invoice[k] for k in ("title", "description", "currency", "total_amount")}
        | {"start_parameter": invoice["start_parameter"]},
        reply_markup=reply_markup,
    )
    message["_invoice"] = invoice
    _record_bot_message(world, bot, chat, message)
    return _public(message)


@method("createInvoiceLink")
async def create_invoice_link(world: World, bot: Bot, params: Params) -> Any:
    invoice = _invoice(params)
    slug = secrets.token_urlsafe(12)
    bot.invoice_links[slug] = invoice
    return f"https://t.me/${slug}"


@method("answerPreCheckoutQuery")
async def answer_pre_checkout_query(world: World, bot: Bot, params: Params) -> Any:
    query = bot.pre_checkouts.get(str(params.get("pre_checkout_query_id") or ""))
    if query is None or query["answer"] is not None or time.monotonic() > query["deadline"]:
        raise bad_request("query is too old and response timeout expired or query ID is invalid")
    ok = params.get("ok") in (True, "true", "True", 1, "1")
    error_message = params.get("error_message")
    if not ok and not error_message:
        raise bad_request("ERROR_MESSAGE_EMPTY")
    query["answer"] = {"ok": ok, "error_message": error_message}
    query["answered"].set()
    return True


@method("refundStarPayment")
async def refund_star_payment(world: World, bot: Bot, params: Params) -> Any:
    charge_id = str(params.get("telegram_payment_charge_id") or "")
    user_id = _int(params, "user_id")
    if not charge_id:
        raise bad_request("CHARGE_ID_EMPTY")
    found = next((t for t in bot.star_transactions if t["id"] == charge_id), None)
    if found is None or found["user_id"] != user_id:
        raise bad_request("CHARGE_NOT_FOUND")
    if found["refunded"]:
        raise bad_request("CHARGE_ALREADY_REFUNDED")
    found["refunded"] = True
    chat = world.chats[found["user_id"]]
    bot.star_transactions.append(
        {
            "id": charge_id,
            "amount": found["amount"],
            "date": int(time.time()),
            "receiver": {"type": "user", "user": world.users[found["user_id"]].as_user()},
            "user_id": found["user_id"],
            "refunded": True,
            "is_refund": True,
        }
    )
    refunded = {
        "currency": "XTR",
        "total_amount": found["amount"],
        "invoice_payload": found["payload"],
        "telegram_payment_charge_id": charge_id,
    }
    message = world.new_message(chat, world.users[chat.id].as_user(), refunded_payment=refunded)
    world.push_update(bot, "message", _public(message))
    world.emit("payment_refunded", chat.id, charge_id=charge_id, amount=found["amount"])
    return True


@method("getStarTransactions")
async def get_star_transactions(world: World, bot: Bot, params: Params) -> Any:
    offset = _int(params, "offset") or 0
    limit = min(max(_int(params, "limit") or 100, 1), 100)
    transactions = []
    for t in bot.star_transactions[offset : offset + limit]:
        item: dict[str, Any] = {"id": t["id"], "amount": t["amount"], "date": t["date"]}
        partner = {
            "type": "user",
            "transaction_type": "invoice_payment",
            "user": world.users[t["user_id"]].as_user(),
            "invoice_payload": t.get("payload", ""),
        }
        if t.get("subscription_period") and not t.get("is_refund"):
            partner["subscription_period"] = t["subscription_period"]
        item["receiver" if t.get("is_refund") else "source"] = partner
        transactions.append(item)
    return {"transactions": transactions}


@method("editUserStarSubscription")
async def edit_user_star_subscription(world: World, bot: Bot, params: Params) -> Any:
    charge_id = str(params.get("telegram_payment_charge_id") or "")
    user_id = _int(params, "user_id")
    subscription = _subscription(bot, charge_id)
    if subscription is None or (user_id is not None and subscription["user_id"] != user_id):
        raise bad_request("CHARGE_NOT_FOUND")
    canceled = params.get("is_canceled") in (True, "true", "True", 1, "1")
    subscription["canceled_by_bot"] = canceled
    for t in bot.star_transactions:
        if t["id"] == charge_id:
            t["canceled"] = canceled
    world.emit(
        "subscription_canceled" if canceled else "subscription_reenabled",
        subscription["chat_id"],
        charge_id=subscription["first_charge_id"],
        by="bot",
    )
    return True


def _subscription(bot: Bot, charge_id: str) -> dict[str, Any] | None:
    """A subscription by its first charge id, or by any of its charges."""
    if charge_id in bot.subscriptions:
        return bot.subscriptions[charge_id]
    return next((s for s in bot.subscriptions.values() if charge_id in s["charge_ids"]), None)


def _subscription_info(subscription: dict[str, Any]) -> dict[str, Any]:
    return {
        "telegram_payment_charge_id": subscription["first_charge_id"],
        "user_id": subscription["user_id"],
        "invoice_payload": subscription["payload"],
        "total_amount": subscription["amount"],
        "subscription_period": subscription["period"],
        "subscription_expiration_date": subscription["expires_at"],
        "canceled_by_bot": subscription["canceled_by_bot"],
        "canceled_by_user": subscription["canceled_by_user"],
        "charge_ids": list(subscription["charge_ids"]),
    }


async def _checkout(
    world: World, bot: Bot, chat: Chat, payer_id: int, invoice: dict[str, Any]
) -> None:
    """Send the pre-checkout query; on the bot's OK within the deadline, the payment succeeds."""
    payer = world.users[payer_id]
    query_id = str(secrets.randbits(63))
    answered = asyncio.Event()
    bot.pre_checkouts[query_id] = {
        "answer": None,
        "answered": answered,
        "deadline": time.monotonic() + world.options.pre_checkout_timeout,
    }
    world.push_update(
        bot,
        "pre_checkout_query",
        {
            "id": query_id,
            "from": payer.as_user(),
            "currency": invoice["currency"],
            "total_amount": invoice["total_amount"],
            "invoice_payload": invoice["payload"],
        },
    )
    try:
        await asyncio.wait_for(answered.wait(), world.options.pre_checkout_timeout)
    except TimeoutError:
        world.emit(
            "payment_failed", chat.id, reason="the bot did not answer the pre-checkout query"
        )
        return
    answer = bot.pre_checkouts[query_id]["answer"]
    if not answer["ok"]:
        world.emit("payment_failed", chat.id, reason=answer["error_message"])
        return
    charge_id = "stxSANDBOX" + secrets.token_urlsafe(24)
    payment: dict[str, Any] = {
        "currency": invoice["currency"],
        "total_amount": invoice["total_amount"],
        "invoice_payload": invoice["payload"],
        "telegram_payment_charge_id": charge_id,
        "provider_payment_charge_id": "",
    }
    period = invoice.get("subscription_period")
    if period:
        payment["subscription_expiration_date"] = int(time.time()) + period
        payment["is_recurring"] = True
        payment["is_first_recurring"] = True
        bot.subscriptions[charge_id] = {
            "first_charge_id": charge_id,
            "user_id": payer_id,
            "chat_id": chat.id,
            "payload": invoice["payload"],
            "amount": invoice["total_amount"],
            "period": period,
            "expires_at": payment["subscription_expiration_date"],
            "canceled_by_bot": False,
            "canceled_by_user": False,
            "charge_ids": [charge_id],
        }
    bot.star_transactions.append(
        {
            "id": charge_id,
            "amount": invoice["total_amount"],
            "date": int(time.time()),
            "user_id": payer_id,
            "payload": invoice["payload"],
            "refunded": False,
            "subscription_period": period,
        }
    )
    message = world.new_message(chat, payer.as_user(), successful_payment=payment)
    message["_payment_update"] = world.push_update(bot, "message", _public(message))
    world.emit(
        "payment_succeeded",
        chat.id,
        charge_id=charge_id,
        amount=invoice["total_amount"],
        message_id=message["message_id"],
    )


@guarded
async def pay(request: web.Request) -> web.Response:
    """Tap Pay: ``{message_id}`` of an invoice message, or ``{invoice_link}``."""
    world = request.app[WORLD]
    chat = _chat(world, request)
    body = await _body(request)
    bot = _bot(world, body)
    payer_id = int(body.get("from_user_id") or chat.id)
    if payer_id not in world.users:
        raise ControlError(f"no user {payer_id}")
    invoice: dict[str, Any] | None = None
    if body.get("message_id") is not None:
        message = chat.messages.get(int(body["message_id"]))
        invoice = message.get("_invoice") if message else None
    elif body.get("invoice_link"):
        slug = str(body["invoice_link"]).rsplit("$", 1)[-1]
        invoice = bot.invoice_links.get(slug)
    if invoice is None:
        raise ControlError("no such invoice")
    task = asyncio.create_task(_checkout(world, bot, chat, payer_id, invoice))
    request.app[CHECKOUTS].add(task)
    task.add_done_callback(request.app[CHECKOUTS].discard)
    return web.json_response({"status": "pre_checkout_sent"}, status=202)


@guarded
async def replay_payment(request: web.Request) -> web.Response:
    """Deliver a successful payment's update again, as Telegram does after a webhook failure."""
    world = request.app[WORLD]
    chat = _chat(world, request)
    body = await _body(request)
    bot = _bot(world, body)
    message = chat.messages.get(int(body.get("message_id") or 0))
    if message is None or "successful_payment" not in message:
        raise ControlError("no successful payment with this message_id")
    times = min(max(int(body.get("times") or 1), 1), 50)
    ids = [world.push_update(bot, "message", _public(message)) for _ in range(times)]
    return web.json_response({"update_ids": ids}, status=201)


def _chat_subscription(world: World, bot: Bot, chat: Chat, body: dict[str, Any]) -> dict[str, Any]:
    charge_id = str(body.get("telegram_payment_charge_id") or "")
    if not charge_id:
        raise ControlError("telegram_payment_charge_id is required")
    subscription = _subscription(bot, charge_id)
    if subscription is None or subscription["chat_id"] != chat.id:
        raise ControlError(f"no subscription with charge {charge_id} in chat {chat.id}")
    return subscription


@guarded
async def renew_subscription(request: web.Request) -> web.Response:
    """The next period of a subscription is paid."""
    world = request.app[WORLD]
    chat = _chat(world, request)
    body = await _body(request)
    bot = _bot(world, body)
    subscription = _chat_subscription(world, bot, chat, body)
    first = subscription["first_charge_id"]
    if subscription["canceled_by_bot"] or subscription["canceled_by_user"]:
        by = "bot" if subscription["canceled_by_bot"] else "user"
        reason = f"the subscription was canceled by the {by}"
        world.emit("subscription_not_renewed", chat.id, charge_id=first, reason=reason)
        return web.json_response({"error": reason}, status=409)
    payer = world.users[subscription["user_id"]]
    charge_id = "stxSANDBOX" + secrets.token_urlsafe(24)
    subscription["expires_at"] += subscription["period"]
    subscription["charge_ids"].append(charge_id)
    payment: dict[str, Any] = {
        "currency": "XTR",
        "total_amount": subscription["amount"],
        "invoice_payload": subscription["payload"],
        "telegram_payment_charge_id": charge_id,
        "provider_payment_charge_id": "",
        "subscription_expiration_date": subscription["expires_at"],
        "is_recurring": True,
        "is_first_recurring": False,
    }
    bot.star_transactions.append(
        {
            "id": charge_id,
            "amount": subscription["amount"],
            "date": int(time.time()),
            "user_id": payer.id,
            "payload": subscription["payload"],
            "refunded": False,
            "subscription_period": subscription["period"],
        }
    )
    message = world.new_message(chat, payer.as_user(), successful_payment=payment)
    update_id = world.push_update(bot, "message", _public(message))
    message["_payment_update"] = update_id
    world.emit(
        "payment_succeeded",
        chat.id,
        charge_id=charge_id,
        amount=subscription["amount"],
        message_id=message["message_id"],
        renewal_of=first,
    )
    return web.json_response(
        {
            "message": _public(message),
            "update_id": update_id,
            "telegram_payment_charge_id": charge_id,
            "subscription_expiration_date": subscription["expires_at"],
        },
        status=201,
    )


@guarded
async def cancel_subscription(request: web.Request) -> web.Response:
    """The person cancels a subscription's renewal (or, with ``is_canceled: false``, turns it
    back on)."""
    world = request.app[WORLD]
    chat = _chat(world, request)
    body = await _body(request)
    bot = _bot(world, body)
    subscription = _chat_subscription(world, bot, chat, body)
    canceled = bool(body.get("is_canceled", True))
    if not canceled and subscription["canceled_by_bot"]:
        raise ControlError("the bot canceled this subscription; only the bot can allow it again")
    subscription["canceled_by_user"] = canceled
    world.push_update(
        bot,
        "subscription",
        {
            "user": world.users[subscription["user_id"]].as_user(),
            "invoice_payload": subscription["payload"],
            "state": "canceled" if canceled else "active",
        },
    )
    world.emit(
        "subscription_canceled" if canceled else "subscription_reenabled",
        chat.id,
        charge_id=subscription["first_charge_id"],
        by="user",
    )
    return web.json_response({"subscription": _subscription_info(subscription)})


CHECKOUTS = web.AppKey("telegram_checkouts", set[asyncio.Task[None]])


async def _checkouts_ctx(app: web.Application) -> AsyncIterator[None]:
    app[CHECKOUTS] = set()
    yield
    tasks: set[asyncio.Task[None]] = app[CHECKOUTS]
    pending = [*tasks]
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)


def setup_payments(app: web.Application) -> None:
    app.cleanup_ctx.append(_checkouts_ctx)
    app.router.add_post("/sandbox/api/chats/{chat_id}/pay", pay)
    app.router.add_post("/sandbox/api/chats/{chat_id}/replay-payment", replay_payment)
    app.router.add_post("/sandbox/api/chats/{chat_id}/renew-subscription", renew_subscription)
    app.router.add_post("/sandbox/api/chats/{chat_id}/cancel-subscription", cancel_subscription)


__all__ = ["ApiError", "setup_payments"]
