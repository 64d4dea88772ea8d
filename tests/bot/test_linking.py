"""Linking Telegram to a web account through the real bot and the sandbox: the website's deep link
/start link-<code>, the question naming the web account, and the confirmation."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

from redis.asyncio import Redis
from sqlalchemy import func, select

from core.dto import ClientInfo
from core.services import accounts, billing, linking, sessions
from core.services.accounts import NewIdentity
from db.models import LedgerEntry, User
from tests.bot.conftest import (
    POLICY_VERSION,
    BotHarness,
    PersonFactory,
    button_data,
    buttons,
    text_of,
)
from tests.core.test_linking import history_counts, with_history


async def _web_account(harness: BotHarness, redis: Redis) -> tuple[int, str, str]:
    """A web account with a live session and its link code: id, address, code."""
    address = f"{secrets.token_hex(5)}@example.test"
    async with harness.uow_factory() as uow:
        web = await accounts.register_web_user(
            uow,
            identity=NewIdentity(
                provider="email", subject=address, email=address, email_verified=True
            ),
            language="en",
            profile_name=None,
            policy_version=POLICY_VERSION,
            client=ClientInfo(platform="web"),
        )
        issued = await sessions.open_session(
            uow,
            user_id=web.id,
            client=ClientInfo(platform="web"),
            now=datetime.now(UTC),
            ttl=timedelta(days=1),
        )
        code = await linking.create_telegram_code(
            uow, redis, user_id=web.id, session_id=issued.session_id
        )
    return web.id, address, code.code


async def _user(harness: BotHarness, user_id: int) -> Any:
    """The account's Telegram id, username and erasure time, as stored now."""
    async with harness.uow_factory() as uow:
        row = (
            await uow.session.execute(
                select(User.telegram_id, User.username, User.deleted_at).where(User.id == user_id)
            )
        ).one()
    return row


async def _credit(harness: BotHarness, user_id: int, amount: int) -> None:
    async with harness.uow_factory() as uow:
        await billing.credit(
            uow, user_id=user_id, amount=amount, category="topup", key=secrets.token_hex(8)
        )
        await uow.commit()


async def _balance_and_sum(harness: BotHarness, user_id: int) -> tuple[int, int]:
    async with harness.uow_factory() as uow:
        balance = (await billing.get_balance(uow, user_id)).balance
        total = await uow.session.scalar(
            select(func.coalesce(func.sum(LedgerEntry.amount), 0)).where(
                LedgerEntry.user_id == user_id
            )
        )
    return balance, int(total or 0)


async def test_the_deep_link_asks_and_confirming_links_a_new_telegram_user(
    harness: BotHarness, person: PersonFactory, redis: Redis
) -> None:
    web_id, address, code = await _web_account(harness, redis)
    dana = await person("Dana", username="dana_tg")
    # No consent asked: the web account's owner accepted the policy there.
    [question] = await dana.say(f"/start link-{code}")
    assert text_of(question) == f"Link this Telegram account to the NetRoom account {address}?"
    assert (await _user(harness, web_id)).telegram_id is None
    done, menu = await dana.tap(question, button_data(question, "Link"), replies=2)
    assert "now share one NetRoom account" in text_of(done)
    assert any("web_app" in b for b in buttons(menu))
    user = await _user(harness, web_id)
    assert (user.telegram_id, user.username) == (dana.id, "dana_tg")
    # Dana is that account in the bot now: the menu works without a consent of her own.
    [reply] = await dana.say("/balance")
    assert "accept our privacy policy" not in text_of(reply)
    # The code worked once.
    [refused] = await dana.say(f"/start link-{code}")
    assert "invalid, has expired or has already been used" in text_of(refused)


async def test_cancelling_links_nothing(
    harness: BotHarness, person: PersonFactory, redis: Redis
) -> None:
    web_id, _, code = await _web_account(harness, redis)
    eve = await person("Eve")
    [question] = await eve.say(f"/start link-{code}")
    [reply] = await eve.tap(question, button_data(question, "Cancel"))
    assert text_of(reply) == "Nothing was linked."
    assert (await _user(harness, web_id)).telegram_id is None


async def test_an_unknown_code_is_refused(harness: BotHarness, person: PersonFactory) -> None:
    frank = await person("Frank")
    [reply] = await frank.say("/start link-nosuchcode123456")
    assert "invalid, has expired or has already been used" in text_of(reply)


