"""The sandbox's inline mode answers as Telegram does: an inline query is answered once and in
time, results are checked, a sent result with a keyboard can be edited by its
``inline_message_id`` (the edit answers True), one without cannot be."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from sandbox.app import SandboxServer, start_sandbox
from sandbox.client import SandboxClient, SandboxError
from sandbox.telegram import TelegramOptions


@pytest.fixture(scope="module")
async def sandbox() -> AsyncIterator[SandboxServer]:
    server = await start_sandbox(options=TelegramOptions(inline_query_ttl=1.0))
    yield server
    await server.stop()


@pytest.fixture
async def api(sandbox: SandboxServer) -> AsyncIterator[Any]:
    token = f"{secrets.randbelow(10**9) + 10**9}:{secrets.token_urlsafe(27)}"
    async with httpx.AsyncClient(base_url=f"{sandbox.url}/bot{token}/", timeout=30) as http:

        async def call(method: str, **params: Any) -> httpx.Response:
            return await http.post(method, json=params)

        call.token = token  # type: ignore[attr-defined]
        yield call


@pytest.fixture
async def client(sandbox: SandboxServer) -> AsyncIterator[SandboxClient]:
    async with SandboxClient(sandbox.url) as c:
        yield c


def _article(result_id: str, *, keyboard: bool = True) -> dict[str, Any]:
    result: dict[str, Any] = {
        "type": "article",
        "id": result_id,
        "title": "Ask",
        "input_message_content": {"message_text": "<b>Question</b>", "parse_mode": "HTML"},
    }
    if keyboard:
        result["reply_markup"] = {
            "inline_keyboard": [[{"text": "Open", "url": "https://t.me/x_bot?start=inline"}]]
        }
    return result


async def _query(client: SandboxClient, api: Any, text: str = "hi") -> tuple[dict, str]:
    await api("getMe")
    await client.register_bot(api.token)
    user = await client.create_user("Ina")
    sent = await client.inline_query(user["id"], text)
    return user, str(sent["inline_query_id"])


async def test_an_inline_query_reaches_the_bot_and_is_answered_once(
    client: SandboxClient, api: Any
) -> None:
    user, query_id = await _query(client, api, "capital of France")
    [update] = (await api("getUpdates")).json()["result"]
    assert update["inline_query"] == {
        "id": query_id,
        "from": update["inline_query"]["from"],
        "query": "capital of France",
        "offset": "",
    }
    assert update["inline_query"]["from"]["id"] == user["id"]
    first = await api("answerInlineQuery", inline_query_id=query_id, results=[_article("a")])
    assert first.json() == {"ok": True, "result": True}
    again = await api("answerInlineQuery", inline_query_id=query_id, results=[_article("a")])
    assert again.status_code == 400
    assert "query is too old" in again.json()["description"]
    answer = await client.inline_answer(query_id)
    assert answer is not None and answer["results"][0]["id"] == "a"


async def test_duplicate_result_ids_and_a_late_answer_are_refused(
    client: SandboxClient, api: Any
) -> None:
    _, query_id = await _query(client, api)
    twice = await api(
        "answerInlineQuery", inline_query_id=query_id, results=[_article("a"), _article("a")]
    )
    assert twice.json()["description"] == "Bad Request: RESULT_ID_DUPLICATE"
    _, late_id = await _query(client, api)
    await asyncio.sleep(1.2)
    late = await api("answerInlineQuery", inline_query_id=late_id, results=[_article("a")])
    assert "query is too old" in late.json()["description"]


async def test_a_sent_result_with_a_keyboard_is_edited_by_its_inline_message_id(
    client: SandboxClient, api: Any
) -> None:
    user, query_id = await _query(client, api, "q")
    await api(
        "answerInlineQuery",
        inline_query_id=query_id,
        results=[_article("k"), _article("plain", keyboard=False)],
    )
    sent = await client.choose_inline_result(query_id, "k")
    assert sent["message"]["text"] == "Question"
    assert sent["message"]["via_bot"]["is_bot"] is True
    chosen = [u for u in (await api("getUpdates")).json()["result"] if "chosen_inline_result" in u]
    assert chosen[-1]["chosen_inline_result"]["inline_message_id"] == sent["inline_message_id"]
    edited = await api(
        "editMessageText", inline_message_id=sent["inline_message_id"], text="Answer"
    )
    assert edited.json() == {"ok": True, "result": True}
    transcript = await client.transcript(user["id"])
    [message] = [
        m for m in transcript["messages"] if m["message_id"] == sent["message"]["message_id"]
    ]
    assert message["text"] == "Answer"

    plain = await client.choose_inline_result(query_id, "plain")
    assert plain["inline_message_id"] is None
    unknown = await api("editMessageText", inline_message_id="nope", text="x")
    assert unknown.json()["description"] == "Bad Request: MESSAGE_ID_INVALID"
    with pytest.raises(SandboxError):
        await client.choose_inline_result(query_id, "missing")
