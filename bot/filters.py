"""Magic filters (``F.text``, ``F.chat.type == "private"``) checked on the event loop.

aiogram runs a filter that is not a coroutine function in a worker thread (``asyncio.to_thread``),
once per update it is checked against, and a text message passes several routers' filters: a
thread handoff each, through the default executor's few threads, for checks that take
microseconds. Wrapped in ``on_loop`` a magic filter is an aiogram ``Filter`` (always awaited
directly) with the same result: falsy skips the handler, a dict is passed on to it as keyword
arguments."""

from __future__ import annotations

from typing import Any

from aiogram.filters import Filter
from aiogram.types import TelegramObject
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
