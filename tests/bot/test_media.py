"""The bot's /media: the user's newest pictures and videos, each deletable from there; a deleted
one's record and file go (policy 7 and 8: media stay until their owner deletes them)."""

from __future__ import annotations

from sqlalchemy import select

from db.models import Media
from tests.bot.conftest import BotHarness, PersonFactory, buttons, text_of
from tests.bot.test_chat import _ready


async def test_media_lists_a_drawn_picture_and_deletes_it_at_a_tap(
    harness: BotHarness, person: PersonFactory
) -> None:
    ivy = await _ready(harness, person, "Ivy")
    [empty] = await ivy.say("/media")
    assert "no pictures or videos yet" in text_of(empty)

    before = await harness.client.last_seq()
    await harness.client.send_text(ivy.id, "/image a lighthouse at <dusk>")
    await harness.client.wait_for(
        lambda e: e["type"] == "bot_message" and "photo" in e["message"],
        chat_id=ivy.id,
        after=before,
        wait=20,
    )
    [listing] = await ivy.say("/media")
    shown = text_of(listing)
    assert "Your pictures and videos" in shown
    # The prompt is shown as written (escaped), linked to the picture's page.
    assert "1. 🎨 a lighthouse at <dusk>" in shown
    entities = listing["message"].get("entities") or []
    assert any(
        e["type"] == "text_link" and e["url"].startswith("http://netroom.test/media/")
        for e in entities
    )
    [delete] = [b for b in buttons(listing) if b["text"] == "🗑 1"]

    after = await harness.client.last_seq()
    await harness.client.tap(ivy.id, listing["message_id"], delete["callback_data"])
    await harness.client.wait_for(
        lambda e: e["type"] == "message_edited", chat_id=ivy.id, after=after
    )
    transcript = await harness.client.transcript(ivy.id)
    edited = next(m for m in transcript["messages"] if m["message_id"] == listing["message_id"])
    assert "no pictures or videos yet" in edited["text"]
    async with harness.uow_factory() as uow:
        left = list(
            await uow.session.scalars(select(Media.id).where(Media.user_id == ivy.user_id))  # type: ignore[attr-defined]
        )
    assert left == []
