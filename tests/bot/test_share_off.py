"""The operator's /share_off through the real bot and the sandbox: an administrator takes a
shared link down; for anyone else the command does not exist."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import select

from core.services import presets, sharing
from core.services.sharing import ShareLinkNotFound
from db.models import AdminAction, User
from tests.bot.conftest import BotHarness, Person, PersonFactory, buttons, text_of


@pytest.fixture
async def configure(harness: BotHarness) -> AsyncIterator[Callable[..., None]]:
    """Set the deployment's admins for one test. The harness's bot runs for the whole session,
    so its settings object is changed in place: the same as restarting the bot with
    BOT__ADMIN_IDS set."""
    ctx = harness.dp["ctx"]
    original = {f.name: getattr(ctx, f.name) for f in dataclasses.fields(ctx)}

    def apply(**changes: Any) -> None:
        for name, value in changes.items():
            object.__setattr__(ctx, name, value)

    yield apply
    apply(**original)


async def _onboard(person: PersonFactory, name: str) -> Person:
    someone: Person = await person(name)
    [consent] = await someone.say("/start")
    await someone.accept(consent)
    return someone


async def _shared_preset(harness: BotHarness, owner: Person) -> tuple[int, str]:
    """(the owner's account id, a token) for a preset the owner shared."""
    async with harness.uow_factory() as uow:
        user_id = await uow.session.scalar(select(User.id).where(User.telegram_id == owner.id))
        assert user_id is not None
        preset = await presets.create_preset(uow, user_id, title="Poet", prompt="Answer in verse.")
        link = await sharing.share_preset(
            uow, user_id=user_id, preset_id=preset.id, now=datetime.now(UTC)
        )
    return user_id, link.token


async def test_an_admin_disables_a_shared_link_by_its_url(
    harness: BotHarness, person: PersonFactory, configure: Callable[..., None]
) -> None:
    boss = await _onboard(person, "Warden")
    configure(admin_ids=frozenset({boss.id}))
    owner = await _onboard(person, "Sharer")
    owner_id, token = await _shared_preset(harness, owner)
    [usage] = await boss.say("/share_off")
    assert "Usage: /share_off" in text_of(usage)
    [done] = await boss.say(f"/share_off http://netroom.test/s/{token}")
    assert text_of(done) == "Link disabled."
    async with harness.uow_factory() as uow:
        with pytest.raises(ShareLinkNotFound):
            await sharing.open_shared(uow, token)
        [record] = await uow.session.scalars(
            select(AdminAction).where(
                AdminAction.target_user_id == owner_id, AdminAction.action == "share_off"
            )
        )
        assert record.admin_telegram_id == boss.id
        assert (record.before["disabled"], record.after["disabled"]) == (False, True)
    [unknown] = await boss.say(f"/share_off {token[::-1]}")
    assert text_of(unknown) == "This link does not exist or is no longer shared."


async def test_share_off_does_not_exist_for_anyone_else(
    harness: BotHarness, person: PersonFactory, configure: Callable[..., None]
) -> None:
    boss = await _onboard(person, "Keeper")
    configure(admin_ids=frozenset({boss.id}))
    owner = await _onboard(person, "Writer")
    _owner_id, token = await _shared_preset(harness, owner)
    [reply] = await owner.say(f"/share_off {token}")
    # The normal bot: the main menu, as for any unknown command.
    assert "Link disabled" not in text_of(reply) and "Usage" not in text_of(reply)
    assert any(b["text"] == "💬 Support" for b in buttons(reply))
    async with harness.uow_factory() as uow:
        assert (await sharing.open_shared(uow, token)).title == "Poet"
