"""Support through the admin chat and the operator's commands, end to end through the sandbox:
an administrator, normal users, a forum admin chat and a plain one."""

from __future__ import annotations

import asyncio
import dataclasses
import secrets
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from aiogram.types import BotCommandScopeChat, BotCommandScopeDefault
from sqlalchemy import select, update

from bot.dispatcher import create_i18n
from bot.notifier import BotNotifier
from core.dto import ClientInfo
from core.services import accounts, billing, broadcasts
from core.services.accounts import NewIdentity
from db.models import AdminAction, Broadcast, User
from tests.bot.conftest import (
    POLICY_VERSION,
    BotHarness,
    Person,
    PersonFactory,
    buttons,
    text_of,
)
from worker.deps import JobDeps
from worker.jobs.broadcasts import deliver

PNG = (
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00"
    b"\x1f\x15\xc4\x89\x00\x00\x00\rIDATx\x9cc\xf8\xff\xff?\x00\x05\xfe\x02\xfe\xa7\x35\x81\x84"
    b"\x00\x00\x00\x00IEND\xaeB`\x82"
)


@dataclasses.dataclass
class Desk:
    admin: Person
    chat_id: int
    forum: bool


async def _onboard(person: PersonFactory, name: str, **kw: Any) -> Person:
    someone: Person = await person(name, **kw)
    [consent] = await someone.say("/start")
    await someone.accept(consent)
    return someone


async def _desk(harness: BotHarness, person: PersonFactory, *, forum: bool) -> Desk:
    admin: Person = await person("Ops")
    if forum:
        chat = await harness.client.create_forum("Support", [admin.id], owner_id=admin.id)
    else:
        chat = await harness.client.create_group(
            "Support desk", [admin.id], chat_type="supergroup", owner_id=admin.id
        )
    return Desk(admin, int(chat["chat"]["id"] if "chat" in chat else chat["id"]), forum)


@pytest.fixture
async def configure(harness: BotHarness) -> AsyncIterator[Callable[..., None]]:
    """Set the deployment's admins and admin chat for one test. The harness's bot runs for the
    whole session, so its settings object is changed in place: the same as restarting the bot
    with BOT__ADMIN_IDS and BOT__ADMIN_CHAT_ID set."""
    ctx = harness.dp["ctx"]
    original = {f.name: getattr(ctx, f.name) for f in dataclasses.fields(ctx)}

    def apply(**changes: Any) -> None:
        for name, value in changes.items():
            object.__setattr__(ctx, name, value)

    yield apply
    apply(**original)


async def _wait_message(
    harness: BotHarness, chat_id: int, after: int, check: Callable[[dict[str, Any]], bool]
) -> dict[str, Any]:
    event = await harness.client.wait_for(
        lambda e: e["type"] == "bot_message" and check(e["message"]), chat_id=chat_id, after=after
    )
    return dict(event["message"])


