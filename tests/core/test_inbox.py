"""The inbox's storage rules on real Postgres: an update recorded twice is handled once, a
waiting update is part of its sender's export and erasure, one left behind is purged."""

from __future__ import annotations

import json
import secrets
import zipfile
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select, update

from core.services import inbox, privacy, retention
from db.models import InboxUpdate
from db.uow import UnitOfWork
from tests.factories import register, telegram_id

NOW = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)


def _update_id() -> int:
    return secrets.randbelow(2**40) + 2**41


def _text_update(update_id: int, sender: int, text: str) -> dict[str, Any]:
    person = {"id": sender, "is_bot": False, "first_name": "Ina"}
    return {
        "update_id": update_id,
        "message": {
            "message_id": 7,
            "date": int(NOW.timestamp()),
            "chat": {"id": sender, "type": "private", "first_name": "Ina"},
            "from": person,
            "text": text,
        },
    }


async def _rows(uow: UnitOfWork, *update_ids: int) -> int:
    return int(
        await uow.session.scalar(select(func.count()).where(InboxUpdate.update_id.in_(update_ids)))
        or 0
    )


async def test_an_update_recorded_twice_is_handed_out_once(uow: UnitOfWork) -> None:
    first, second = _update_id(), _update_id()
    sender = telegram_id()
    batch = [_text_update(first, sender, "hello"), _text_update(second, sender, "again")]
    assert await inbox.record(uow, batch) == {first, second}
    # Telegram sends the same batch again (the offset was not confirmed): nothing is new.
    assert await inbox.record(uow, batch) == set()
    assert await inbox.record(uow, [batch[1], _text_update(first + 5, sender, "n")]) == {first + 5}
    assert await _rows(uow, first, second, first + 5) == 3


async def test_handled_updates_are_deleted_and_the_rest_wait_in_order(uow: UnitOfWork) -> None:
    ids = sorted(_update_id() for _ in range(3))
    sender = telegram_id()
    await inbox.record(uow, [_text_update(i, sender, f"m{i}") for i in reversed(ids)])
    assert await inbox.forget(uow, [ids[1]]) == 1
    assert await inbox.forget(uow, [ids[1]]) == 0
    waiting = [w.update_id for w in await inbox.waiting(uow) if w.update_id in ids]
    assert waiting == [ids[0], ids[2]]


async def test_the_mark_gives_the_next_offset_and_is_not_trusted_when_old(uow: UnitOfWork) -> None:
    bot_id = secrets.randbelow(10**9) + 10**9
    now = datetime.now(UTC)
    assert await inbox.resume_offset(uow, bot_id=bot_id, now=now) is None
    a, b = 1_000, 1_005
    sender = telegram_id()
    await inbox.record(
        uow, [_text_update(a, sender, "x"), _text_update(b, sender, "y")], bot_id=bot_id
    )
    await inbox.forget(uow, [a, b])
    # The rows are gone, but the next start still asks past them.
    assert await inbox.resume_offset(uow, bot_id=bot_id, now=now) == b + 1
    later = now + inbox.MARK_MAX_AGE + timedelta(hours=1)
    assert await inbox.resume_offset(uow, bot_id=bot_id, now=later) is None


def test_the_sender_is_found_in_each_kind_of_update() -> None:
    person = {"id": 42, "is_bot": False, "first_name": "Ina"}
    assert inbox.sender_of(_text_update(1, 42, "hi")) == 42
    assert inbox.sender_of({"update_id": 2, "callback_query": {"id": "q", "from": person}}) == 42
    assert inbox.sender_of({"update_id": 3, "poll_answer": {"poll_id": "p", "user": person}}) == 42
    channel = {"message_id": 1, "date": 0, "chat": {"id": -100, "type": "channel"}}
    assert inbox.sender_of({"update_id": 4, "channel_post": channel}) is None


