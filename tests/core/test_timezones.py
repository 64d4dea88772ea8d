"""The user's time zone: a setting chosen by name (checked against the zone database), guessed
from the language until chosen, and part of the data export like the other settings."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from core.errors import UnknownTimeZone
from core.services import accounts, privacy
from db.uow import UnitOfWork
from tests.factories import register

NOW = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)


async def test_a_zone_is_stored_in_its_canonical_spelling(uow: UnitOfWork) -> None:
    user = (await register(uow)).user
    assert user.timezone is None
    updated = await accounts.set_timezone(uow, user.id, "  america/new_york ")
    assert updated.timezone == "America/New_York"
    assert (await accounts.get_user(uow, user.id)).timezone == "America/New_York"
    assert (await accounts.get_settings(uow, user.id)).timezone == "America/New_York"


@pytest.mark.parametrize("name", ["Mars/Olympus_Mons", "localtime", "", "Europe/" + "x" * 80])
async def test_an_unknown_zone_is_refused(uow: UnitOfWork, name: str) -> None:
    user = (await register(uow)).user
    with pytest.raises(UnknownTimeZone):
        await accounts.set_timezone(uow, user.id, name)
    assert (await accounts.get_user(uow, user.id)).timezone is None


async def test_until_chosen_the_zone_follows_the_language(uow: UnitOfWork) -> None:
    russian = (await register(uow, language_code="ru")).user
    english = (await register(uow, language_code="en")).user
    assert accounts.time_zone_of(russian, "Europe/London") == "Europe/Moscow"
    assert accounts.time_zone_of(english, "Europe/London") == "Europe/London"
    chosen = await accounts.set_timezone(uow, russian.id, "Asia/Omsk")
    assert accounts.time_zone_of(chosen, "Europe/London") == "Asia/Omsk"


async def test_the_export_holds_the_zone_among_the_settings(uow: UnitOfWork) -> None:
    user = (await register(uow)).user
    await accounts.set_timezone(uow, user.id, "Asia/Tokyo")
    export = await privacy.export_user(uow, user.id, fmt="json", now=NOW)
    with export.data:
        document = json.loads(export.data.read())
    assert document["categories"]["settings"][0]["timezone"] == "Asia/Tokyo"


async def test_an_erased_account_keeps_no_zone(uow: UnitOfWork) -> None:
    user = (await register(uow)).user
    await accounts.set_timezone(uow, user.id, "Asia/Tokyo")
    await privacy.delete_user(uow, user.id, now=NOW)
    stored = await uow.users.get(user.id)
    assert stored is not None and stored.deleted_at is not None
    assert stored.timezone is None