async def test_support_in_a_forum_gives_each_user_a_topic_and_relays_both_ways(
    harness: BotHarness, person: PersonFactory, configure: Callable[..., None]
) -> None:
    desk = await _desk(harness, person, forum=True)
    configure(admin_ids=frozenset({desk.admin.id}), admin_chat_id=desk.chat_id)
    lea = await _onboard(person, "Lea")
    [prompt] = await lea.say("/support")
    assert "goes to our support team" in text_of(prompt)

    after = await harness.client.last_seq()
    [receipt] = await lea.say("My payment did not arrive")
    assert "Delivered to support" in text_of(receipt)
    header = await _wait_message(
        harness, desk.chat_id, after, lambda m: "Balance:" in (m.get("text") or "")
    )
    topic = header["message_thread_id"]
    assert topic and "Lea" in header["text"] and "Language: en" in header["text"]
    relayed = await _wait_message(
        harness, desk.chat_id, after, lambda m: m.get("text") == "My payment did not arrive"
    )
    assert relayed["message_thread_id"] == topic
    # The user's identity stays with support; the copy comes from the bot.
    assert relayed["from"]["is_bot"]

    # Support answers in the topic: the user gets it from the bot, nobody's name attached.
    after = await harness.client.last_seq()
    await harness.client.send_text(
        desk.chat_id, "We see it, one moment", from_user_id=desk.admin.id, message_thread_id=topic
    )
    [answer] = await lea.replies(after, 1)
    assert text_of(answer) == "We see it, one moment"
    assert answer["message"]["from"]["is_bot"]

    # Media both ways.
    after = await harness.client.last_seq()
    await harness.client.send_photo(lea.id, PNG, caption="the receipt")
    await _wait_message(harness, desk.chat_id, after, lambda m: m.get("caption") == "the receipt")
    after = await harness.client.last_seq()
    await harness.client.send_document(
        desk.chat_id,
        "steps.txt",
        b"1. Open /balance",
        "text/plain",
        from_user_id=desk.admin.id,
        message_thread_id=topic,
    )
    document = await _wait_message(harness, lea.id, after, lambda m: "document" in m)
    assert document["document"]["file_name"] == "steps.txt"

    # Edits follow on both sides.
    user_message = next(
        m
        for m in (await harness.client.transcript(lea.id))["messages"]
        if m.get("text") == "My payment did not arrive"
    )
    after = await harness.client.last_seq()
    await harness.client.edit_message(
        lea.id, user_message["message_id"], text="My payment of 100 Stars did not arrive"
    )
    await harness.client.wait_for(
        lambda e: (
            e["type"] == "message_edited"
            and e["message"].get("text") == "My payment of 100 Stars did not arrive"
        ),
        chat_id=desk.chat_id,
        after=after,
    )
    admin_reply = next(
        m
        for m in (await harness.client.transcript(desk.chat_id))["messages"]
        if m.get("text") == "We see it, one moment"
    )
    after = await harness.client.last_seq()
    await harness.client.edit_message(
        desk.chat_id,
        admin_reply["message_id"],
        text="Found it: credited now",
        from_user_id=desk.admin.id,
    )
    await harness.client.wait_for(
        lambda e: (
            e["type"] == "message_edited" and e["message"].get("text") == "Found it: credited now"
        ),
        chat_id=lea.id,
        after=after,
    )

    # A closed topic is reopened; the same topic is used again.
    await harness.client.close_topic(desk.chat_id, topic, from_user_id=desk.admin.id)
    after = await harness.client.last_seq()
    [receipt] = await lea.say("Thanks!")
    assert "Delivered to support" in text_of(receipt)
    thanks = await _wait_message(harness, desk.chat_id, after, lambda m: m.get("text") == "Thanks!")
    assert thanks["message_thread_id"] == topic
    topics = [
        m
        for m in (await harness.client.transcript(desk.chat_id))["messages"]
        if "forum_topic_created" in m
    ]
    assert len(topics) == 1

    # Another user gets a topic of their own.
    max_ = await _onboard(person, "Max")
    await max_.say("/support")
    after = await harness.client.last_seq()
    await max_.say("Hello from Max")
    other = await _wait_message(
        harness, desk.chat_id, after, lambda m: m.get("text") == "Hello from Max"
    )
    assert other["message_thread_id"] != topic

    # A command ends the support conversation: text goes to the model again.
    [balance] = await lea.say("/balance")
    assert "Balance:" in text_of(balance)

    # The user blocks the bot: support is told, nothing is retried.
    await harness.client.block(lea.id)
    after = await harness.client.last_seq()
    await harness.client.send_text(
        desk.chat_id, "Anything else?", from_user_id=desk.admin.id, message_thread_id=topic
    )
    notice = await _wait_message(
        harness, desk.chat_id, after, lambda m: "blocked the bot" in (m.get("text") or "")
    )
    assert notice["message_thread_id"] == topic
    async with harness.uow_factory() as uow:
        row = await uow.users.by_telegram_id(lea.id)
        assert row is not None and row.bot_blocked_at is not None


