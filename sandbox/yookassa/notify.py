"""Notifications as YooKassa sends them: on every status change, POST
``{"type": "notification", "event", "object"}`` as JSON to the shop's webhook_url from the
background. Only an HTTP 200 answer counts; anything else (or no answer) is retried after
``retry_base`` seconds, then twice as long each time, up to ``max_attempts`` attempts. Several
deliveries of one notification may run at once, so receivers see duplicates as in production."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
from aiohttp import web

from sandbox.yookassa.state import Delivery, Shop, YooKassaOptions, YooKassaState, now

YOOKASSA = web.AppKey("yookassa", YooKassaState)


def notify(
    state: YooKassaState, shop: Shop, event: str, obj: dict[str, Any], payment_id: str
) -> Delivery:
    """Record a notification about ``obj`` as it is now and start delivering it."""
    body = {"type": "notification", "event": event, "object": obj}
    return start_delivery(state, shop, event, obj["id"], payment_id, body)


def start_delivery(
    state: YooKassaState,
    shop: Shop,
    event: str,
    object_id: str,
    payment_id: str,
    body: dict[str, Any],
) -> Delivery:
    delivery = Delivery(
        id=state.next_seq(),
        shop=shop,
        event=event,
        object_id=object_id,
        payment_id=payment_id,
        body=body,
        created_at=now(),
    )
    state.deliveries.append(delivery)
    task = asyncio.create_task(deliver(state, delivery))
    state.tasks.add(task)
    task.add_done_callback(state.tasks.discard)
    return delivery


def resend(state: YooKassaState, delivery: Delivery, times: int) -> list[Delivery]:
    """Deliver the same notification ``times`` more times, all at once."""
    return [
        start_delivery(
            state,
            delivery.shop,
            delivery.event,
            delivery.object_id,
            delivery.payment_id,
            delivery.body,
        )
        for _ in range(times)
    ]


async def deliver(state: YooKassaState, delivery: Delivery) -> None:
    """POST the notification until the shop answers 200 or the attempts run out. The
    webhook_url is read before each attempt, so a shop may fix it while retries go on."""
    if state.session is None:
        state.session = aiohttp.ClientSession()
    session = state.session
    try:
        for attempt in range(1, max(state.options.max_attempts, 1) + 1):
            url = delivery.shop.webhook_url
            if not url:
                delivery.last_error = "the shop has no webhook_url"
                return
            delivery.attempts = attempt
            if await _attempt(session, url, delivery, state.options):
                delivery.delivered = True
                return
            if attempt < state.options.max_attempts:
                options = state.options
                await asyncio.sleep(min(options.retry_base * 2 ** (attempt - 1), options.retry_cap))
    finally:
        delivery.finished = True


async def _attempt(
    session: aiohttp.ClientSession, url: str, delivery: Delivery, options: YooKassaOptions
) -> bool:
    try:
        async with session.post(
            url,
            json=delivery.body,
            headers={"User-Agent": "YooKassa sandbox notifications"},
            timeout=aiohttp.ClientTimeout(total=options.webhook_timeout),
        ) as response:
            await response.read()
            delivery.last_status = response.status
            delivery.last_error = None if response.status == 200 else f"HTTP {response.status}"
            return response.status == 200
    except (aiohttp.ClientError, TimeoutError) as exc:
        delivery.last_status = None
        delivery.last_error = f"{type(exc).__name__}: {exc}".rstrip(": ")
        return False


async def notifications_ctx(app: web.Application) -> AsyncIterator[None]:
    """Stop deliveries still running, then the HTTP client they share, when the app stops."""
    yield
    state = app[YOOKASSA]
    pending = [*state.tasks]
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    if state.session is not None:
        await state.session.close()
        state.session = None
