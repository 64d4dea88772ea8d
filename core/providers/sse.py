"""Server-sent events read from an httpx response.

A small parser of our own: no maintained SSE library is among the project's dependencies
(``httpx-sse`` is not), and the part of the WHATWG event-stream format providers use is short.
It follows the spec's field rules (``data`` lines joined by newlines, one optional space after the
colon, comments ignored, an event dispatched on a blank line and only when it has data) and
accepts LF, CRLF and CR line ends through httpx's line decoder. ``retry`` is ignored on purpose:
we never reconnect, since reconnecting would start a new, separately billed generation.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ServerSentEvent:
    event: str
    data: str
    id: str | None = None


async def iter_sse(lines: AsyncIterator[str]) -> AsyncIterator[ServerSentEvent]:
    """Events from decoded lines. An incomplete event at the end of the stream is dropped, as
    the spec says; callers detect a cut stream by the provider's own end marker."""
    event = ""
    data: list[str] = []
    last_id: str | None = None
    async for raw in lines:
        line = raw.rstrip("\r\n")
        if not line:
            if data:
                yield ServerSentEvent(event or "message", "\n".join(data), last_id)
            event, data = "", []
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        if value.startswith(" "):
            value = value[1:]
        if name == "data":
            data.append(value)
        elif name == "event":
            event = value
        elif name == "id" and "\0" not in value:
            last_id = value
