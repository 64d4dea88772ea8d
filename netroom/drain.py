"""Graceful drain: the work a process has in flight, and how it ends when the process stops.

Invariants:
- Every update the dispatcher handles and every web request runs in a task registered here
  while it runs (an aiogram outer middleware and an aiohttp middleware).
- Once draining, no new turn is taken: polling stops, and the web app answers the bot's webhook
  and POST /api/chat with 503 (Telegram delivers the update again later; the web client says
  the service is restarting). Other short requests still finish.
- In-flight work gets up to the grace period to finish; what is left is then cancelled, and its
  own clean-up (the turn ends as cut short: the user told, billed for what was delivered, the
  hold settled) gets a bounded time more before resources are closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

from aiogram import BaseMiddleware
from aiogram.types import TelegramObject
from aiohttp import web
from aiohttp.typedefs import Handler

from core.errors import ShuttingDown

log = logging.getLogger(__name__)

# After the grace period: how long cancelled work may take to end cleanly.
CLEANUP_SECONDS = 10.0


class InFlight:
    """The tasks of this process that are serving someone now."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()
        self._idle = asyncio.Event()
        self._idle.set()
        self.draining = False

    def __len__(self) -> int:
        return len(self._tasks)

    @contextlib.contextmanager
    def track(self) -> Iterator[None]:
        task = asyncio.current_task()
        if task is None or task in self._tasks:
            yield
            return
        self._tasks.add(task)
        self._idle.clear()
        try:
            yield
        finally:
            self._tasks.discard(task)
            if not self._tasks:
                self._idle.set()

    async def drain(self, grace: float, cleanup: float = CLEANUP_SECONDS) -> int:
        """Stop taking work, wait up to ``grace`` seconds for what is in flight, then cancel the
        rest and wait up to ``cleanup`` seconds for it to end; how many tasks were cancelled."""
        self.draining = True
        if self._tasks:
            log.info("waiting up to %ss for %d requests in flight", grace, len(self._tasks))
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(grace):
                await self._idle.wait()
        rest = list(self._tasks)
        if not rest:
            return 0
        log.warning("cutting short %d requests still in flight after %ss", len(rest), grace)
        for task in rest:
            task.cancel()
        _done, pending = await asyncio.wait(rest, timeout=cleanup)
        if pending:
            log.error("%d requests did not end within %ss of being cut", len(pending), cleanup)
        return len(rest)


class TrackUpdates(BaseMiddleware):
    """Registers each update's handling as work in flight."""

    def __init__(self, inflight: InFlight) -> None:
        self.inflight = inflight

    async def __call__(
        self,
        handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
        event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:
        with self.inflight.track():
            return await handler(event, data)


def track_requests(inflight: InFlight, refused: Callable[[web.Request], bool]) -> Any:
    """An aiohttp middleware registering each request as work in flight; while draining, the
    requests ``refused`` picks (new turns, the bot's webhook) get 503."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if inflight.draining and refused(request):
            raise ShuttingDown(f"{request.method} {request.path} while stopping")
        with inflight.track():
            return await handler(request)

    return middleware


def new_turns(webhook_path: str | None) -> Callable[[web.Request], bool]:
    """What a stopping web app refuses: a new chat turn, and the bot's updates."""

    def refused(request: web.Request) -> bool:
        if request.method != "POST":
            return False
        return request.path == "/api/chat" or (
            webhook_path is not None and request.path == webhook_path
        )

    return refused
