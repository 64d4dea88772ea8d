"""Relaying a model's stream into Telegram without ever breaking.

The provider stream is read as fast as it comes; a separate sender shows the newest state at a
steady pace, so Telegram's limits never slow the provider down and deltas coalesce on their own:
drafts (``sendMessageDraft``) in private chats, edits of one message in groups. Previews are
droppable (``bot.pacing``): when the send budget is short they are skipped and the next one
carries the newer text; a 429 on a preview pauses previews, never the end of the reply.
Identical text is never re-sent (no "message is not modified"). The final reply is rendered
once, from the whole text, split at 4096 characters without breaking formatting, and sent on
the must-deliver path: ``Outcome.delivered`` is True only when every part reached the chat.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

from aiogram import Bot
from aiogram.exceptions import TelegramAPIError, TelegramBadRequest, TelegramRetryAfter
from aiogram.types import InlineKeyboardMarkup

from bot.pacing import Dropped, droppable
from bot.rendering import html_to_plain, render_draft, render_markdown, split_html
from core.errors import DomainError
from core.providers.base import (
    Finished,
    ReasoningDelta,
    StreamEvent,
    TextDelta,
    Usage,
    UsageReport,
)

log = logging.getLogger(__name__)

DRAFT_INTERVAL = 0.4  # private chats: drafts are cheap and animated
EDIT_INTERVAL = 3.0  # groups: 20 messages a minute, edits included
MAX_INTERVAL = 6.0  # previews backing off while the send budget is short
REASONING_SHOWN = 1500
# Private chats: a reply still streaming after this long gets a message with a Stop button.
STOP_AFTER = 1.0
THINKING_AFTER = 0.3


@dataclass
class Outcome:
    text: str = ""
    reasoning: str = ""
    usage: Usage | None = None
    status: str = "complete"
    error: DomainError | None = None
    finish_reason: str | None = None
    # Every part of the final reply reached the chat (False: the chat is gone, or Telegram
    # would not take it).
    delivered: bool = False


@dataclass
class _Live:
    text: str = ""
    reasoning: str = ""
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    done: bool = False


class Relay:
    """One reply on its way to one chat."""

    def __init__(
        self,
        bot: Bot,
        chat_id: int,
        *,
        private: bool,
        reply_to: int | None = None,
        show_reasoning: bool = False,
        stop_markup: InlineKeyboardMarkup | None = None,
        thinking_text: str = "…",
        should_stop: Callable[[], Awaitable[bool]] | None = None,
        final_markup: InlineKeyboardMarkup | None = None,
    ) -> None:
        self.bot = bot
        self.chat_id = chat_id
        self.private = private
        self.reply_to = reply_to
        self.show_reasoning = show_reasoning
        self.stop_markup = stop_markup
        self.thinking_text = thinking_text
        self.should_stop = should_stop
        # Buttons under the last part of the final reply, and that part's message id.
        self.final_markup = final_markup
        self.final_id: int | None = None
        self.live = _Live()
        self.draft_id = random.randint(1, 2**31 - 1)  # nosec B311 # a draft's id, no secret
        # Groups: the message being edited; private chats: the message holding the Stop button.
        self.anchor_id: int | None = None
        self.last_shown = ""
        self._finished = asyncio.Event()

    async def run(self, events: AsyncIterator[StreamEvent]) -> Outcome:
        outcome = Outcome()
        await self._open()
        sender = asyncio.create_task(self._send_loop())
        stopper = (
            asyncio.create_task(self._offer_stop())
            if self.private and self.stop_markup is not None
            else None
        )
        try:
            async with contextlib.aclosing(events) as stream:  # type: ignore[type-var]
                # Checked a little after the start and then a few times a second: a quick reply
                # costs no check at all.
                last_check = time.monotonic()
                async for event in stream:
                    if isinstance(event, TextDelta):
                        self.live.text += event.text
                        self.live.changed.set()
                    elif isinstance(event, ReasoningDelta):
                        self.live.reasoning += event.text
                        self.live.changed.set()
                    elif isinstance(event, UsageReport):
                        outcome.usage = event.usage
                    elif isinstance(event, Finished):
                        outcome.finish_reason = str(event.reason)
                    now = time.monotonic()
                    if self.should_stop is not None and now - last_check > 0.25:
                        last_check = now
                        if await self.should_stop():
                            outcome.status = "stopped"
                            break
        except DomainError as exc:
            outcome.status = "failed"
            outcome.error = exc
        except Exception as exc:
            # Anything unforeseen still ends the turn properly: what arrived is kept and billed,
            # the rest of the hold is released.
            log.exception("chat %s: the stream failed", self.chat_id)
            outcome.status = "failed"
            outcome.error = DomainError(type(exc).__name__)
        finally:
            self.live.done = True
            self.live.changed.set()
            self._finished.set()
            if stopper is not None:
                stopper.cancel()
                with contextlib.suppress(BaseException):
                    await stopper
            with contextlib.suppress(Exception):
                await sender
        outcome.text = self.live.text
        outcome.reasoning = self.live.reasoning
        try:
            await self._close(outcome)
            outcome.delivered = True
        except TelegramAPIError as exc:
            # The user blocked the bot, the chat went away or Telegram kept refusing: the
            # caller stores the turn as undelivered.
            log.warning("chat %s: the final reply was not delivered: %s", self.chat_id, exc)
        return outcome

    async def finish_early(self, note: str | None = None) -> Outcome:
        """The stream was cancelled before it ended (``run`` did not return): what arrived
        becomes the final reply, with ``note`` under it. The Outcome holds what was written,
        without the note; its status is "stopped"."""
        self.live.done = True
        self.live.changed.set()
        self._finished.set()
        outcome = Outcome(text=self.live.text, reasoning=self.live.reasoning, status="stopped")
        shown = Outcome(
            text=f"{outcome.text}\n\n*{note}*" if note and outcome.text else outcome.text,
            reasoning=outcome.reasoning,
        )
        await self._close(shown)
        if note and not outcome.text:
            await self.bot.send_message(self.chat_id, note, parse_mode=None)
        # Here only when every part reached the chat (a refusal raises).
        outcome.delivered = True
        return outcome

    # --- while streaming --------------------------------------------------------------------

    async def _open(self) -> None:
        try:
            if not self.private:
                sent = await self.bot.send_message(
                    self.chat_id,
                    self.thinking_text,
                    reply_markup=self.stop_markup,
                    reply_to_message_id=self.reply_to,
                )
                self.anchor_id = sent.message_id
        except TelegramAPIError as exc:
            log.warning("chat %s: could not open the reply: %s", self.chat_id, exc)

    async def _offer_stop(self) -> None:
        """Drafts cannot carry buttons: a reply that takes a while gets a small message with
        Stop, removed when the reply is complete. Quick replies never need one."""
        await asyncio.sleep(STOP_AFTER)
        while not self.live.done:
            try:
                # Optional, like a preview: under a short budget it waits for room.
                with droppable():
                    sent = await self.bot.send_message(
                        self.chat_id, self.thinking_text, reply_markup=self.stop_markup
                    )
            except Dropped:
                await asyncio.sleep(STOP_AFTER)
                continue
            except TelegramAPIError as exc:
                log.info("chat %s: no Stop button: %s", self.chat_id, exc)
                return
            self.anchor_id = sent.message_id
            return

    def _preview(self) -> str:
        if self.live.text:
            return render_draft(self.live.text)
        if self.live.reasoning and self.show_reasoning:
            return render_draft("🤔 " + self.live.reasoning[-REASONING_SHOWN:])
        return ""

    async def _send_loop(self) -> None:
        base = DRAFT_INTERVAL if self.private else EDIT_INTERVAL
        interval = base
        if self.private:
            # A model slow to start gets Telegram's "Thinking…" (an empty draft); a quick one
            # goes straight to its reply.
            try:
                await asyncio.wait_for(self.live.changed.wait(), THINKING_AFTER)
            except TimeoutError:
                with contextlib.suppress(TelegramAPIError):
                    await self.bot.send_message_draft(
                        chat_id=self.chat_id, draft_id=self.draft_id, text=""
                    )
        while not self.live.done:
            await self.live.changed.wait()
            self.live.changed.clear()
            if self.live.done:
                break
            html = self._preview()
            if html and html != self.last_shown and html_to_plain(html).strip():
                try:
                    await self._show(html)
                    self.last_shown = html
                    interval = base
                except Dropped:
                    # No room now: try again later, with whatever is newest then; while the
                    # budget stays short, less often, so no time goes on rendering in vain.
                    self.live.changed.set()
                    interval = min(interval * 2, MAX_INTERVAL)
                except TelegramRetryAfter as exc:
                    self.live.changed.set()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._finished.wait(), exc.retry_after)
                except TelegramAPIError as exc:
                    log.info("chat %s: preview not shown: %s", self.chat_id, exc)
            # Pace the previews, but never hold up the end of the reply.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._finished.wait(), interval)

    async def _show(self, html: str) -> None:
        with droppable(first=not self.last_shown):
            await self._show_preview(html)

    async def _show_preview(self, html: str) -> None:
        if self.private:
            await self.bot.send_message_draft(
                chat_id=self.chat_id, draft_id=self.draft_id, text=html, parse_mode="HTML"
            )
        elif self.anchor_id is not None:
            await self.bot.edit_message_text(
                html,
                chat_id=self.chat_id,
                message_id=self.anchor_id,
                parse_mode="HTML",
                reply_markup=self.stop_markup,
            )

    # --- the final reply --------------------------------------------------------------------

    def _final_html(self, outcome: Outcome) -> str:
        body = render_markdown(outcome.text) if outcome.text.strip() else ""
        if self.show_reasoning and outcome.reasoning.strip():
            thought = render_markdown(outcome.reasoning[-REASONING_SHOWN:])
            # Collapsed until tapped: the answer, not the thinking, is what is read first.
            quote = f"<blockquote expandable>🤔 {thought}</blockquote>"
            body = quote + (f"\n\n{body}" if body else "")
        return body

    async def _close(self, outcome: Outcome) -> None:
        html = self._final_html(outcome)
        parts = split_html(html) if html else []
        first = 0
        last = len(parts) - 1
        if not self.private and self.anchor_id is not None:
            if parts:
                await self._edit_final(parts[0], self.final_markup if last == 0 else None)
                first = 1
            else:
                with contextlib.suppress(TelegramAPIError):
                    await self.bot.delete_message(self.chat_id, self.anchor_id)
        for index in range(first, len(parts)):
            await self._send_final(parts[index], self.final_markup if index == last else None)
        if self.private and self.anchor_id is not None:
            with contextlib.suppress(TelegramAPIError):
                await self.bot.delete_message(self.chat_id, self.anchor_id)

    async def _edit_final(self, html: str, markup: InlineKeyboardMarkup | None) -> None:
        try:
            await self.bot.edit_message_text(
                html,
                chat_id=self.chat_id,
                message_id=self.anchor_id,
                parse_mode="HTML",
                reply_markup=markup,
            )
            self.final_id = self.anchor_id
        except TelegramBadRequest as exc:
            if "message is not modified" in str(exc):
                # Same text, but the Stop button must go.
                with contextlib.suppress(TelegramAPIError):
                    await self.bot.edit_message_reply_markup(
                        chat_id=self.chat_id, message_id=self.anchor_id, reply_markup=markup
                    )
                self.final_id = self.anchor_id
            else:
                await self._send_final(html, markup)

    async def _send_final(self, html: str, markup: InlineKeyboardMarkup | None = None) -> None:
        try:
            sent = await self.bot.send_message(
                self.chat_id,
                html,
                parse_mode="HTML",
                reply_to_message_id=self.reply_to if not self.private else None,
                reply_markup=markup,
            )
        except TelegramBadRequest:
            # Rendering is built never to fail; if Telegram disagrees, the text still arrives.
            log.exception("chat %s: formatted reply refused; sending plain text", self.chat_id)
            plain = html_to_plain(html)[:4096]
            sent = await self.bot.send_message(
                self.chat_id, plain, parse_mode=None, reply_markup=markup
            )
        self.final_id = sent.message_id
