"""Webhook delivery as the Bot API server does it: POST each update as JSON with the secret
header, in order; on a non-2xx answer retry (at once, then 2, 4, 8 … seconds, capped), recording
the error in getWebhookInfo. A method call in a 2xx answer's body is executed."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
from aiohttp import web

from sandbox.telegram.botapi import METHODS, WORLD
from sandbox.telegram.state import ApiError, Bot, World

log = logging.getLogger(__name__)
NO_REPLY_METHODS = {"getupdates", "setwebhook", "deletewebhook", "close", "logout"}


async def _deliver(world: World, bot: Bot, session: aiohttp.ClientSession) -> None:
    attempts = 0
    while bot.webhook and bot.updates:
        webhook = bot.webhook
        update = bot.updates[0]
        headers = {}
        if webhook.get("secret_token"):
            headers["X-Telegram-Bot-Api-Secret-Token"] = str(webhook["secret_token"])
        error: str | None = None
        retry_after: float | None = None
        try:
            async with session.post(
                webhook["url"],
                json=update,
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=world.options.webhook_timeout),
            ) as response:
                if 200 <= response.status < 300:
                    body = await response.read()
                    if bot.updates and bot.updates[0] is update:
                        bot.updates.pop(0)
                    attempts = 0
                    await _answer_in_body(world, bot, body, response.content_type)
                    continue
                error = f"Wrong response from the webhook: {response.status} {response.reason}"
                header = response.headers.get("Retry-After")
                if header and header.isdigit():
                    retry_after = min(float(header), 3600.0)
        except (aiohttp.ClientError, TimeoutError) as exc:
            error = (
                "Webhook connection closed"
                if isinstance(exc, aiohttp.ServerDisconnectedError)
                else f"Connection failed: {type(exc).__name__}"
            )
        bot.webhook_error = (int(time.time()), error or "Webhook delivery failed")
        world.emit("webhook_error", None, bot_id=bot.id, message=bot.webhook_error[1])
        attempts += 1
        if retry_after is None:
            base = world.options.webhook_retry_base
            retry_after = (
                0.0
                if attempts == 1
                else min(base * 2 ** (attempts - 1), world.options.webhook_retry_cap)
            )
        await _sleep_or_change(bot, retry_after)


async def _sleep_or_change(bot: Bot, seconds: float) -> None:
    if seconds <= 0:
        return
    event = bot.poll_event
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(event.wait(), seconds)
    if event.is_set():
        bot.poll_event = asyncio.Event()


async def _answer_in_body(world: World, bot: Bot, body: bytes, content_type: str) -> None:
    if not body or content_type != "application/json":
        return
    import json

    try:
        data: Any = json.loads(body)
    except ValueError:
        return
    if not isinstance(data, dict) or "method" not in data:
        return
    name = str(data.pop("method")).lower()
    if name in NO_REPLY_METHODS or name not in METHODS:
        return
    with contextlib.suppress(ApiError):
        await METHODS[name](world, bot, data)


async def delivery_loop(app: web.Application) -> None:
    world = app[WORLD]
    async with aiohttp.ClientSession() as session:
        running: dict[int, asyncio.Task[None]] = {}
        try:
            while True:
                for bot in world.bots.values():
                    task = running.get(bot.id)
                    if bot.webhook and bot.updates and (task is None or task.done()):
                        running[bot.id] = asyncio.create_task(_deliver(world, bot, session))
                await asyncio.sleep(0.02)
        finally:
            for task in running.values():
                task.cancel()
            await asyncio.gather(*running.values(), return_exceptions=True)


async def webhook_ctx(app: web.Application) -> AsyncIterator[None]:
    task = asyncio.create_task(delivery_loop(app))
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
