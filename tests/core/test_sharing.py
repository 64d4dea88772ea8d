"""Shared links: random tokens kept only as hashes, the owner's control over them, an
administrator's take-down, and what a public view shows (and never shows)."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import secrets
from dataclasses import asdict
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from core.errors import NotFound
from core.providers.base import Usage
from core.services import billing, chat, presets, privacy, redo, sharing, turns
from core.services.chat import ModelTerms
from core.services.sharing import NotAPresetLink, ShareLinkNotFound
from db.models import AdminAction, ChatMessageRow, ShareLink
from db.uow import UnitOfWork
from tests.factories import register

NOW = datetime(2026, 11, 24, 12, tzinfo=UTC)
ADMIN = 5_550_001
MODEL = ModelTerms(
    id="test-model",
    provider="openai",
    provider_model="gpt-test",
    context_window=8_000,
    input_per_1k=10,
    output_per_1k=30,
)


async def _user(uow: UnitOfWork, first_name: str = "Test") -> int:
    user_id = (await register(uow, first_name=first_name)).user.id
    async with uow.transaction():
        await billing.credit(
            uow, user_id=user_id, amount=100_000, category="topup", key=secrets.token_hex(8)
        )
    return user_id


async def _say(
    uow: UnitOfWork, user_id: int, text: str, reply: str, *, reasoning: str = "", at: datetime = NOW
) -> int:
    turn = await turns.begin_turn(uow, user_id=user_id, text=text, model=MODEL, now=at)
    await turns.finish_turn(
        uow,
        turn,
        text=reply,
        reasoning=reasoning,
        usage=Usage(input_tokens=10, output_tokens=10),
        status="complete",
        now=at,
    )
    return turn.conversation_id


async def _preset(uow: UnitOfWork, user_id: int) -> int:
    preset = await presets.create_preset(
        uow, user_id, title="Translator", prompt="Translate everything into French."
    )
    return preset.id


def _bits(token: str) -> int:
    return len(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))) * 8


async def test_a_token_has_at_least_128_random_bits_and_only_its_hash_is_stored(
    uow: UnitOfWork,
) -> None:
    owner = await _user(uow)
    preset_id = await _preset(uow, owner)
    links = [
        await sharing.share_preset(uow, user_id=owner, preset_id=preset_id, now=NOW)
        for _ in range(40)
    ]
    tokens = {link.token for link in links}
    assert len(tokens) == 40
    assert all(_bits(token) >= 128 for token in tokens)
    # Random, not counted: every bit position is set in some token and clear in another.
    values = [int.from_bytes(base64.urlsafe_b64decode(t + "=" * (-len(t) % 4))) for t in tokens]
    for bit in range(_bits(links[0].token)):
        assert {v >> bit & 1 for v in values} == {0, 1}, bit
    stored = list(await uow.session.scalars(select(ShareLink).where(ShareLink.user_id == owner)))
    assert {row.token_hash for row in stored} == {
        hashlib.sha256(t.encode()).hexdigest() for t in tokens
    }
    for row in stored:
        assert all(t not in str(v) for t in tokens for v in row.__dict__.values())


async def test_sharing_the_same_preset_again_makes_a_new_link_and_both_work(
    uow: UnitOfWork,
) -> None:
    owner = await _user(uow)
    preset_id = await _preset(uow, owner)
    first = await sharing.share_preset(uow, user_id=owner, preset_id=preset_id, now=NOW)
    second = await sharing.share_preset(uow, user_id=owner, preset_id=preset_id, now=NOW)
    assert first.id != second.id and first.token != second.token
    await sharing.revoke(uow, user_id=owner, link_id=first.id, now=NOW)
    assert (await sharing.open_shared(uow, second.token)).title == "Translator"
    with pytest.raises(ShareLinkNotFound):
        await sharing.open_shared(uow, first.token)


async def test_only_the_owner_can_share_a_conversation_or_a_preset(uow: UnitOfWork) -> None:
    owner = await _user(uow)
    stranger = await _user(uow)
    conversation_id = await _say(uow, owner, "Hi", "Hello")
    preset_id = await _preset(uow, owner)
    with pytest.raises(NotFound):
        await sharing.share_conversation(
            uow, user_id=stranger, conversation_id=conversation_id, now=NOW
        )
    with pytest.raises(NotFound):
        await sharing.share_preset(uow, user_id=stranger, preset_id=preset_id, now=NOW)
    with pytest.raises(NotFound):
        await sharing.share_preset(uow, user_id=owner, preset_id=preset_id + 10_000, now=NOW)
    assert await sharing.list_links(uow, stranger) == []
    assert await sharing.list_links(uow, owner) == []


async def test_links_are_listed_to_their_owner_only_without_tokens(uow: UnitOfWork) -> None:
    owner = await _user(uow)
    stranger = await _user(uow)
    conversation_id = await _say(uow, owner, "Plan a trip", "Sure")
    preset_id = await _preset(uow, owner)
    chat_link = await sharing.share_conversation(
        uow, user_id=owner, conversation_id=conversation_id, now=NOW
    )
    preset_link = await sharing.share_preset(uow, user_id=owner, preset_id=preset_id, now=NOW)
    listed = await sharing.list_links(uow, owner)
    assert [(x.id, x.kind, x.target_id, x.title, x.active) for x in listed] == [
        (preset_link.id, "preset", preset_id, "Translator", True),
        (chat_link.id, "conversation", conversation_id, "Plan a trip", True),
    ]
    assert all(
        link.token not in str(asdict(x)) for x in listed for link in (chat_link, preset_link)
    )
    assert await sharing.list_links(uow, stranger) == []


async def test_a_revoked_link_is_not_found_and_only_its_owner_can_revoke_it(
    uow: UnitOfWork,
) -> None:
    owner = await _user(uow)
    stranger = await _user(uow)
    link = await sharing.share_preset(
        uow, user_id=owner, preset_id=await _preset(uow, owner), now=NOW
    )
    with pytest.raises(ShareLinkNotFound):
        await sharing.revoke(uow, user_id=stranger, link_id=link.id, now=NOW)
    assert (await sharing.open_shared(uow, link.token)).kind == "preset"
    await sharing.revoke(uow, user_id=owner, link_id=link.id, now=NOW)
    # Revoking twice changes nothing.
    await sharing.revoke(uow, user_id=owner, link_id=link.id, now=NOW + timedelta(hours=1))
    with pytest.raises(ShareLinkNotFound):
        await sharing.open_shared(uow, link.token)
    [listed] = await sharing.list_links(uow, owner)
    assert listed.revoked_at == NOW and not listed.active


async def test_an_admin_disables_a_link_by_its_url_with_an_audit_record(uow: UnitOfWork) -> None:
    owner = await _user(uow)
    conversation_id = await _say(uow, owner, "Hi", "Hello")
    link = await sharing.share_conversation(
        uow, user_id=owner, conversation_id=conversation_id, now=NOW
    )
    disabled = await sharing.disable(
        uow, admin_telegram_id=ADMIN, token=f"https://netroom.test/s/{link.token}", now=NOW
    )
    assert (disabled.link_id, disabled.owner_id, disabled.changed) == (link.id, owner, True)
    with pytest.raises(ShareLinkNotFound):
        await sharing.open_shared(uow, link.token)
    [record] = await uow.session.scalars(
        select(AdminAction).where(AdminAction.target_user_id == owner)
    )
    assert (record.admin_telegram_id, record.action) == (ADMIN, "share_off")
    assert record.before == {"disabled": False, "revoked": False}
    assert record.after == {"disabled": True, "revoked": False}
    assert link.token not in str(record.target) + str(record.before) + str(record.after)
    [listed] = await sharing.list_links(uow, owner)
    assert listed.disabled_at == NOW and listed.revoked_at is None
    # Again: nothing changes and nothing more is logged.
    again = await sharing.disable(uow, admin_telegram_id=ADMIN, token=link.token, now=NOW)
    assert not again.changed
    records = await uow.session.scalars(
        select(AdminAction).where(AdminAction.target_user_id == owner)
    )
    assert len(list(records)) == 1


async def test_disabling_an_unknown_link_is_not_found(uow: UnitOfWork) -> None:
    for text in (secrets.token_urlsafe(24), "https://netroom.test/privacy/", "nonsense"):
        with pytest.raises(ShareLinkNotFound):
            await sharing.disable(uow, admin_telegram_id=ADMIN, token=text, now=NOW)
    assert (
        await uow.session.scalar(select(AdminAction).where(AdminAction.admin_telegram_id == ADMIN))
        is None
    )


async def test_a_shared_chat_shows_messages_without_reasoning_or_the_owner(
    uow: UnitOfWork,
) -> None:
    owner = await _user(uow, first_name="Zebediah")
    conversation_id = await _say(
        uow, owner, "What is 2+2?", "It is 4.", reasoning="SECRET-CHAIN-OF-THOUGHT"
    )
    link = await sharing.share_conversation(
        uow, user_id=owner, conversation_id=conversation_id, now=NOW
    )
    view = await sharing.open_shared(uow, link.token)
    assert view.kind == "conversation" and view.title == "What is 2+2?"
    assert [(m.role, m.content, m.created_at) for m in view.messages] == [
        ("user", "What is 2+2?", NOW),
        ("assistant", "It is 4.", NOW),
    ]
    shown = repr(view)
    assert "SECRET-CHAIN-OF-THOUGHT" not in shown
    assert "Zebediah" not in shown and str(owner) not in shown
    assert not hasattr(view, "user_id") and not hasattr(view.messages[0], "user_id")


async def test_a_shared_chat_is_a_snapshot_of_what_was_said_before_sharing(
    uow: UnitOfWork,
) -> None:
    owner = await _user(uow)
    conversation_id = await _say(uow, owner, "First", "One")
    link = await sharing.share_conversation(
        uow, user_id=owner, conversation_id=conversation_id, now=NOW
    )
    later = await _say(uow, owner, "Private follow-up", "Two", at=NOW + timedelta(minutes=5))
    assert later == conversation_id
    view = await sharing.open_shared(uow, link.token)
    assert [m.content for m in view.messages] == ["First", "One"]


async def test_a_shared_chat_shows_the_answer_that_replaced_another_not_the_replaced_one(
    uow: UnitOfWork,
) -> None:
    owner = await _user(uow)
    conversation_id = await _say(uow, owner, "Name a colour", "Beige")
    first = await redo.last_turn(uow, owner, (await _message_ids(uow, conversation_id))[0])
    turn = await turns.begin_turn(
        uow,
        user_id=owner,
        text=first.prompt,
        model=MODEL,
        now=NOW,
        prefs=dataclasses.replace(
            await chat.get_prefs(uow, owner), conversation_id=conversation_id
        ),
        replaces=first.message_ids,
    )
    await turns.finish_turn(
        uow, turn, text="Teal", reasoning="", usage=None, status="complete", now=NOW
    )
    link = await sharing.share_conversation(
        uow, user_id=owner, conversation_id=conversation_id, now=NOW
    )
    view = await sharing.open_shared(uow, link.token)
    assert [m.content for m in view.messages] == ["Name a colour", "Teal"]


async def _message_ids(uow: UnitOfWork, conversation_id: int) -> list[int]:
    async with uow.reading():
        found = await uow.session.scalars(
            select(ChatMessageRow.id)
            .where(ChatMessageRow.conversation_id == conversation_id)
            .order_by(ChatMessageRow.id)
        )
        return list(found)


async def test_each_opening_counts_a_view(uow: UnitOfWork) -> None:
    owner = await _user(uow)
    link = await sharing.share_preset(
        uow, user_id=owner, preset_id=await _preset(uow, owner), now=NOW
    )
    for _ in range(3):
        view = await sharing.open_shared(uow, link.token)
    assert view.prompt == "Translate everything into French."
    [listed] = await sharing.list_links(uow, owner)
    assert listed.views == 3


async def test_a_link_to_a_deleted_preset_or_cleared_chat_is_not_found(uow: UnitOfWork) -> None:
    owner = await _user(uow)
    preset_id = await _preset(uow, owner)
    preset_link = await sharing.share_preset(uow, user_id=owner, preset_id=preset_id, now=NOW)
    conversation_id = await _say(uow, owner, "Hi", "Hello")
    chat_link = await sharing.share_conversation(
        uow, user_id=owner, conversation_id=conversation_id, now=NOW
    )
    await presets.delete_preset(uow, owner, preset_id)
    await chat.clear_history(uow, owner)
    for token in (preset_link.token, chat_link.token):
        with pytest.raises(ShareLinkNotFound):
            await sharing.open_shared(uow, token)


async def test_a_shared_preset_is_copied_into_the_readers_presets(uow: UnitOfWork) -> None:
    owner = await _user(uow)
    reader = await _user(uow)
    preset_id = await _preset(uow, owner)
    link = await sharing.share_preset(uow, user_id=owner, preset_id=preset_id, now=NOW)
    copy = await sharing.copy_preset(uow, user_id=reader, token=link.token, now=NOW)
    assert copy.id != preset_id
    assert (copy.title, copy.system_prompt) == ("Translator", "Translate everything into French.")
    assert await presets.list_presets(uow, reader) == [copy]
    # The copy is the reader's own: changing it leaves the original alone.
    await presets.edit_preset(uow, reader, copy.id, title="Mine", prompt="Changed", now=NOW)
    assert (await sharing.open_shared(uow, link.token)).prompt == (
        "Translate everything into French."
    )


async def test_a_chat_link_cannot_be_copied_and_a_revoked_preset_link_is_not_found(
    uow: UnitOfWork,
) -> None:
    owner = await _user(uow)
    reader = await _user(uow)
    chat_link = await sharing.share_conversation(
        uow, user_id=owner, conversation_id=await _say(uow, owner, "Hi", "Hello"), now=NOW
    )
    with pytest.raises(NotAPresetLink):
        await sharing.copy_preset(uow, user_id=reader, token=chat_link.token, now=NOW)
    preset_link = await sharing.share_preset(
        uow, user_id=owner, preset_id=await _preset(uow, owner), now=NOW
    )
    await sharing.revoke(uow, user_id=owner, link_id=preset_link.id, now=NOW)
    with pytest.raises(ShareLinkNotFound):
        await sharing.copy_preset(uow, user_id=reader, token=preset_link.token, now=NOW)
    assert await presets.list_presets(uow, reader) == []


async def test_erasing_the_account_removes_its_links(uow: UnitOfWork) -> None:
    owner = await _user(uow)
    other = await _user(uow)
    link = await sharing.share_conversation(
        uow, user_id=owner, conversation_id=await _say(uow, owner, "Hi", "Hello"), now=NOW
    )
    kept = await sharing.share_preset(
        uow, user_id=other, preset_id=await _preset(uow, other), now=NOW
    )
    await privacy.delete_user(uow, owner, now=NOW)
    assert await uow.session.scalar(select(ShareLink.id).where(ShareLink.user_id == owner)) is None
    with pytest.raises(ShareLinkNotFound):
        await sharing.open_shared(uow, link.token)
    assert (await sharing.open_shared(uow, kept.token)).kind == "preset"