async def test_support_in_a_plain_group_threads_by_replies(
    harness: BotHarness, person: PersonFactory, configure: Callable[..., None]
) -> None:
    desk = await _desk(harness, person, forum=False)
    configure(admin_ids=frozenset({desk.admin.id}), admin_chat_id=desk.chat_id)
    ned = await _onboard(person, "Ned")
    await ned.say("/support")
    after = await harness.client.last_seq()
    await ned.say("Where is my video?")
    header = await _wait_message(
        harness, desk.chat_id, after, lambda m: "Balance:" in (m.get("text") or "")
    )
    relayed = await _wait_message(
        harness, desk.chat_id, after, lambda m: m.get("text") == "Where is my video?"
    )
    assert relayed["reply_to_message"]["message_id"] == header["message_id"]
    # A reply to the relayed message reaches the user, as a reply to their own message.
    after = await harness.client.last_seq()
    await harness.client.send_text(
        desk.chat_id,
        "It is on its way",
        from_user_id=desk.admin.id,
        reply_to_message_id=relayed["message_id"],
    )
    [answer] = await ned.replies(after, 1)
    assert text_of(answer) == "It is on its way"
    assert answer["message"].get("reply_to_message", {}).get("text") == "Where is my video?"
    # Chatter in the group that replies to nothing reaches nobody.
    after = await harness.client.last_seq()
    await harness.client.send_text(desk.chat_id, "coffee?", from_user_id=desk.admin.id)
    await asyncio.sleep(0.5)
    events, _ = await harness.client.events(after=after, chat_id=ned.id)
    assert not [e for e in events if e["type"] == "bot_message"]


async def test_admin_commands_do_their_work_and_leave_an_audit_record(
    harness: BotHarness, person: PersonFactory, configure: Callable[..., None]
) -> None:
    boss = await _onboard(person, "Boss")
    configure(admin_ids=frozenset({boss.id}))
    olga = await _onboard(person, "Olga")

    [card] = await boss.say(f"/user {olga.id}")
    assert "Olga" in text_of(card) and "Balance: ₽0.00" in text_of(card)
    [adjusted] = await boss.say(f"/adjust {olga.id} 150 goodwill after an outage")
    assert "+₽150.00, now ₽150.00" in text_of(adjusted)
    [refused] = await boss.say(f"/adjust {olga.id} -500 too much")
    assert "Not enough money" in text_of(refused)

    [blocked] = await boss.say(f"/block {olga.id} spam")
    assert "is blocked" in text_of(blocked)
    after = await harness.client.last_seq()
    await harness.client.send_text(olga.id, "/balance")
    await asyncio.sleep(0.5)
    events, _ = await harness.client.events(after=after, chat_id=olga.id)
    assert not [e for e in events if e["type"] == "bot_message"]
    [unblocked] = await boss.say(f"/unblock {olga.id}")
    assert "is unblocked" in text_of(unblocked)
    [view] = await olga.say("/balance")
    assert "₽150.00" in text_of(view)

    # A Stars payment refunded by the operator; a second /refund is harmless.
    [topup] = await olga.say("/topup")
    offer = next(b for b in buttons(topup) if b["text"].startswith("⭐️ 50 "))
    [invoice] = await olga.tap(topup, offer["callback_data"])
    after = await harness.client.last_seq()
    await harness.client.pay(olga.id, message_id=invoice["message_id"])
    paid = await harness.client.wait_for(
        lambda e: e["type"] == "payment_succeeded", chat_id=olga.id, after=after
    )
    await olga.replies(after, 1)
    [refunded] = await boss.say(f"/refund {paid['charge_id']}")
    assert "Taken back from the balance: ₽65.00" in text_of(refunded)
    # Asked again: nothing more is taken, and the operator is told what the refund took.
    [again] = await boss.say(f"/refund {paid['charge_id']}")
    assert "Refunded before. Taken back from the balance then: ₽65.00" in text_of(again)

    after = await harness.client.last_seq()
    await harness.client.send_text(boss.id, "/stats 7")
    chart = await harness.client.wait_for(
        lambda e: e["type"] == "bot_message" and "photo" in e["message"],
        chat_id=boss.id,
        after=after,
    )
    assert "Users:" in (chart["message"].get("caption") or "")

    async with harness.uow_factory() as uow:
        olga_id = await uow.session.scalar(select(User.id).where(User.telegram_id == olga.id))
        actions = [
            (a.action, a.admin_telegram_id)
            for a in await uow.session.scalars(
                select(AdminAction)
                .where(AdminAction.target_user_id == olga_id)
                .order_by(AdminAction.id)
            )
        ]
        assert actions == [
            ("adjust", boss.id),
            ("block", boss.id),
            ("unblock", boss.id),
            ("refund", boss.id),
            ("refund", boss.id),
        ]
        assert olga_id is not None
        assert await billing.check_consistency(uow, olga_id)


