"""Updates at least once, handled once: the aiogram side of the inbox (core/services/inbox.py).

Polling (``InboxPolling``) replaces aiogram's poll loop, whose generator advances the offset as
each update is yielded, before any handler ran. Here each ``getUpdates`` batch is recorded in
one transaction first; only then is the next offset (last + 1) asked for, which is what confirms
the batch to Telegram. A batch that cannot be recorded (Postgres away) is asked for again with
the same offset until it can. Webhook mode (``InboxWebhookHandler``) answers 200 only after the
update's row is committed, 503 when it could not be, so Telegram retries; there a handled row is
kept as its id for a day, so the update sent again (to this or another web process) is not
handled twice.

Recorded updates go to the unchanged dispatcher concurrently, one task each, as aiogram's
``handle_as_tasks`` does. A row is deleted when its handling ended, success or a logged error;
the deletes are gathered and sent as one statement every few milliseconds. A handler cut off by
a crash or by shutdown leaves its row, and rows left are handled at the next start, oldest first.
Handlers stay idempotent (payments by charge id), since a crash between a handler's commit and
its row's delete hands the update to them again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from aiogram import Bot, Dispatcher
from aiogram.methods import GetUpdates, TelegramMethod
from aiogram.types import Update
from aiogram.utils.backoff import Backoff, BackoffConfig
from aiogram.utils.i18n import I18n
from aiogram.webhook.aiohttp_server import SimpleRequestHandler
from aiohttp import web

from core import logs
from core.errors import ServiceUnavailable
from core.i18n import DOMAIN, LOCALES_DIR
from core.services import inbox
from db.engine import UnitOfWorkFactory

log = logging.getLogger(__name__)

BACKOFF = BackoffConfig(min_delay=0.5, max_delay=5.0, factor=1.3, jitter=0.1)
# Telegram waits this long for a pre-checkout answer, then fails the payment itself.
PRE_CHECKOUT_DEADLINE = timedelta(seconds=10)


class InboxRunner:
    """Feeds recorded updates to the dispatcher and deletes each row once handled."""

    def __init__(
        self,
        dp: Dispatcher,
        bot: Bot,
        uow_factory: UnitOfWorkFactory,
        *,
        flush_every: float = 0.005,
        drain_timeout: float = 30.0,
        keep_handled: bool = False,
    ) -> None:
        self.dp = dp
        # Webhook mode: handled rows are kept as their ids (core/services/inbox.py), so that a
        # redelivery to any web process is not handled again.
        self.keep_handled = keep_handled
        self.bot = bot
        self.uow_factory = uow_factory
        self.flush_every = flush_every
        self.drain_timeout = drain_timeout
        self._tasks: set[asyncio.Task[None]] = set()
        self._done: list[int] = []
        self._wake = asyncio.Event()
        self._flusher: asyncio.Task[None] | None = None

    @property
    def workflow(self) -> dict[str, Any]:
        return {"dispatcher": self.dp, "bots": (self.bot,), **self.dp.workflow_data}

    def start(self) -> None:
        if self._flusher is None:
            self._flusher = asyncio.create_task(self._flush_loop(), name="inbox-deletes")

    def handle(self, update: Update) -> None:
        task = asyncio.create_task(self._handle(update))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _handle(self, update: Update) -> None:
        # This task's own context: every line about the update names it, aiogram's too.
        logs.update_id.set(update.update_id)
        try:
            response = await self.dp.feed_update(self.bot, update, **self.workflow)
            if isinstance(response, TelegramMethod):
                await self.dp.silent_call_request(bot=self.bot, result=response)
        except Exception:
            # Handled, unsuccessfully: logged, and not retried for ever.
            log.exception("update %d failed", update.update_id)
        self._done.append(update.update_id)
        self._wake.set()

    async def handle_waiting(self, *, received_before: datetime | None = None) -> int:
        """Hand the rows a previous run left to the dispatcher, oldest first."""
        async with self.uow_factory() as uow:
            rows = await inbox.waiting(uow, received_before=received_before)
        now = datetime.now(UTC)
        for row in rows:
            if (
                "pre_checkout_query" in row.payload
                and now - row.received_at > PRE_CHECKOUT_DEADLINE
            ):
                # Too late to answer: Telegram has failed that payment already.
                self._done.append(row.update_id)
                continue
            try:
                update = Update.model_validate(row.payload, context={"bot": self.bot})
            except ValueError:
                log.exception("update %d in the inbox cannot be read; dropped", row.update_id)
                self._done.append(row.update_id)
                continue
            self.handle(update)
        self._wake.set()
        if rows:
            log.info("inbox: %d updates left by the last run handed to the dispatcher", len(rows))
        return len(rows)

    async def _flush_loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            await asyncio.sleep(self.flush_every)
            await self.flush()

    async def flush(self) -> None:
        if not self._done:
            return
        ids, self._done = self._done, []
        try:
            async with self.uow_factory() as uow:
                await inbox.forget(uow, ids, keep_ids=self.keep_handled)
        except asyncio.CancelledError:
            # Cut off mid-delete (``drain`` stops the loop): the final flush deletes them.
            self._done.extend(ids)
            raise
        except Exception:
            # Kept for the next flush; at worst a crash hands them to the dispatcher again.
            log.warning("inbox: %d handled rows not deleted yet", len(ids), exc_info=True)
            self._done.extend(ids)
            await asyncio.sleep(min(1.0, self.flush_every * 100))
            self._wake.set()

    async def drain(self) -> None:
        """Let the updates in hand finish (for ``drain_timeout`` at most; the rest keep their
        rows for the next start), then delete the rows of the finished ones."""
        if self._tasks:
            _, pending = await asyncio.wait(set(self._tasks), timeout=self.drain_timeout)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.gather(*pending, return_exceptions=True)
                log.warning("inbox: %d updates cut off; handled at the next start", len(pending))
        if self._flusher is not None:
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flusher
            self._flusher = None
        await self.flush()


class InboxPolling(InboxRunner):
    """Long polling that confirms a batch only after it is recorded."""

    def __init__(
        self,
        dp: Dispatcher,
        bot: Bot,
        uow_factory: UnitOfWorkFactory,
        *,
        polling_timeout: int = 10,
        **kwargs: Any,
    ) -> None:
        super().__init__(dp, bot, uow_factory, **kwargs)
        self.polling_timeout = polling_timeout
        self._loop: asyncio.Task[None] | None = None
        self._stopping = False
        self._i18n = I18n(path=LOCALES_DIR, default_locale="en", domain=DOMAIN)

    async def run(self) -> None:
        """Until ``stop()``: start-up hooks, the rows left by the last run, then the poll loop;
        on stop, the updates in hand are finished and the shutdown hooks run."""
        user = await self.bot.me()
        log.info("polling for @%s through the inbox", user.username)
        await self.dp.emit_startup(bot=self.bot, **self.workflow)
        self.start()
        try:
            await self.handle_waiting()
            if not self._stopping:
                self._loop = asyncio.create_task(self._poll(), name="inbox-poll")
                with contextlib.suppress(asyncio.CancelledError):
                    await self._loop
        finally:
            await self.drain()
            await self.dp.emit_shutdown(bot=self.bot, **self.workflow)

    def stop(self) -> None:
        """Stop asking for updates; what is recorded is still handled (see ``run``)."""
        self._stopping = True
        if self._loop is not None:
            # Safe at any point: a batch is either recorded (and handled now or at the next
            # start) or not, and then not confirmed either.
            self._loop.cancel()

    async def _poll(self) -> None:
        async with self.uow_factory() as uow:
            offset = await inbox.resume_offset(uow, bot_id=self.bot.id, now=datetime.now(UTC))
        get_updates = GetUpdates(
            offset=offset,
            timeout=self.polling_timeout,
            allowed_updates=self.dp.resolve_used_update_types(),
        )
        kwargs: dict[str, Any] = {}
        if self.bot.session.timeout:
            kwargs["request_timeout"] = int(self.bot.session.timeout + self.polling_timeout)
        backoff = Backoff(config=BACKOFF)
        while True:
            try:
                updates = await self.bot(get_updates, **kwargs)
            except Exception as exc:  # any failure: wait and ask again
                log.warning("getUpdates failed (%s: %s); retrying", type(exc).__name__, exc)
                await backoff.asleep()
                continue
            backoff.reset()
            if not updates:
                continue
            updates, new = await self._record(updates, backoff, get_updates, **kwargs)
            # Only now is the batch confirmed: the next request carries the new offset.
            get_updates.offset = updates[-1].update_id + 1
            for update in updates:
                if update.update_id in new:
                    self.handle(update)

    async def _record(
        self, updates: list[Update], backoff: Backoff, get_updates: GetUpdates, **kwargs: Any
    ) -> tuple[list[Update], set[int]]:
        """Record the batch (retrying until the database takes it); the batch recorded, which
        grows while the database is away, and the ids recorded for the first time."""
        told: set[int] = set()
        failed = False
        while True:
            raw = [u.model_dump(mode="json", by_alias=True, exclude_unset=True) for u in updates]
            try:
                async with self.uow_factory() as uow:
                    return updates, await inbox.record(uow, raw, bot_id=self.bot.id)
            except Exception:
                if not failed:
                    log.warning("inbox: updates not recorded; retrying", exc_info=True)
                failed = True
            # The updates stay with Telegram until the database is back, and are answered
            # then; meanwhile everyone who writes is told, once, to wait a moment.
            await self._ask_to_wait([u for u in updates if u.update_id not in told])
            told.update(u.update_id for u in updates)
            await backoff.asleep()
            peek = GetUpdates(
                offset=get_updates.offset, timeout=0, allowed_updates=get_updates.allowed_updates
            )
            with contextlib.suppress(Exception):
                # The same offset confirms nothing: the batch so far and what came since.
                updates = await self.bot(peek, **kwargs) or updates

    async def _ask_to_wait(self, updates: list[Update]) -> None:
        chats: dict[int, str] = {}
        for update in updates:
            message = update.message
            if message is None or message.chat.type != "private" or message.from_user is None:
                continue
            language = message.from_user.language_code or ""
            chats[message.chat.id] = "ru" if language.startswith("ru") else "en"
        for chat_id, language in chats.items():
            text = self._i18n.gettext(ServiceUnavailable.msgid, locale=language)
            try:
                await self.bot.send_message(chat_id, text)
            except Exception as exc:  # Telegram may be the one away: nothing more to do
                log.info("inbox: chat %s not told to wait: %s", chat_id, type(exc).__name__)


class InboxWebhookHandler(SimpleRequestHandler):
    """aiogram's webhook handler, answering 200 only once the update is recorded."""

    def __init__(
        self,
        dispatcher: Dispatcher,
        bot: Bot,
        uow_factory: UnitOfWorkFactory,
        *,
        secret_token: str | None = None,
    ) -> None:
        super().__init__(dispatcher=dispatcher, bot=bot, secret_token=secret_token)
        self.runner = InboxRunner(dispatcher, bot, uow_factory, keep_handled=True)
        self.started_at = datetime.now(UTC)

    async def resume(self) -> int:
        """After the dispatcher's start-up: the rows left by an earlier run."""
        self.runner.start()
        return await self.runner.handle_waiting(received_before=self.started_at)

    async def _handle_request_background(self, bot: Bot, request: web.Request) -> web.Response:
        try:
            raw = await request.json(loads=bot.session.json_loads)
            if not isinstance(raw, Mapping) or not isinstance(raw.get("update_id"), int):
                return web.json_response({"error": "not an update"}, status=400)
            update = Update.model_validate(raw, context={"bot": bot})
        except ValueError:
            return web.json_response({"error": "not an update"}, status=400)
        try:
            async with self.runner.uow_factory() as uow:
                new = await inbox.record(uow, [raw])
        except Exception:
            log.exception("update %s not recorded; Telegram will send it again", raw["update_id"])
            return web.json_response({"error": "not recorded"}, status=503)
        self.runner.start()
        if update.update_id in new:
            self.runner.handle(update)
        return web.json_response({}, dumps=bot.session.json_dumps)

    async def close(self) -> None:
        await self.runner.drain()
