"""Linking Telegram to a web account on real Postgres and Redis: the one-time code, and the merge
rule when both sides have an account (core.services.linking). Balances stay Σ entries."""

from __future__ import annotations

import asyncio
import json
import secrets
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from redis.asyncio import Redis
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from core.dto import ClientInfo
from core.media import LocalMediaStore
from core.services import (
    accounts,
    billing,
    conversations,
    files,
    linking,
    presets,
    privacy,
    sessions,
    support,
)
from core.services.accounts import NewIdentity
from core.services.linking import AccountsNotMergeable, LinkCodeInvalid, SameSignInMethods
from db.base import Base
from db.engine import UnitOfWorkFactory
from db.models import (
    ChatMessageRow,
    Conversation,
    File,
    FileChunk,
    FileLink,
    Identity,
    LedgerEntry,
    Media,
    Preset,
    SupportMessage,
    SupportThread,
    User,
)
from db.uow import UnitOfWork
from tests.factories import POLICY, register, telegram_id

NOW = datetime.now(UTC)
STORE = LocalMediaStore(Path(tempfile.mkdtemp(prefix="netroom-linking-")))
# Every table holding history, with its user column: what a merge must move.
HISTORY = (Conversation, ChatMessageRow, Preset, File, FileChunk, FileLink, Media)


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


async def with_history(
    uow: UnitOfWork, user_id: int, word: str, *, document: bytes | None = None
) -> int:
    """A conversation with a prompt (the current one), a preset, an indexed document attached
    to the conversation, and a generated picture, all marked with ``word``; the
    conversation's id."""
    conversation = await conversations.current_conversation(
        uow, user_id, title=f"{word} chat", model_id="m"
    )
    await uow.chats.append_message(
        conversation_id=conversation,
        user_id=user_id,
        role="user",
        content=f"{word} prompt",
        reasoning=None,
        model_id="m",
        input_tokens=None,
        output_tokens=None,
        status="complete",
        created_at=NOW,
        expires_at=NOW + timedelta(days=14),
    )
    await uow.commit()
    await presets.create_preset(uow, user_id, title=f"{word} preset", prompt=f"Be {word}.")
    data = document or f"The {word} orchard ledger, with enough words to be indexed.".encode()
    uploaded = await files.upload(
        uow,
        STORE,
        user_id=user_id,
        name=f"{word}.txt",
        data=data,
        limits=files.FileLimits(),
        now=NOW,
    )
    await files.index(
        uow, STORE, file_id=uploaded.id, limits=files.FileLimits(), embedder=None, now=NOW
    )
    async with uow.transaction():
        await files.attach(uow, user_id=user_id, file_id=uploaded.id, conversation_id=conversation)
        uow.session.add(
            Media(
                user_id=user_id,
                kind="image",
                prompt=f"{word} picture",
                model_id="m",
                status="ready",
                storage_key=secrets.token_hex(16) + ".png",
            )
        )
    return conversation


async def history_counts(uow: UnitOfWork, user_id: int) -> dict[str, int]:
    async with uow.reading():
        return {
            model.__tablename__: int(
                await uow.session.scalar(
                    select(func.count()).select_from(model).where(model.user_id == user_id)
                )
                or 0
            )
            for model in HISTORY
        }


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
    # The page that asked for the second code learns it is linked.
    assert (await linking.link_status(redis, code="again")).linked
    assert await _providers(uow, web_id) == {"email", "telegram"}


async def test_a_web_account_with_telegram_gets_no_code(uow: UnitOfWork, redis: Redis) -> None:
    tg_id = (await register(uow)).user.id
    issued = await sessions.open_session(
        uow, user_id=tg_id, client=ClientInfo(platform="telegram"), now=NOW, ttl=timedelta(days=1)
    )
    with pytest.raises(linking.TelegramAlreadyLinked):
        await linking.create_telegram_code(uow, redis, user_id=tg_id, session_id=issued.session_id)


def test_the_merge_plan_decides_every_table_that_refers_to_an_account() -> None:
    referring = {
        table.name
        for table in Base.metadata.sorted_tables
        if table.name == "users"
        or any(fk.column.table.name == "users" for fk in table.foreign_keys)
    }
    assert referring == set(linking.MERGE_PLAN)
    moved = {model.__tablename__ for model in HISTORY} | {"identities", "share_links"}
    assert all(linking.MERGE_PLAN[name].startswith(linking.MOVED) for name in moved)


