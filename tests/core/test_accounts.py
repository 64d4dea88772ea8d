from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from core.deeplinks import parse_start_payload
from core.dto import ClientInfo, ReferralOutcome
from core.errors import InvalidInput
from core.services import accounts
from db.engine import UnitOfWorkFactory
from db.models import Consent, Identity, SignupAttribution, User
from db.uow import UnitOfWork
from tests.factories import POLICY, register, telegram_id


async def test_registration_creates_account_identity_consent_and_attribution(
    uow: UnitOfWork,
) -> None:
    tg = telegram_id()
    result = await register(uow, tg_id=tg, payload="src_vk__cmp_autumn", language_code="ru-RU")
    assert result.created
    user = result.user
    assert user.telegram_id == tg
    assert user.language == "ru"
    assert not user.needs_consent(POLICY)
    identities = (await uow.session.scalars(select(Identity).filter_by(user_id=user.id))).all()
    assert [(i.provider, i.subject) for i in identities] == [("telegram", str(tg))]
    consent = (await uow.session.scalars(select(Consent).filter_by(user_id=user.id))).one()
    assert (consent.policy_version, consent.platform) == (POLICY, "telegram")
    attribution = await uow.users.attribution(user.id)
    assert attribution is not None
    assert (attribution.utm_source, attribution.utm_campaign) == ("vk", "autumn")


async def test_language_falls_back_to_english_for_unsupported_codes(uow: UnitOfWork) -> None:
    result = await register(uow, language_code="de")
    assert result.user.language == "en"


async def test_registration_twice_keeps_one_account_and_first_attribution(uow: UnitOfWork) -> None:
    tg = telegram_id()
    first = await register(uow, tg_id=tg, payload="src_first")
    second = await register(uow, tg_id=tg, payload="src_second")
    assert not second.created
    assert second.user.id == first.user.id
    count = await uow.session.scalar(
        select(func.count()).select_from(User).filter_by(telegram_id=tg)
    )
    assert count == 1
    attributions = (
        await uow.session.scalars(select(SignupAttribution).filter_by(user_id=first.user.id))
    ).all()
    assert [a.utm_source for a in attributions] == ["first"]


async def test_referral_is_recorded_and_counters_updated_on_two_levels(uow: UnitOfWork) -> None:
    grandparent = (await register(uow)).user
    parent = (await register(uow, payload=f"ref_{grandparent.referral_code}")).user
    child = await register(uow, payload=parent.referral_code)  # a bare code works too
    assert parent.invited_by == grandparent.id
    assert child.referral is ReferralOutcome.APPLIED
    assert child.user.invited_by == parent.id
    gp = await accounts.referral_info(uow, grandparent.id)
    p = await accounts.referral_info(uow, parent.id)
    assert (gp.level1, gp.level2) == (1, 1)
    assert (p.level1, p.level2) == (1, 0)


async def test_referral_is_recorded_once_even_when_a_second_code_arrives(uow: UnitOfWork) -> None:
    a = (await register(uow)).user
    b = (await register(uow)).user
    tg = telegram_id()
    await register(uow, tg_id=tg, payload=f"ref_{a.referral_code}")
    again = await register(uow, tg_id=tg, payload=f"ref_{b.referral_code}")
    assert again.user.invited_by == a.id
    assert again.referral is ReferralOutcome.ALREADY_REGISTERED
    assert (await accounts.referral_info(uow, b.id)).level1 == 0


async def test_own_code_is_refused_as_self_invite(uow: UnitOfWork) -> None:
    user = (await register(uow)).user
    outcome = await accounts.check_start_payload(
        uow, user.telegram_id or 0, parse_start_payload(f"ref_{user.referral_code}")
    )
    assert outcome is ReferralOutcome.SELF_INVITE
    assert (await accounts.get_user(uow, user.id)).invited_by is None


async def test_invitee_code_is_refused_as_cycle(uow: UnitOfWork) -> None:
    parent = (await register(uow)).user
    child = (await register(uow, payload=f"ref_{parent.referral_code}")).user
    outcome = await accounts.check_start_payload(
        uow, parent.telegram_id or 0, parse_start_payload(f"ref_{child.referral_code}")
    )
    assert outcome is ReferralOutcome.CYCLE


async def test_unknown_code_registers_without_inviter(uow: UnitOfWork) -> None:
    result = await register(uow, payload="ref_zzzzzzzzzz")
    assert result.referral is ReferralOutcome.UNKNOWN_CODE
    assert result.user.invited_by is None


@pytest.mark.parametrize(
    "payload",
    ["x" * 65, "ref_<script>", "ref_abc def", "ééé", "ref_", "__", "src_"],
)
async def test_garbage_payload_is_ignored(uow: UnitOfWork, payload: str) -> None:
    result = await register(uow, payload=payload)
    assert result.created
    assert result.user.invited_by is None
    attribution = await uow.users.attribution(result.user.id)
    assert attribution is not None
    assert attribution.utm_source is None


async def test_new_policy_version_requires_consent_again(uow: UnitOfWork) -> None:
    user = (await register(uow)).user
    assert user.needs_consent("2027-01-01")
    renewed = await accounts.register_telegram_user(
        uow,
        telegram_id=user.telegram_id or 0,
        username=None,
        first_name="Test",
        last_name=None,
        language_code="en",
        payload=parse_start_payload(None),
        policy_version="2027-01-01",
        client=ClientInfo(platform="telegram"),
    )
    assert not renewed.user.needs_consent("2027-01-01")
    versions = (
        await uow.session.scalars(
            select(Consent.policy_version).filter_by(user_id=user.id).order_by(Consent.id)
        )
    ).all()
    assert list(versions) == [POLICY, "2027-01-01"]


async def test_language_can_be_switched_and_unknown_language_refused(uow: UnitOfWork) -> None:
    user = (await register(uow, language_code="en")).user
    assert (await accounts.set_language(uow, user.id, "ru")).language == "ru"
    with pytest.raises(InvalidInput):
        await accounts.set_language(uow, user.id, "xx")


async def test_activity_is_recorded_at_most_every_five_minutes(uow: UnitOfWork) -> None:
    user = (await register(uow)).user
    t0 = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
    await accounts.record_activity(uow, user, now=t0)
    fresh = await accounts.get_user(uow, user.id)
    assert fresh.last_activity_at == t0
    await accounts.record_activity(uow, fresh, now=t0 + timedelta(minutes=2))
    assert (await accounts.get_user(uow, user.id)).last_activity_at == t0
    await accounts.record_activity(uow, fresh, now=t0 + timedelta(minutes=6))
    assert (await accounts.get_user(uow, user.id)).last_activity_at == t0 + timedelta(minutes=6)


async def test_concurrent_acceptances_create_one_account(engine: AsyncEngine) -> None:
    factory = UnitOfWorkFactory.for_engine(engine)
    tg = telegram_id()

    async def accept() -> int:
        async with factory() as uow:
            return (await register(uow, tg_id=tg)).user.id

    ids = await asyncio.gather(*(accept() for _ in range(5)))
    assert len(set(ids)) == 1
    async with factory() as uow:
        count = await uow.session.scalar(
            select(func.count()).select_from(User).filter_by(telegram_id=tg)
        )
    assert count == 1
