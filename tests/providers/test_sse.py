"""The SSE parser follows the event-stream rules providers rely on."""

from __future__ import annotations

from collections.abc import AsyncIterator

from core.providers.sse import ServerSentEvent, iter_sse


async def parse(*lines: str) -> list[ServerSentEvent]:
    async def source() -> AsyncIterator[str]:
        for line in lines:
            yield line

    return [event async for event in iter_sse(source())]


async def test_data_lines_of_one_event_are_joined_with_newlines() -> None:
    events = await parse("event: delta", "data: first", "data:second", "", "data: x", "")

    assert events == [
        ServerSentEvent("delta", "first\nsecond"),
        ServerSentEvent("message", "x"),
    ]


async def test_comments_and_events_without_data_are_skipped() -> None:
    events = await parse(": keep-alive", "", "event: ping", "", "id: 7", "data: {}", "")

    assert events == [ServerSentEvent("message", "{}", "7")]


async def test_crlf_line_ends_are_accepted() -> None:
    events = await parse("data: a\r\n", "\r\n", "data: b\r", "\r")

    assert [e.data for e in events] == ["a", "b"]


async def test_an_unterminated_last_event_is_dropped() -> None:
    events = await parse("data: complete", "", "data: cut off")

    assert [e.data for e in events] == ["complete"]