async def test_admin_commands_do_not_exist_for_anyone_else(
    harness: BotHarness, person: PersonFactory, configure: Callable[..., None]
) -> None:
    boss = await _onboard(person, "Chief")
    configure(admin_ids=frozenset({boss.id}))
    pat = await _onboard(person, "Pat")
    for command in (
        f"/user {boss.id}",
        f"/adjust {pat.id} 1000 gift",
        "/refund x",
        f"/block {boss.id}",
        f"/unblock {pat.id}",
        "/stats",
        "/broadcast all",
    ):
        [reply] = await pat.say(command)
        # The normal bot: the main menu, as for any unknown command.
        assert "Balance:" not in text_of(reply) and "Usage" not in text_of(reply)
        assert any(b["text"] == "💬 Support" for b in buttons(reply)), command
    async with harness.uow_factory() as uow:
        pat_id = await uow.session.scalar(select(User.id).where(User.telegram_id == pat.id))
        assert pat_id is not None
        assert (await billing.get_balance(uow, pat_id)).balance == 0


async def test_a_broadcast_interrupted_midway_resumes_and_reaches_everyone_once(
    harness: BotHarness, person: PersonFactory, configure: Callable[..., None]
) -> None:
    boss = await _onboard(person, "Herald")
    configure(admin_ids=frozenset({boss.id}))
    readers = [await _onboard(person, f"Reader{i}", language_code="ru") for i in range(5)]
    quiet = await _onboard(person, "Quiet", language_code="ru")
    async with harness.uow_factory() as uow:
        # Only the readers opted in to marketing messages (accounts left by earlier tests in
        # this database are not part of the audience).
        await uow.session.execute(update(User).values(marketing_opt_in=False))
        await uow.session.execute(
            update(User)
            .where(User.telegram_id.in_([r.id for r in readers]))
            .values(marketing_opt_in=True)
        )
        await uow.commit()
    after = await harness.client.last_seq()
    await harness.client.send_text(boss.id, "Новая модель уже доступна!")
    source = await harness.client.wait_for(
        lambda e: (
            e["type"] == "user_message" and "Новая модель" in (e["message"].get("text") or "")
        ),
        chat_id=boss.id,
        after=after,
    )
    # A worker starts the broadcast slowly and stops after two messages (a restart).
    async with harness.uow_factory() as uow:
        created = await broadcasts.create(
            uow,
            admin_telegram_id=boss.id,
            source_chat_id=boss.id,
            source_message_id=source["message_id"],
            segment="ru",
        )
    assert created.total == 5
    slow = JobDeps(
        uow_factory=harness.uow_factory,
        notifier=BotNotifier(harness.bot, create_i18n()),
        broadcast_rate=4.0,
        redis=harness.dp["redis"],
    )
    run = asyncio.create_task(deliver(slow, created.id, "netroom:test:lock", "t"))
    for _ in range(200):
        async with harness.uow_factory() as uow:
            row = await uow.session.get(Broadcast, created.id)
            assert row is not None
            if row.sent >= 2:
                break
        await asyncio.sleep(0.02)
    run.cancel()
    with pytest.raises(asyncio.CancelledError):
        await run
    # After the restart the scheduler's resume job hands it to a worker, which finishes it.
    await harness.dp["jobs"].enqueue("broadcasts.resume")
    final: tuple[str, int, int] = ("", 0, 0)
    for _ in range(300):
        async with harness.uow_factory() as uow:
            row = await uow.session.get(Broadcast, created.id)
            assert row is not None
            final = (row.status, row.sent, row.failed)
        if final[0] == "done":
            break
        await asyncio.sleep(0.05)
    assert final == ("done", 5, 0)
    for reader in readers:
        received = [
            m
            for m in await harness.client.bot_messages(reader.id)
            if m.get("text") == "Новая модель уже доступна!"
        ]
        assert len(received) == 1, reader.id
    assert not [
        m
        for m in await harness.client.bot_messages(quiet.id)
        if m.get("text") == "Новая модель уже доступна!"
    ]


