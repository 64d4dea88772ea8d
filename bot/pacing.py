"""Pacing every Bot API call of one bot, so Telegram's flood limits are met rather than hit.

Invariants:

- One pacer per ``Bot``, installed on its session by ``bot.factory.create_bot``. Its budgets are
  token buckets: one per chat (private chats about one message a second, groups 20 a minute),
  one for the whole bot (about 30 messages a second), and one per chat for drafts.
- A call is droppable when it is a ``sendMessageDraft`` or is made inside ``droppable()`` (a
  streaming preview). It goes only if its budgets have room beyond a reserve kept for calls
  that must arrive, and never ahead of one that waits; otherwise it raises ``Dropped`` at once
  and costs nothing. Previews other than a reply's first also share one bot-wide preview
  budget, so under load the first texts and the final replies go first. A 429 on a preview
  is not retried: the next preview carries newer text anyway.
- Every other call must arrive. It waits for its budgets, first come first served; on 429 it
  waits the ``retry_after`` Telegram names and tries again, for as long as that takes; a server
  error or a lost connection is retried with a capped back-off for ``patience`` seconds (a
  connection lost after Telegram took the message may show it twice: better than never). It
  ends only when delivered, or with the error when the chat is gone (403: blocked, kicked,
  deactivated; 400 chat not found) or Telegram refuses the request itself (any other 4xx).
- Calls that put nothing into a chat (getUpdates, answerCallbackQuery, deleteMessage, ...) take
  no budget; a 429 on them is waited out too.
- After a 429 the chat's budget is closed until ``retry_after`` has passed, so the calls
  queued behind it wait instead of hitting the limit again.

The budgets live in this process. Several processes sending as one bot each keep their own, so
their sum may exceed the limits; the must-deliver path then absorbs the 429s.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, fields

from aiogram import Bot
from aiogram.client.session.middlewares.base import BaseRequestMiddleware, NextRequestMiddlewareType
from aiogram.exceptions import (
    TelegramAPIError,
    TelegramEntityTooLarge,
    TelegramNetworkError,
    TelegramRetryAfter,
    TelegramServerError,
)
from aiogram.methods import TelegramMethod
from aiogram.methods.base import Response, TelegramType

log = logging.getLogger(__name__)

# None: must deliver; "first": a reply's first preview; "later": any other preview.
_droppable: contextvars.ContextVar[str | None] = contextvars.ContextVar("droppable", default=None)


@contextlib.contextmanager
def droppable(*, first: bool = False) -> Iterator[None]:
    """Calls made inside may be dropped when the budget is short (previews, not replies). A
    reply's first preview (``first``) is not held to the bot-wide preview budget: the time to
    the first text is what people wait on."""
    token = _droppable.set("first" if first else "later")
    try:
        yield
    finally:
        _droppable.reset(token)


class Dropped(TelegramAPIError):
    """A droppable call was not sent: the budget is kept for messages that must arrive."""


@dataclass(frozen=True)
class Limits:
    private_rate: float = 1.0
    private_burst: float = 3.0
    group_rate: float = 20.0 / 60.0
    group_burst: float = 5.0
    global_rate: float = 28.0
    global_burst: float = 28.0
    draft_rate: float = 5.0
    draft_burst: float = 10.0
    # All previews after a reply's first, drafts and edits, across every chat: under load the
    # process spends its time on first texts and final replies, not on the hundredth update.
    preview_rate: float = 40.0
    preview_burst: float = 40.0
    # Budget left to must-deliver calls: previews never take the last of these.
    chat_reserve: float = 1.0
    global_reserve: float = 4.0

    @classmethod
    def unlimited(cls) -> Limits:
        """For a Telegram without flood limits (a benchmark's sandbox): nothing waits."""
        rates = {f.name: 1e9 for f in fields(cls) if f.name.endswith(("_rate", "_burst"))}
        return cls(**rates, chat_reserve=0.0, global_reserve=0.0)


class Bucket:
    """A token bucket kept as its theoretical arrival time (GCRA): a call may go at
    ``tat - tolerance``; taking one moves ``tat`` one interval on. Reservations made ahead of
    time queue up in the order they were made."""

    def __init__(self, rate: float, burst: float) -> None:
        self.interval = 1.0 / rate
        self.tolerance = max(0.0, burst - 1.0) * self.interval
        self.tat = 0.0

    def free_at(self, now: float) -> float:
        return max(now, self.tat - self.tolerance)

    def has_room(self, now: float, keep: float) -> bool:
        return self.tat + keep * self.interval - self.tolerance <= now

    def take(self, at: float) -> None:
        self.tat = max(self.tat, at) + self.interval

    def close_until(self, at: float) -> None:
        self.tat = max(self.tat, at + self.tolerance)


# Methods that put something into a chat and count against its flood limits.
_SENDING_PREFIXES = ("send", "edit", "copy", "forward")
_NOT_SENDING = frozenset({"sendChatAction"})
DRAFT_METHOD = "sendMessageDraft"


def _is_sending(name: str) -> bool:
    return name.startswith(_SENDING_PREFIXES) and name not in _NOT_SENDING


class SendPacer(BaseRequestMiddleware):
    """The bot's shared send budget (see the module docstring)."""

    def __init__(
        self,
        limits: Limits | None = None,
        *,
        patience: float = 600.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limits = limits or Limits()
        self.patience = patience
        self.clock = clock
        self.global_bucket = Bucket(self.limits.global_rate, self.limits.global_burst)
        self.preview_bucket = Bucket(self.limits.preview_rate, self.limits.preview_burst)
        self.chats: dict[int | str, Bucket] = {}
        self.drafts: dict[int | str, Bucket] = {}
        self.dropped = 0
        self.waited_429 = 0

    def _chat_bucket(self, chat_id: int | str) -> Bucket:
        bucket = self.chats.get(chat_id)
        if bucket is None:
            lim = self.limits
            private = isinstance(chat_id, int) and chat_id > 0
            bucket = (
                Bucket(lim.private_rate, lim.private_burst)
                if private
                else Bucket(lim.group_rate, lim.group_burst)
            )
            self.chats[chat_id] = bucket
        return bucket

    def _draft_bucket(self, chat_id: int | str) -> Bucket:
        bucket = self.drafts.get(chat_id)
        if bucket is None:
            bucket = Bucket(self.limits.draft_rate, self.limits.draft_burst)
            self.drafts[chat_id] = bucket
        return bucket

    def _budgets(self, name: str, chat_id: int | str | None) -> list[tuple[Bucket, float]]:
        """The buckets a call draws on, each with the reserve a preview must leave in it."""
        if not _is_sending(name):
            return []
        if name == DRAFT_METHOD and chat_id is not None:
            return [(self._draft_bucket(chat_id), 0.0)]
        budgets = [(self.global_bucket, self.limits.global_reserve)]
        if chat_id is not None:
            budgets.insert(0, (self._chat_bucket(chat_id), self.limits.chat_reserve))
        return budgets

    async def __call__(
        self,
        make_request: NextRequestMiddlewareType[TelegramType],
        bot: Bot,
        method: TelegramMethod[TelegramType],
    ) -> Response[TelegramType]:
        name = method.__api_method__
        chat_id = getattr(method, "chat_id", None)
        if chat_id is not None and not isinstance(chat_id, int | str):
            chat_id = None
        budgets = self._budgets(name, chat_id)
        kind = _droppable.get()
        if kind is not None or name == DRAFT_METHOD:
            if kind != "first" and budgets:
                budgets.append((self.preview_bucket, 0.0))
            return await self._try_once(make_request, bot, method, budgets, chat_id)
        return await self._deliver(make_request, bot, method, budgets, chat_id)

    async def _try_once(
        self,
        make_request: NextRequestMiddlewareType[TelegramType],
        bot: Bot,
        method: TelegramMethod[TelegramType],
        budgets: list[tuple[Bucket, float]],
        chat_id: int | str | None,
    ) -> Response[TelegramType]:
        now = self.clock()
        if not all(bucket.has_room(now, keep) for bucket, keep in budgets):
            self.dropped += 1
            raise Dropped(method, "over the send budget; dropped")
        for bucket, _keep in budgets:
            bucket.take(now)
        try:
            return await make_request(bot, method)
        except TelegramRetryAfter as exc:
            self._close(budgets, exc.retry_after)
            raise

    async def _deliver(
        self,
        make_request: NextRequestMiddlewareType[TelegramType],
        bot: Bot,
        method: TelegramMethod[TelegramType],
        budgets: list[tuple[Bucket, float]],
        chat_id: int | str | None,
    ) -> Response[TelegramType]:
        started = self.clock()
        backoff = 0.5
        while True:
            await self._wait_turn(budgets)
            try:
                return await make_request(bot, method)
            except TelegramRetryAfter as exc:
                self.waited_429 += 1
                log.info(
                    "flood control on %s to %s: waiting %ss",
                    method.__api_method__,
                    chat_id,
                    exc.retry_after,
                )
                self._close(budgets, exc.retry_after)
                if not budgets:
                    await asyncio.sleep(exc.retry_after)
            except TelegramEntityTooLarge:
                raise
            except (TelegramServerError, TelegramNetworkError) as exc:
                if self.clock() - started + backoff > self.patience:
                    raise
                log.warning(
                    "%s to %s failed (%s); retrying in %.1fs",
                    method.__api_method__,
                    chat_id,
                    exc,
                    backoff,
                )
                # Jitter spreads retries out; nothing secret depends on it.
                await asyncio.sleep(backoff * (0.5 + random.random()))  # nosec B311
                backoff = min(backoff * 2, 30.0)

    async def _wait_turn(self, budgets: list[tuple[Bucket, float]]) -> None:
        """Reserve a slot in each bucket in turn and sleep until it comes: the chat's first, so
        a chat that must wait holds no place in the bot's shared queue meanwhile."""
        for bucket, _keep in budgets:
            now = self.clock()
            at = bucket.free_at(now)
            bucket.take(at)
            if at > now:
                await asyncio.sleep(at - now)

    def _close(self, budgets: list[tuple[Bucket, float]], retry_after: float) -> None:
        until = self.clock() + retry_after
        if budgets:
            # The chat's own limit, or the bot's when the call has no chat.
            budgets[0][0].close_until(until)
