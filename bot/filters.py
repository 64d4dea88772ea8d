"""Magic filters (``F.text``, ``F.chat.type == "private"``) checked on the event loop.

aiogram runs a filter that is not a coroutine function in a worker thread (``asyncio.to_thread``),
once per update it is checked against, and a text message passes several routers' filters: a
thread handoff each, through the default executor's few threads, for checks that take
microseconds. Wrapped in ``on_loop`` a magic filter is an aiogram ``Filter`` (always awaited
directly) with the same result: falsy skips the handler, a dict is passed on to it as keyword
arguments."""

from __future__ import annotations

from typing import Any

from aiogram import Bot, filters
from aiogram.filters import Filter
from aiogram.types import Message, TelegramObject
from aiogram.utils.magic_filter import MagicFilter


class OnLoop(Filter):
    def __init__(self, magic: MagicFilter) -> None:
        self.magic = magic

    async def __call__(self, event: TelegramObject) -> Any:
        return self.magic.resolve(event)

    def __str__(self) -> str:
        return f"OnLoop({self.magic!r})"


def on_loop(magic: MagicFilter) -> OnLoop:
    return OnLoop(magic)


def _plainly_not_a_command(message: Message, prefix: str) -> bool:
    if not isinstance(message, Message):
        return False
    text = message.text or message.caption
    if not text:
        return False
    return text[0] not in prefix


class Command(filters.Command):
    """aiogram's ``Command``, answering at once for the text that is not a command at all. A
    plain message passes every command handler of every router on its way to the chat; the
    stock filter parses each time and raises and catches an exception to say no."""

    async def __call__(self, message: Message, bot: Bot) -> bool | dict[str, Any]:
        if _plainly_not_a_command(message, self.prefix):
            return False
        return await super().__call__(message, bot)


class CommandStart(filters.CommandStart):
    """aiogram's ``CommandStart``, with the same quick answer as ``Command``."""

    async def __call__(self, message: Message, bot: Bot) -> bool | dict[str, Any]:
        if _plainly_not_a_command(message, self.prefix):
            return False
        return await super().__call__(message, bot)
