"""Linking Telegram to a web account on real Postgres and Redis: the one-time code, and the merge
rule when both sides have an account (core.services.linking). Balances stay Σ entries."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta

import pytest
from redis.asyncio import Redis
from sqlalchemy import func, select

from core.dto import ClientInfo
from core.services import accounts, billing, linking, sessions
from core.services.accounts import NewIdentity
from core.services.linking import AccountsNotMergeable, LinkCodeInvalid
from db.models import Identity, LedgerEntry, User
from db.uow import UnitOfWork
from tests.factories import POLICY, register, telegram_id

NOW = datetime.now(UTC)


async def _web_account(uow: UnitOfWork) -> tuple[int, str, str]:
    """A confirmed email account with a live session: its id, address and session id."""
    address = f"{secrets.token_hex(6)}@example.test"
    user = await accounts.register_web_user(
        uow,
        identity=NewIdentity(provider="email", subject=address, email=address, email_verified=True),
        language="en",
        profile_name=None,
        policy_version=POLICY,
        client=ClientInfo(platform="web"),
    )
    issued = await sessions.open_session(
        uow, user_id=user.id, client=ClientInfo(platform="web"), now=NOW, ttl=timedelta(days=1)
    )
    return user.id, address, issued.session_id


async def _credit(uow: UnitOfWork, user_id: int, amount: int) -> None:
    await billing.credit(
        uow, user_id=user_id, amount=amount, category="topup", key=secrets.token_hex(8)
    )
    await uow.commit()


async def _balance_and_sum(uow: UnitOfWork, user_id: int) -> tuple[int, int]:
    async with uow.reading():
        balance = (await billing.get_balance(uow, user_id)).balance
        total = await uow.session.scalar(
            select(func.coalesce(func.sum(LedgerEntry.amount), 0)).where(
                LedgerEntry.user_id == user_id
            )
        )
    return balance, int(total or 0)


async def _user(uow: UnitOfWork, user_id: int) -> User:
    async with uow.reading():
        user = await uow.session.get(User, user_id, populate_existing=True)
        assert user is not None
        uow.session.expunge(user)
    return user


async def _providers(uow: UnitOfWork, user_id: int) -> set[str]:
    async with uow.reading():
        return set(
            await uow.session.scalars(select(Identity.provider).where(Identity.user_id == user_id))
        )


async def _code(uow: UnitOfWork, redis: Redis, user_id: int, session_id: str) -> str:
    return (
        await linking.create_telegram_code(uow, redis, user_id=user_id, session_id=session_id)
    ).code


async def test_a_code_lives_ten_minutes_and_names_the_web_account(
    uow: UnitOfWork, redis: Redis
) -> None:
    web_id, address, session_id = await _web_account(uow)
    issued = await linking.create_telegram_code(uow, redis, user_id=web_id, session_id=session_id)
    assert issued.payload == f"link-{issued.code}"
    assert linking.code_of_payload(issued.payload) == issued.code
    assert 590 <= await redis.ttl(f"{linking.KEY}:{issued.code}") <= 600
    request = await linking.telegram_link_request(
        uow, redis, code=issued.code, telegram_id=telegram_id(), now=NOW
    )
    assert (request.user_id, request.account) == (web_id, address)


async def test_linking_a_new_telegram_user_attaches_it_and_uses_the_code_up(
    uow: UnitOfWork, redis: Redis
) -> None:
    web_id, _, session_id = await _web_account(uow)
    code = await _code(uow, redis, web_id, session_id)
    tg = telegram_id()
    outcome = await linking.confirm_telegram_link(
        uow, redis, code=code, telegram_id=tg, username="ada", now=NOW
    )
    assert (outcome.user_id, outcome.erased_user_id) == (web_id, None)
    user = await _user(uow, web_id)
    assert (user.telegram_id, user.username) == (tg, "ada")
    assert await _providers(uow, web_id) == {"email", "telegram"}
    with pytest.raises(LinkCodeInvalid):
        await linking.confirm_telegram_link(
            uow, redis, code=code, telegram_id=tg, username="ada", now=NOW
        )


async def test_a_code_of_an_ended_session_links_nothing(uow: UnitOfWork, redis: Redis) -> None:
    web_id, _, session_id = await _web_account(uow)
    code = await _code(uow, redis, web_id, session_id)
    await sessions.revoke(uow, user_id=web_id, session_id=session_id, now=NOW)
    with pytest.raises(LinkCodeInvalid):
        await linking.confirm_telegram_link(
            uow, redis, code=code, telegram_id=telegram_id(), username=None, now=NOW
        )
    assert (await _user(uow, web_id)).telegram_id is None


async def test_an_empty_telegram_account_merges_into_the_web_account_and_is_erased(
    uow: UnitOfWork, redis: Redis
) -> None:
    web_id, _, session_id = await _web_account(uow)
    await _credit(uow, web_id, 5_000)
    tg = telegram_id()
    tg_id = (await register(uow, tg_id=tg)).user.id
    code = await _code(uow, redis, web_id, session_id)
    outcome = await linking.confirm_telegram_link(
        uow, redis, code=code, telegram_id=tg, username=None, now=NOW
    )
    assert (outcome.user_id, outcome.erased_user_id, outcome.web_signed_out) == (
        web_id,
        tg_id,
        False,
    )
    assert (await _user(uow, web_id)).telegram_id == tg
    erased = await _user(uow, tg_id)
    assert erased.deleted_at is not None and erased.telegram_id is None
    assert await _providers(uow, tg_id) == set()
    assert await _providers(uow, web_id) == {"email", "telegram"}
    assert await _balance_and_sum(uow, web_id) == (5_000, 5_000)


async def test_an_empty_web_account_merges_into_the_telegram_account(
    uow: UnitOfWork, redis: Redis
) -> None:
    web_id, _, session_id = await _web_account(uow)
    tg = telegram_id()
    tg_id = (await register(uow, tg_id=tg)).user.id
    await _credit(uow, tg_id, 7_000)
    code = await _code(uow, redis, web_id, session_id)
    outcome = await linking.confirm_telegram_link(
        uow, redis, code=code, telegram_id=tg, username=None, now=NOW
    )
    assert (outcome.user_id, outcome.erased_user_id, outcome.web_signed_out) == (
        tg_id,
        web_id,
        True,
    )
    assert await _providers(uow, tg_id) == {"email", "telegram"}
    assert (await _user(uow, web_id)).deleted_at is not None
    assert await _balance_and_sum(uow, tg_id) == (7_000, 7_000)
    # The web session ended with the erased account.
    with pytest.raises(sessions.SessionInvalid):
        await sessions.check(uow, session_id=session_id, user_id=web_id, now=NOW)


async def test_accounts_that_both_have_money_are_not_merged(uow: UnitOfWork, redis: Redis) -> None:
    web_id, _, session_id = await _web_account(uow)
    await _credit(uow, web_id, 3_000)
    tg = telegram_id()
    tg_id = (await register(uow, tg_id=tg)).user.id
    await _credit(uow, tg_id, 4_000)
    code = await _code(uow, redis, web_id, session_id)
    with pytest.raises(AccountsNotMergeable):
        await linking.confirm_telegram_link(
            uow, redis, code=code, telegram_id=tg, username=None, now=NOW
        )
    assert (await _user(uow, web_id)).telegram_id is None
    assert (await _user(uow, tg_id)).telegram_id == tg
    assert await _providers(uow, web_id) == {"email"}
    assert await _providers(uow, tg_id) == {"telegram"}
    assert await _balance_and_sum(uow, web_id) == (3_000, 3_000)
    assert await _balance_and_sum(uow, tg_id) == (4_000, 4_000)


async def test_confirming_twice_changes_nothing_the_second_time(
    uow: UnitOfWork, redis: Redis
) -> None:
    web_id, _, session_id = await _web_account(uow)
    tg = telegram_id()
    first = await _code(uow, redis, web_id, session_id)
    await linking.confirm_telegram_link(
        uow, redis, code=first, telegram_id=tg, username=None, now=NOW
    )
    # A code made before the link and confirmed after it by the same Telegram user.
    await redis.set(
        f"{linking.KEY}:again", f'{{"user_id": {web_id}, "session_id": "{session_id}"}}', ex=60
    )
    again = await linking.confirm_telegram_link(
        uow, redis, code="again", telegram_id=tg, username=None, now=NOW
    )
    assert again.already and again.user_id == web_id
    assert await _providers(uow, web_id) == {"email", "telegram"}


async def test_a_web_account_with_telegram_gets_no_code(uow: UnitOfWork, redis: Redis) -> None:
    tg_id = (await register(uow)).user.id
    issued = await sessions.open_session(
        uow, user_id=tg_id, client=ClientInfo(platform="telegram"), now=NOW, ttl=timedelta(days=1)
    )
    with pytest.raises(linking.TelegramAlreadyLinked):
        await linking.create_telegram_code(uow, redis, user_id=tg_id, session_id=issued.session_id)
