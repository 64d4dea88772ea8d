"""Inline answers being written, remembered so that none reads "writing…" for ever.

An inline answer is written into a message in someone else's chat, which only the process
writing it knows about. If that process dies (``kill -9``, a crash, the machine gone) the
message would say "✍️ … is writing…" for ever, while the hold behind it comes back through
``core.owners``. So:

- before the turn starts, the message is entered in one Redis hash (``OPEN``) with the owner id
  of the process writing it, the question and the asker's language; the entry goes when the
  turn is over, whatever its end (answered, failed, refused, cut short by a drain);
- every bot process sweeps that hash at start-up and then every ``SWEEP_EVERY`` seconds: an
  entry whose owner has no heartbeat any more is an answer nobody is writing, and its message is
  edited to say so and to ask again, then the entry is removed. A message that cannot be
  edited any more (deleted, too old) is forgotten too; a network failure keeps the entry for the
  next sweep. Two sweepers may both edit one message: the second edit changes nothing.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from html import escape

from aiogram import Bot
from aiogram.exceptions import TelegramBadRequest, TelegramForbiddenError
from aiogram.types import InlineKeyboardMarkup, LinkPreviewOptions
from aiogram.utils.i18n import I18n
from redis.asyncio import Redis

from core import owners
from core.i18n import N_

log = logging.getLogger(__name__)

OPEN = "netroom:inline:open"
SWEEP_EVERY = 30.0
NOTICE = N_("⚠️ No answer: the service restarted while writing it. Please ask again.")


@dataclass(frozen=True, slots=True)
class OpenAnswer:
    inline_message_id: str
    owner: str
    question: str
    language: str
    since: float


async def remember(
    redis: Redis, inline_message_id: str, *, owner: str, question: str, language: str
) -> None:
    entry = {"owner": owner, "question": question, "language": language, "since": time.time()}
    await redis.hset(OPEN, inline_message_id, json.dumps(entry))  # type: ignore[misc]


async def forget(redis: Redis, inline_message_id: str) -> None:
    await redis.hdel(OPEN, inline_message_id)  # type: ignore[misc]


async def open_answers(redis: Redis) -> list[OpenAnswer]:
    raw: dict[bytes, bytes] = await redis.hgetall(OPEN)  # type: ignore[misc]
    found = []
    for key, value in raw.items():
        try:
            entry = json.loads(value)
            found.append(
                OpenAnswer(
                    key.decode(),
                    str(entry["owner"]),
                    str(entry["question"]),
                    str(entry.get("language") or "en"),
                    float(entry.get("since") or 0),
                )
            )
        except (ValueError, KeyError, TypeError):
            log.warning("unreadable open inline answer %r dropped", key)
            await redis.hdel(OPEN, key.decode(errors="replace"))  # type: ignore[misc]
    return found


async def sweep(
    bot: Bot,
    redis: Redis,
    i18n: I18n,
    *,
    render: Callable[[str, str], str],
    keyboard: Callable[[], Awaitable[InlineKeyboardMarkup | None]],
) -> int:
    """Tell the askers whose answers nobody is writing any more; how many were told.
    ``render(question, notice)`` is the message's HTML; ``keyboard()`` its buttons, made in
    the asker's language."""
    found = await open_answers(redis)
    if not found:
        return 0
    living = await owners.alive(redis, sorted({a.owner for a in found}))
    told = 0
    for answer in found:
        if answer.owner in living:
            continue
        with i18n.context(), i18n.use_locale(answer.language):
            notice = i18n.gettext(NOTICE)
            markup = await keyboard()
        try:
            await bot.edit_message_text(
                inline_message_id=answer.inline_message_id,
                text=render(answer.question, escape(notice)),
                reply_markup=markup,
                link_preview_options=LinkPreviewOptions(is_disabled=True),
            )
            told += 1
        except (TelegramBadRequest, TelegramForbiddenError) as exc:
            # Gone, too old or already saying so: nothing more to tell.
            log.info("open inline answer %s not edited: %s", answer.inline_message_id, exc)
        await forget(redis, answer.inline_message_id)
    if told:
        log.info("told %d askers that their inline answers were cut short by a restart", told)
    return told


async def keep_sweeping(
    bot: Bot,
    redis: Redis,
    i18n: I18n,
    *,
    render: Callable[[str, str], str],
    keyboard: Callable[[], Awaitable[InlineKeyboardMarkup | None]],
    every: float = SWEEP_EVERY,
) -> None:
    """Sweep at once and then every ``every`` seconds, until cancelled. A failure (Redis or
    Telegram away) is logged and retried at the next round."""
    while True:
        try:
            await sweep(bot, redis, i18n, render=render, keyboard=keyboard)
        except Exception:
            log.warning("open inline answers not swept; retrying later", exc_info=True)
        await asyncio.sleep(every)