async def test_a_waiting_update_is_in_its_senders_export(uow: UnitOfWork) -> None:
    tg = telegram_id()
    user = (await register(uow, tg_id=tg)).user
    mine, theirs = _update_id(), _update_id()
    await inbox.record(
        uow,
        [_text_update(mine, tg, "my secret question"), _text_update(theirs, telegram_id(), "no")],
    )
    export = await privacy.export_user(uow, user.id, fmt="json", now=NOW)
    with export.data:
        document = json.loads(export.data.read())
    waiting = document["categories"]["waiting_updates"]
    assert [w["update_id"] for w in waiting] == [mine]
    assert waiting[0]["payload"]["message"]["text"] == "my secret question"


async def test_a_waiting_update_is_in_the_zip_export_too(uow: UnitOfWork) -> None:
    tg = telegram_id()
    user = (await register(uow, tg_id=tg)).user
    mine = _update_id()
    await inbox.record(uow, [_text_update(mine, tg, "zip me")])
    export = await privacy.export_user(uow, user.id, fmt="zip", now=NOW)
    with export.data, zipfile.ZipFile(export.data) as archive:
        table = archive.read("waiting_updates.csv").decode()
    assert str(mine) in table and "zip me" in table


async def test_erasure_deletes_the_senders_waiting_updates(uow: UnitOfWork) -> None:
    tg, other = telegram_id(), telegram_id()
    user = (await register(uow, tg_id=tg)).user
    mine, theirs = _update_id(), _update_id()
    await inbox.record(uow, [_text_update(mine, tg, "erase me"), _text_update(theirs, other, "k")])
    await privacy.delete_user(uow, user.id, now=NOW)
    assert await _rows(uow, mine) == 0
    assert await _rows(uow, theirs) == 1


async def test_retention_purges_rows_left_behind_and_keeps_fresh_ones(uow: UnitOfWork) -> None:
    old, fresh = _update_id(), _update_id()
    sender = telegram_id()
    await inbox.record(uow, [_text_update(old, sender, "old"), _text_update(fresh, sender, "new")])
    now = datetime.now(UTC)
    await uow.session.execute(
        update(InboxUpdate)
        .where(InboxUpdate.update_id == old)
        .values(received_at=now - inbox.MAX_AGE - timedelta(minutes=1))
    )
    await uow.commit()
    purged = await retention.purge_expired(uow, now=now)
    assert purged.updates >= 1
    assert await _rows(uow, old) == 0
    assert await _rows(uow, fresh) == 1


async def test_in_webhook_mode_a_handled_update_sent_again_later_is_not_handed_out_again(
    uow: UnitOfWork,
) -> None:
    handled, other = _update_id(), _update_id()
    sender = telegram_id()
    sent = _text_update(handled, sender, "my question")
    assert await inbox.record(uow, [sent, _text_update(other, sender, "next")]) == {
        handled,
        other,
    }
    assert await inbox.forget(uow, [handled], keep_ids=True) == 1
    assert await inbox.forget(uow, [handled], keep_ids=True) == 0
    # Telegram did not see the 200 and sends it again, to whichever web process: not new.
    assert await inbox.record(uow, [sent]) == set()
    assert [w.update_id for w in await inbox.waiting(uow) if w.update_id in (handled, other)] == [
        other
    ]
    # What is kept is the id alone: nothing of the message, nobody's export.
    row = (
        await uow.session.execute(
            select(InboxUpdate.payload, InboxUpdate.telegram_id).where(
                InboxUpdate.update_id == handled
            )
        )
    ).one()
    assert row.payload == {} and row.telegram_id is None
    # Kept as long as Telegram keeps an update, then purged with the rows left behind.
    await uow.session.execute(
        update(InboxUpdate)
        .where(InboxUpdate.update_id == handled)
        .values(received_at=datetime.now(UTC) - inbox.MAX_AGE - timedelta(minutes=1))
    )
    await uow.commit()
    await retention.purge_expired(uow, now=datetime.now(UTC))
    assert await _rows(uow, handled) == 0
    assert await _rows(uow, other) == 1