async def test_history_of_both_merges_into_the_account_with_money(
    uow: UnitOfWork, redis: Redis
) -> None:
    web_id, _, session_id = await _web_account(uow)
    await _credit(uow, web_id, 5_000)
    web_chat = await with_history(uow, web_id, "walnut")
    tg = telegram_id()
    tg_id = (await register(uow, tg_id=tg)).user.id
    tg_chat = await with_history(uow, tg_id, "quince")
    await accounts.set_timezone(uow, tg_id, "Asia/Tokyo")
    await support.save_thread(
        uow, user_id=tg_id, admin_chat_id=-100555, topic_id=7, header_message_id=8, now=NOW
    )
    await support.record_message(
        uow,
        user_id=tg_id,
        direction="in",
        user_message_id=11,
        admin_chat_id=-100555,
        admin_message_id=secrets.randbelow(10**9),
        now=NOW,
    )
    await uow.commit()
    before_web, before_tg = await history_counts(uow, web_id), await history_counts(uow, tg_id)
    code = await _code(uow, redis, web_id, session_id)
    outcome = await linking.confirm_telegram_link(
        uow, redis, code=code, telegram_id=tg, username="quince_tg", now=NOW, store=STORE
    )
    assert (outcome.user_id, outcome.erased_user_id) == (web_id, tg_id)
    assert outcome.history_moved and not outcome.web_signed_out
    # Every item of both is the survivor's; nothing is left with the erased account.
    after = await history_counts(uow, web_id)
    assert after == {name: before_web[name] + before_tg[name] for name in after}
    assert all(n > 0 for n in before_tg.values())
    assert await history_counts(uow, tg_id) == dict.fromkeys(after, 0)
    async with uow.reading():
        owners = set(
            await uow.session.scalars(
                select(Conversation.user_id).where(Conversation.id.in_([web_chat, tg_chat]))
            )
        )
        topic = await uow.session.scalar(
            select(SupportThread.topic_id).where(SupportThread.user_id == web_id)
        )
        relayed = await uow.session.scalar(
            select(func.count()).select_from(SupportMessage).where(SupportMessage.user_id == web_id)
        )
    assert owners == {web_id}
    assert (topic, relayed) == (7, 1)
    # The Telegram account's passages are found from the survivor.
    async with uow.reading():
        tg_files = list(
            await uow.session.scalars(
                select(File.id).where(File.user_id == web_id, File.name == "quince.txt")
            )
        )
    found = await files.search(
        uow, user_id=web_id, file_ids=tg_files, query="quince orchard", budget_tokens=500
    )
    assert found.passages
    # The survivor's own settings stay; those it had none of are taken.
    user = await _user(uow, web_id)
    assert (user.telegram_id, user.username, user.timezone) == (tg, "quince_tg", "Asia/Tokyo")
    assert user.features["conversation_id"] == web_chat
    assert await _providers(uow, web_id) == {"email", "telegram"}
    assert (await _user(uow, tg_id)).deleted_at is not None
    # Money stayed where it was: each balance is still the sum of its own entries.
    assert await _balance_and_sum(uow, web_id) == (5_000, 5_000)
    assert await _balance_and_sum(uow, tg_id) == (0, 0)
    # The web session goes on; the website learns what happened.
    await sessions.check(uow, session_id=session_id, user_id=web_id, now=NOW)
    status = await linking.link_status(redis, code=code)
    assert (status.linked, status.web_signed_out, status.history_moved) == (True, False, True)


async def test_the_export_of_the_survivor_lists_the_moved_history(
    uow: UnitOfWork, redis: Redis
) -> None:
    web_id, _, session_id = await _web_account(uow)
    await _credit(uow, web_id, 1_000)
    tg = telegram_id()
    tg_id = (await register(uow, tg_id=tg)).user.id
    await with_history(uow, tg_id, "medlar")
    code = await _code(uow, redis, web_id, session_id)
    await linking.confirm_telegram_link(
        uow, redis, code=code, telegram_id=tg, username=None, now=NOW, store=STORE
    )
    export = await privacy.export_user(uow, web_id, fmt="json", now=NOW)
    with export.data:
        categories = json.loads(export.data.read())["categories"]
    assert [c["title"] for c in categories["conversations"]] == ["medlar chat"]
    assert [m["content"] for m in categories["messages"]] == ["medlar prompt"]
    assert [p["title"] for p in categories["presets"]] == ["medlar preset"]
    assert [f["name"] for f in categories["files"]] == ["medlar.txt"]
    assert [m["prompt"] for m in categories["media"]] == ["medlar picture"]