async def test_the_broadcast_command_queues_it_and_reports_progress(
    harness: BotHarness, person: PersonFactory, configure: Callable[..., None]
) -> None:
    boss = await _onboard(person, "Crier")
    configure(admin_ids=frozenset({boss.id}))
    fan = await _onboard(person, "Fan")
    async with harness.uow_factory() as uow:
        await uow.session.execute(
            update(User).where(User.telegram_id == fan.id).values(marketing_opt_in=True)
        )
        await uow.commit()
    after = await harness.client.last_seq()
    await harness.client.send_text(boss.id, "Weekend discount")
    source = await harness.client.wait_for(
        lambda e: e["type"] == "user_message" and e["message"].get("text") == "Weekend discount",
        chat_id=boss.id,
        after=after,
    )
    # The message is also a chat request (the admin has no money): its answer comes first, so
    # it is not taken for the command's.
    await harness.client.wait_for(
        lambda e: e["type"] == "bot_message", chat_id=boss.id, after=source["seq"]
    )
    [usage] = await boss.say("/broadcast everyone")
    assert "reply to it with /broadcast" in text_of(usage)
    after = await harness.client.last_seq()
    await harness.client.send_text(
        boss.id, "/broadcast marketing", reply_to_message_id=source["message_id"]
    )
    await harness.client.wait_for(
        lambda e: e["type"] == "message_edited" and "finished" in (e["message"].get("text") or ""),
        chat_id=boss.id,
        after=after,
        wait=20,
    )
    assert [
        m for m in await harness.client.bot_messages(fan.id) if m.get("text") == "Weekend discount"
    ]


async def test_erasing_the_account_removes_its_support_topic_from_the_admin_chat(
    harness: BotHarness, person: PersonFactory, configure: Callable[..., None]
) -> None:
    desk = await _desk(harness, person, forum=True)
    configure(admin_ids=frozenset({desk.admin.id}), admin_chat_id=desk.chat_id)
    rue = await _onboard(person, "Rue")
    await rue.say("/support")
    after = await harness.client.last_seq()
    await rue.say("Please delete everything about me")
    relayed = await _wait_message(
        harness, desk.chat_id, after, lambda m: m.get("text") == "Please delete everything about me"
    )
    topic = relayed["message_thread_id"]
    [confirm] = await rue.say("/delete")
    delete = next(b for b in buttons(confirm) if "Delete my account" in b["text"])
    [gone] = await rue.tap(confirm, delete["callback_data"])
    assert "has been deleted" in text_of(gone)

    async def left_in_topic() -> list[dict[str, Any]]:
        messages = (await harness.client.transcript(desk.chat_id))["messages"]
        return [m for m in messages if m.get("message_thread_id") == topic and not m["deleted"]]

    for _ in range(100):
        if not await left_in_topic():
            break
        await asyncio.sleep(0.05)
    assert await left_in_topic() == []


async def test_admin_user_card_shows_a_web_only_account_by_its_email(
    harness: BotHarness, person: PersonFactory, configure: Callable[..., None]
) -> None:
    boss = await _onboard(person, "Boss")
    configure(admin_ids=frozenset({boss.id}))
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
    [card] = await boss.say(f"/user {address}")
    text = text_of(card)
    assert f"👤 {address}" in text and f"id {web.id}" in text
    assert "Telegram" not in text and "None" not in text
    assert "Signs in with: email" in text


async def test_admins_get_the_admin_commands_in_their_menu_and_others_do_not(
    harness: BotHarness, person: PersonFactory, configure: Callable[..., None]
) -> None:
    boss = await person("Boss")
    configure(admin_ids=frozenset({boss.id}))
    # The admin's chat exists once they open the bot: /start sets their menu.
    await boss.say("/start")
    own = await harness.bot.get_my_commands(scope=BotCommandScopeChat(chat_id=boss.id))
    names = {c.command for c in own}
    assert {"user", "adjust", "refund", "block", "stats", "broadcast", "new"} <= names
    russian = await harness.bot.get_my_commands(
        scope=BotCommandScopeChat(chat_id=boss.id), language_code="ru"
    )
    assert "user" in {c.command for c in russian}
    everyone = await harness.bot.get_my_commands(scope=BotCommandScopeDefault())
    assert "new" in {c.command for c in everyone}
    assert not {"user", "adjust", "refund", "broadcast"} & {c.command for c in everyone}
