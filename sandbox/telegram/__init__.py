"""A local Telegram Bot API server with a control API to act as users."""

from __future__ import annotations

from aiohttp import web

from sandbox.telegram.botapi import WORLD, setup_botapi
from sandbox.telegram.control import setup_control
from sandbox.telegram.forum import setup_forum
from sandbox.telegram.inline import setup_inline
from sandbox.telegram.payments import setup_payments
from sandbox.telegram.state import TelegramOptions, World
from sandbox.telegram.webhooks import webhook_ctx

TELEGRAM = WORLD

__all__ = ["TELEGRAM", "TelegramOptions", "World", "setup_telegram"]


def setup_telegram(app: web.Application, options: TelegramOptions | None = None) -> World:
    world = World(options)
    app[WORLD] = world
    setup_botapi(app)
    setup_control(app)
    setup_payments(app)
    setup_forum(app)
    setup_inline(app)
    app.cleanup_ctx.append(webhook_ctx)
    return world