async def test_without_money_on_either_side_the_telegram_account_takes_the_web_history(
    uow: UnitOfWork, redis: Redis
) -> None:
    web_id, address, session_id = await _web_account(uow)
    await with_history(uow, web_id, "sorrel")
    tg = telegram_id()
    tg_id = (await register(uow, tg_id=tg)).user.id
    tg_chat = await with_history(uow, tg_id, "chervil")
    before_web, before_tg = await history_counts(uow, web_id), await history_counts(uow, tg_id)
    code = await _code(uow, redis, web_id, session_id)
    outcome = await linking.confirm_telegram_link(
        uow, redis, code=code, telegram_id=tg, username=None, now=NOW, store=STORE
    )
    assert (outcome.user_id, outcome.erased_user_id) == (tg_id, web_id)
    assert outcome.web_signed_out and outcome.history_moved
    after = await history_counts(uow, tg_id)
    assert after == {name: before_web[name] + before_tg[name] for name in after}
    assert await history_counts(uow, web_id) == dict.fromkeys(after, 0)
    assert await _providers(uow, tg_id) == {"email", "telegram"}
    # The bot's current conversation stays the Telegram account's own.
    assert (await _user(uow, tg_id)).features["conversation_id"] == tg_chat
    assert (await _user(uow, web_id)).deleted_at is not None
    with pytest.raises(sessions.SessionInvalid):
        await sessions.check(uow, session_id=session_id, user_id=web_id, now=NOW)
    status = await linking.link_status(redis, code=code)
    assert (status.linked, status.web_signed_out, status.history_moved) == (True, True, True)
    # Signing in on the web with the same address finds the Telegram account.
    async with uow.reading():
        owner = await uow.session.scalar(
            select(Identity.user_id).where(
                Identity.provider == "email", Identity.subject == address
            )
        )
    assert owner == tg_id


async def test_accounts_that_both_have_money_and_history_stay_exactly_as_they_were(
    uow: UnitOfWork, redis: Redis
) -> None:
    web_id, _, session_id = await _web_account(uow)
    await _credit(uow, web_id, 3_000)
    await with_history(uow, web_id, "lovage")
    tg = telegram_id()
    tg_id = (await register(uow, tg_id=tg)).user.id
    await _credit(uow, tg_id, 4_000)
    await with_history(uow, tg_id, "fennel")
    before_web, before_tg = await history_counts(uow, web_id), await history_counts(uow, tg_id)
    code = await _code(uow, redis, web_id, session_id)
    with pytest.raises(AccountsNotMergeable):
        await linking.confirm_telegram_link(
            uow, redis, code=code, telegram_id=tg, username=None, now=NOW, store=STORE
        )
    assert (await history_counts(uow, web_id), await history_counts(uow, tg_id)) == (
        before_web,
        before_tg,
    )
    assert (await _user(uow, web_id)).telegram_id is None
    assert await _providers(uow, tg_id) == {"telegram"}
    assert await _balance_and_sum(uow, web_id) == (3_000, 3_000)
    assert await _balance_and_sum(uow, tg_id) == (4_000, 4_000)
    # The code is not used up: the website still waits for it.
    assert not (await linking.link_status(redis, code=code)).linked


async def test_an_account_that_invited_somebody_has_money(uow: UnitOfWork, redis: Redis) -> None:
    web_id, _, session_id = await _web_account(uow)
    await _credit(uow, web_id, 1_000)
    tg = telegram_id()
    tg_user = (await register(uow, tg_id=tg)).user
    # A friend joined through the Telegram account's link: its referral share is money.
    await register(uow, payload=f"ref_{tg_user.referral_code}")
    code = await _code(uow, redis, web_id, session_id)
    with pytest.raises(AccountsNotMergeable):
        await linking.confirm_telegram_link(
            uow, redis, code=code, telegram_id=tg, username=None, now=NOW
        )


