"""'Sources' under an answer from documents names only the passages the answer cites."""

from __future__ import annotations

import re

from tests.bot.conftest import BotHarness, PersonFactory, text_of
from tests.bot.test_files import FACTS, _ready_person, _send


async def _ask(harness: BotHarness, chat_id: int, text: str, reply: str) -> list[str]:
    """Ask with the model scripted to ``reply``; the passage cites sent, as numbered."""
    await harness.client._call("DELETE", "/providers/requests")
    await harness.client._call(
        "POST", "/providers/script", json={"provider": "openai", "reply": reply}
    )
    after = await harness.client.last_seq()
    await harness.client.send_text(chat_id, text)
    await harness.client.wait_for(
        lambda e: e["type"] == "bot_message" and reply in (e["message"].get("text") or ""),
        chat_id=chat_id,
        after=after,
        wait=20,
    )
    [request] = (await harness.client._call("GET", "/providers/requests?provider=openai"))[
        "requests"
    ]
    system = str(request["json"]["messages"][0]["content"])
    return re.findall(r"^\[\d+\] \((.+)\)$", system, flags=re.MULTILINE)


async def test_sources_list_only_the_passages_the_answer_cites(
    harness: BotHarness, person: PersonFactory
) -> None:
    ray = await _ready_person(harness, person, "Ray")
    after = await harness.client.last_seq()
    await _send(harness, ray, "servers.md", FACTS)
    await harness.client.wait_for(
        lambda e: e["type"] == "bot_message" and "passages indexed" in text_of(e),
        chat_id=ray.id,
        after=after,
        wait=20,
    )
    question = "How many nodes does the cluster run, and how long are database snapshots kept?"
    # An answer that cites nothing gets no list, not every passage that was retrieved.
    cites = await _ask(harness, ray.id, question, "I am not sure.")
    assert len(set(cites)) == 2
    # An answer citing one passage gets that one only.
    after = await harness.client.last_seq()
    cites = await _ask(harness, ray.id, question, "They are kept for ninety days [2].")
    await harness.client.wait_for(
        lambda e: e["type"] == "bot_message" and text_of(e).startswith("📎 Sources:"),
        chat_id=ray.id,
        after=after,
        wait=20,
    )
    # One turn at a time: the first turn had finished (and sent any list) before this one began.
    transcript = [m.get("text") or "" for m in await harness.client.bot_messages(ray.id)]
    sources = [t for t in transcript if t.startswith("📎 Sources:")]
    assert sources == [f"📎 Sources: {cites[1]}"]