async def test_two_accounts_with_money_are_not_merged(
    harness: BotHarness, person: PersonFactory, redis: Redis
) -> None:
    web_id, _, code = await _web_account(harness, redis)
    await _credit(harness, web_id, 2_500)
    gina = await person("Gina")
    [consent] = await gina.say("/start")
    await gina.accept(consent)
    async with harness.uow_factory() as uow:
        own = await accounts.get_by_telegram_id(uow, gina.id)
    assert own is not None
    await _credit(harness, own.id, 1_500)
    [question] = await gina.say(f"/start link-{code}")
    [refused] = await gina.tap(question, button_data(question, "Link"))
    assert "cannot become one" in text_of(refused)
    assert (await _user(harness, web_id)).telegram_id is None
    assert (await _user(harness, own.id)).telegram_id == gina.id
    assert await _balance_and_sum(harness, web_id) == (2_500, 2_500)
    assert await _balance_and_sum(harness, own.id) == (1_500, 1_500)


async def test_an_empty_telegram_account_is_merged_into_the_web_account(
    harness: BotHarness, person: PersonFactory, redis: Redis
) -> None:
    web_id, _, code = await _web_account(harness, redis)
    await _credit(harness, web_id, 4_000)
    hugo = await person("Hugo")
    [consent] = await hugo.say("/start")
    await hugo.accept(consent)
    async with harness.uow_factory() as uow:
        own = await accounts.get_by_telegram_id(uow, hugo.id)
    assert own is not None
    [question] = await hugo.say(f"/start link-{code}")
    await hugo.tap(question, button_data(question, "Link"), replies=2)
    assert (await _user(harness, web_id)).telegram_id == hugo.id
    assert (await _user(harness, own.id)).deleted_at is not None
    assert await _balance_and_sum(harness, web_id) == (4_000, 4_000)


async def _own_account(harness: BotHarness, person: Any) -> int:
    """The person accepts the policy in the bot: their own account's id."""
    [consent] = await person.say("/start")
    await person.accept(consent)
    async with harness.uow_factory() as uow:
        own = await accounts.get_by_telegram_id(uow, person.id)
    assert own is not None
    return own.id


async def test_the_bot_history_moves_to_the_web_account_with_money(
    harness: BotHarness, person: PersonFactory, redis: Redis
) -> None:
    web_id, _, code = await _web_account(harness, redis)
    await _credit(harness, web_id, 3_000)
    iris = await person("Iris")
    own_id = await _own_account(harness, iris)
    async with harness.uow_factory() as uow:
        await with_history(uow, own_id, "iris")
        before = await history_counts(uow, own_id)
    [question] = await iris.say(f"/start link-{code}")
    data = button_data(question, "Link")
    # A double tap: the second finds the code used.
    await iris.client.tap(iris.id, question["message_id"], data)
    done, menu, again = await iris.tap(question, data, replies=3)
    texts = [text_of(m) for m in (done, menu, again)]
    assert sum("now share one NetRoom account" in t for t in texts) == 1
    assert any("in the bot are all kept, and the website shows them now too" in t for t in texts)
    assert any("invalid, has expired or has already been used" in t for t in texts)
    async with harness.uow_factory() as uow:
        assert await history_counts(uow, web_id) == before
    assert (await _user(harness, web_id)).telegram_id == iris.id
    assert (await _user(harness, own_id)).deleted_at is not None
    assert await _balance_and_sum(harness, web_id) == (3_000, 3_000)
    # The bot serves the web account now: its balance is the one shown.
    [balance] = await iris.say("/balance")
    assert "30" in text_of(balance)


async def test_without_money_the_telegram_account_keeps_the_web_history(
    harness: BotHarness, person: PersonFactory, redis: Redis
) -> None:
    web_id, _, code = await _web_account(harness, redis)
    async with harness.uow_factory() as uow:
        await with_history(uow, web_id, "juno")
        before = await history_counts(uow, web_id)
    juno = await person("Juno")
    own_id = await _own_account(harness, juno)
    [question] = await juno.say(f"/start link-{code}")
    done, _ = await juno.tap(question, button_data(question, "Link"), replies=2)
    assert "from the website are here now too" in text_of(done)
    assert "sign in again the same way" in text_of(done)
    async with harness.uow_factory() as uow:
        assert await history_counts(uow, own_id) == before
    assert (await _user(harness, own_id)).telegram_id == juno.id
    assert (await _user(harness, web_id)).deleted_at is not None