async def test_the_survivor_takes_the_inviter_of_the_erased_account_when_it_has_none(
    uow: UnitOfWork, redis: Redis
) -> None:
    inviter = (await register(uow)).user
    web_id, _, session_id = await _web_account(uow)
    await _credit(uow, web_id, 1_000)
    tg = telegram_id()
    tg_id = (await register(uow, tg_id=tg, payload=f"ref_{inviter.referral_code}")).user.id
    assert (await _user(uow, tg_id)).invited_by == inviter.id
    code = await _code(uow, redis, web_id, session_id)
    await linking.confirm_telegram_link(
        uow, redis, code=code, telegram_id=tg, username=None, now=NOW
    )
    assert (await _user(uow, web_id)).invited_by == inviter.id
    # Counted once when this person joined, and still once.
    assert (await _user(uow, inviter.id)).ref1_count == 1


async def test_a_document_both_accounts_uploaded_is_kept_once_where_both_used_it(
    uow: UnitOfWork, redis: Redis
) -> None:
    same = b"The shared almanac of the fig grove, long enough to be indexed twice."
    web_id, _, session_id = await _web_account(uow)
    await _credit(uow, web_id, 1_000)
    await with_history(uow, web_id, "fig", document=same)
    tg = telegram_id()
    tg_id = (await register(uow, tg_id=tg)).user.id
    tg_chat = await with_history(uow, tg_id, "date", document=same)
    async with uow.reading():
        tg_key = await uow.session.scalar(select(File.storage_key).where(File.user_id == tg_id))
    assert tg_key is not None and (await STORE.load(tg_key))
    code = await _code(uow, redis, web_id, session_id)
    await linking.confirm_telegram_link(
        uow, redis, code=code, telegram_id=tg, username=None, now=NOW, store=STORE
    )
    kept = await files.list_files(uow, web_id, conversation_id=tg_chat)
    assert [(f.name, f.attached) for f in kept] == [("fig.txt", True)]
    assert await history_counts(uow, tg_id) == dict.fromkeys(await history_counts(uow, tg_id), 0)
    # The erased copy's bytes are gone from the store.
    with pytest.raises(FileNotFoundError):
        await STORE.load(tg_key)


async def test_the_same_kind_of_sign_in_on_both_sides_is_refused(
    uow: UnitOfWork, redis: Redis
) -> None:
    web_id, _, session_id = await _web_account(uow)
    tg = telegram_id()
    tg_id = (await register(uow, tg_id=tg)).user.id
    address = f"{secrets.token_hex(6)}@example.test"
    uow.session.add(Identity(user_id=tg_id, provider="email", subject=address, email=address))
    await uow.commit()
    code = await _code(uow, redis, web_id, session_id)
    with pytest.raises(SameSignInMethods):
        await linking.confirm_telegram_link(
            uow, redis, code=code, telegram_id=tg, username=None, now=NOW
        )
    assert await _providers(uow, tg_id) == {"telegram", "email"}
    assert (await _user(uow, web_id)).deleted_at is None


async def test_two_confirmations_at_once_merge_once(engine: AsyncEngine, redis: Redis) -> None:
    factory = UnitOfWorkFactory.for_engine(engine)
    async with factory() as uow:
        web_id, _, session_id = await _web_account(uow)
        await _credit(uow, web_id, 2_000)
        tg = telegram_id()
        tg_id = (await register(uow, tg_id=tg)).user.id
        await with_history(uow, tg_id, "rowan")
        before = await history_counts(uow, tg_id)
        code = await _code(uow, redis, web_id, session_id)

    async def confirm() -> linking.LinkOutcome | None:
        async with factory() as uow:
            try:
                return await linking.confirm_telegram_link(
                    uow, redis, code=code, telegram_id=tg, username=None, now=NOW, store=STORE
                )
            except LinkCodeInvalid:
                return None

    outcomes = [o for o in await asyncio.gather(*(confirm() for _ in range(4))) if o is not None]
    merged = [o for o in outcomes if not o.already]
    assert [(o.user_id, o.erased_user_id) for o in merged] == [(web_id, tg_id)]
    assert all(o.user_id == web_id for o in outcomes)
    async with factory() as uow:
        assert await history_counts(uow, web_id) == before
        assert await _balance_and_sum(uow, web_id) == (2_000, 2_000)
        assert await _providers(uow, web_id) == {"email", "telegram"}
