from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, update

from core.dto import ClientInfo
from core.errors import NotFound
from core.media import LocalMediaStore
from core.services import images, retention, sessions, turns
from db.models import Media, Session, SignupAttribution, User
from db.uow import UnitOfWork
from tests.factories import register

NOW = datetime(2026, 11, 24, 3, 17, tzinfo=UTC)
CLIENT = ClientInfo(platform="web", ip="203.0.113.7", user_agent="Mozilla/5.0 Test")


async def _age(uow: UnitOfWork, user_id: int, days: int) -> None:
    then = NOW - timedelta(days=days)
    await uow.session.execute(
        update(SignupAttribution).filter_by(user_id=user_id).values(created_at=then)
    )
    await uow.session.execute(
        update(User)
        .filter_by(id=user_id)
        .values(last_auth_at=then, last_auth_ip="203.0.113.7", last_auth_user_agent="UA")
    )


async def test_ip_and_user_agent_older_than_90_days_are_erased(uow: UnitOfWork) -> None:
    user = (await register(uow, client=CLIENT)).user
    await _age(uow, user.id, days=91)
    changed = await retention.scrub_technical_data(uow, now=NOW)
    assert changed >= 2
    attribution = await uow.users.attribution(user.id)
    assert attribution is not None
    assert (attribution.ip, attribution.user_agent) == (None, None)
    assert attribution.platform == "web"  # the rest of the attribution stays
    row = (await uow.session.execute(select(User).filter_by(id=user.id))).scalar_one()
    await uow.session.refresh(row)
    assert (row.last_auth_ip, row.last_auth_user_agent) == (None, None)


async def test_recent_ip_and_user_agent_are_kept(uow: UnitOfWork) -> None:
    user = (await register(uow, client=CLIENT)).user
    await _age(uow, user.id, days=89)
    await retention.scrub_technical_data(uow, now=NOW)
    attribution = await uow.users.attribution(user.id)
    assert attribution is not None
    await uow.session.refresh(attribution)
    assert str(attribution.ip) == "203.0.113.7"
    assert attribution.user_agent == "Mozilla/5.0 Test"


async def test_messages_go_fourteen_days_after_they_were_written(uow: UnitOfWork) -> None:
    from core.services import chat
    from core.services.chat import ModelTerms
    from db.models import ChatMessageRow, Conversation

    free = ModelTerms("free", "openai", "free", 4_000, 0, 0)
    user = (await register(uow)).user
    written = NOW - timedelta(days=15)
    old = await turns.begin_turn(uow, user_id=user.id, text="old secret", model=free, now=written)
    await turns.finish_turn(
        uow, old, text="old answer", reasoning="", usage=None, status="complete", now=written
    )
    await uow.session.execute(
        update(Conversation).filter_by(id=old.conversation_id).values(updated_at=written)
    )
    await uow.commit()
    await chat.new_conversation(uow, user.id)
    fresh_time = NOW - timedelta(days=13)
    fresh = await turns.begin_turn(uow, user_id=user.id, text="recent", model=free, now=fresh_time)
    purged = await retention.purge_expired(uow, now=NOW)
    assert purged.messages >= 2
    assert purged.conversations >= 1
    left = (
        await uow.session.scalars(
            select(ChatMessageRow.content).filter_by(user_id=user.id).order_by(ChatMessageRow.id)
        )
    ).all()
    assert list(left) == ["recent"]
    conversations = (
        await uow.session.scalars(select(Conversation.id).filter_by(user_id=user.id))
    ).all()
    assert list(conversations) == [fresh.conversation_id]


async def test_ended_sessions_are_purged_with_their_device_data(uow: UnitOfWork) -> None:
    user = (await register(uow)).user
    now = datetime(2026, 12, 1, tzinfo=UTC)
    client = ClientInfo(platform="web", ip="203.0.113.9", user_agent="Firefox/140")
    live = await sessions.open_session(
        uow, user_id=user.id, client=client, now=now, ttl=timedelta(days=30)
    )
    revoked = await sessions.open_session(
        uow, user_id=user.id, client=client, now=now, ttl=timedelta(days=30)
    )
    expiring = await sessions.open_session(
        uow, user_id=user.id, client=client, now=now, ttl=timedelta(days=1)
    )
    await sessions.revoke(uow, user_id=user.id, session_id=revoked.session_id, now=now)
    purged = await retention.purge_expired(uow, now=now + timedelta(days=2))
    assert purged.sessions >= 2
    left = set(await uow.session.scalars(select(Session.id).where(Session.user_id == user.id)))
    assert left == {live.session_id}
    assert expiring.session_id not in left


async def test_generated_pictures_stay_past_fourteen_days_until_their_owner_deletes_them(
    uow: UnitOfWork, tmp_path: Path
) -> None:
    """Policy 7 and 8: media stay until the user deletes them (or the account); the 14 days are
    for chat messages only."""
    user = (await register(uow)).user
    other = (await register(uow)).user
    store = LocalMediaStore(tmp_path)
    made = datetime(2026, 11, 1, tzinfo=UTC)
    ids, keys = [], []
    for age_days in (400, 15):
        key = await store.save(b"\x89PNG picture", "image/png")
        media = Media(
            user_id=user.id,
            kind="image",
            prompt="a fox",
            model_id="m",
            status="ready",
            storage_key=key,
            created_at=made - timedelta(days=age_days),
        )
        uow.session.add(media)
        await uow.session.flush()
        ids.append(media.id)
        keys.append(key)
    await uow.commit()
    await retention.purge_expired(uow, now=made)
    left = list(
        await uow.session.scalars(
            select(Media.storage_key).where(Media.user_id == user.id).order_by(Media.id)
        )
    )
    assert left == keys
    assert await store.load(keys[0]) and await store.load(keys[1])

    # Only its owner deletes one; then the record and the file are gone.
    with pytest.raises(NotFound):
        await images.delete_media(uow, store, user_id=other.id, media_id=ids[0])
    await images.delete_media(uow, store, user_id=user.id, media_id=ids[0])
    left = list(
        await uow.session.scalars(select(Media.storage_key).where(Media.user_id == user.id))
    )
    assert left == [keys[1]]
    with pytest.raises(FileNotFoundError):
        await store.load(keys[0])
    assert await store.load(keys[1])


class _StoreThatCannotDelete(LocalMediaStore):
    """A media store whose disk refuses deletes for a while (read-only, full, gone)."""

    async def delete(self, key: str) -> None:
        raise OSError("read-only file system")


async def test_a_picture_whose_file_cannot_be_removed_stays_listed_to_delete_again(
    uow: UnitOfWork, tmp_path: Path
) -> None:
    user = (await register(uow)).user
    store = LocalMediaStore(tmp_path)
    key = await store.save(b"\x89PNG picture", "image/png")
    media = Media(
        user_id=user.id, kind="image", prompt="a fox", model_id="m", status="ready", storage_key=key
    )
    uow.session.add(media)
    await uow.session.flush()
    media_id = media.id
    await uow.commit()
    with pytest.raises(OSError):
        await images.delete_media(
            uow, _StoreThatCannotDelete(tmp_path), user_id=user.id, media_id=media_id
        )
    # Nothing says it is gone while its link still opens: it is still there to delete again.
    assert [m.id for m in await images.list_media(uow, user.id)] == [media_id]
    await images.delete_media(uow, store, user_id=user.id, media_id=media_id)
    assert await images.list_media(uow, user.id) == []
    with pytest.raises(FileNotFoundError):
        await store.load(key)
