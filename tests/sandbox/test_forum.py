"""Forums, topics, copying and forwarding, people in groups, Stars subscriptions: the sandbox's
Bot API answers as Telegram does, over real HTTP."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.exceptions import TelegramBadRequest, TelegramForbiddenError
from aiogram.types import (
    BufferedInputFile,
    ChatMemberAdministrator,
    ChatMemberOwner,
    MessageOriginHiddenUser,
    MessageOriginUser,
)

from sandbox.app import SandboxServer, start_sandbox
from sandbox.client import SandboxClient, SandboxError
from sandbox.telegram import TelegramOptions

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32


def new_token() -> str:
    return f"{secrets.randbelow(10**9) + 10**9}:{secrets.token_urlsafe(27)}"


@pytest.fixture(scope="module")
async def sandbox() -> AsyncIterator[SandboxServer]:
    server = await start_sandbox(options=TelegramOptions(pre_checkout_timeout=5))
    yield server
    await server.stop()


@pytest.fixture
async def api(sandbox: SandboxServer) -> AsyncIterator[Any]:
    token = new_token()
    async with httpx.AsyncClient(base_url=f"{sandbox.url}/bot{token}/", timeout=60) as http:

        async def call(method: str, **params: Any) -> httpx.Response:
            return await http.post(method, json=params)

        call.token = token  # type: ignore[attr-defined]
        call.bot_id = int(token.split(":")[0])  # type: ignore[attr-defined]
        yield call


@pytest.fixture
async def client(sandbox: SandboxServer, api: Any) -> AsyncIterator[SandboxClient]:
    async with SandboxClient(sandbox.url) as c:
        await api("getMe")
        await c.register_bot(api.token)
        yield c


@pytest.fixture
async def tg(sandbox: SandboxServer, api: Any) -> AsyncIterator[Bot]:
    """The same bot through aiogram, to check its types parse what the sandbox answers."""
    bot = Bot(api.token, session=AiohttpSession(api=TelegramAPIServer.from_base(sandbox.url)))
    yield bot
    await bot.session.close()


def ok(response: httpx.Response) -> Any:
    body = response.json()
    assert body["ok"] is True, body
    return body["result"]


def refused(response: httpx.Response, description: str, status: int = 400) -> None:
    assert response.status_code == status, response.text
    assert response.json() == {"ok": False, "error_code": status, "description": description}


async def drain(api: Any) -> list[dict[str, Any]]:
    """The pending updates, confirmed."""
    updates: list[dict[str, Any]] = ok(await api("getUpdates"))
    if updates:
        await api("getUpdates", offset=updates[-1]["update_id"] + 1)
    return updates


async def people(client: SandboxClient) -> tuple[dict[str, Any], dict[str, Any]]:
    """An administrator (who owns the support forum) and a customer who started the bot."""
    admin = await client.create_user("Ada", username="ada_support")
    customer = await client.create_user("Carl", last_name="Customer")
    await client.send_text(customer["id"], "/start")
    return admin, customer


async def forum_with_topic(
    client: SandboxClient, api: Any, name: str = "Carl #1"
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any], int]:
    admin, customer = await people(client)
    forum = await client.create_forum("Support", [admin["id"]])
    topic = ok(await api("createForumTopic", chat_id=forum["id"], name=name))
    return admin, customer, forum, topic["message_thread_id"]


async def transcript_message(client: SandboxClient, chat_id: int, message_id: int) -> Any:
    messages = (await client.transcript(chat_id))["messages"]
    return next(m for m in messages if m["message_id"] == message_id)


# --- forums and topics ---------------------------------------------------------------------------


async def test_a_forum_is_a_supergroup_with_a_minus_100_id(client: SandboxClient, api: Any) -> None:
    admin, _ = await people(client)
    forum = await client.create_forum("Support", [admin["id"]])
    assert str(forum["id"]).startswith("-100") and len(str(forum["id"])) == 14
    assert forum["type"] == "supergroup" and forum["is_forum"] is True
    chat = ok(await api("getChat", chat_id=forum["id"]))
    assert (chat["type"], chat["is_forum"]) == ("supergroup", True)
    group = await client.create_group("Plain", [admin["id"]])
    assert not str(group["id"]).startswith("-100")
    assert "is_forum" not in ok(await api("getChat", chat_id=group["id"]))
    with pytest.raises(SandboxError):
        await client.create_group("Bad", [admin["id"]], chat_type="group", is_forum=True)


async def test_get_chat_parses_in_aiogram(client: SandboxClient, api: Any, tg: Bot) -> None:
    admin, _ = await people(client)
    forum = await client.create_forum("Support", [admin["id"]])
    chat = await tg.get_chat(forum["id"])
    assert chat.is_forum is True


async def test_topic_lifecycle(client: SandboxClient, api: Any) -> None:
    admin, _ = await people(client)
    forum = await client.create_forum("Support", [admin["id"]])
    topic = ok(await api("createForumTopic", chat_id=forum["id"], name="  Carl\nCustomer "))
    thread = topic["message_thread_id"]
    assert topic == {"message_thread_id": thread, "name": "Carl Customer", "icon_color": 7322096}
    created = await transcript_message(client, forum["id"], thread)
    assert created["forum_topic_created"] == {"name": "Carl Customer", "icon_color": 7322096}
    assert created["message_thread_id"] == thread and created["is_topic_message"] is True
    assert created["is_bot_message"] is True

    edit = {"chat_id": forum["id"], "message_thread_id": thread}
    assert ok(await api("editForumTopic", name="Carl (VIP)", **edit)) is True
    refused(
        await api("editForumTopic", name="Carl (VIP)", **edit), "Bad Request: TOPIC_NOT_MODIFIED"
    )
    assert ok(await api("closeForumTopic", **edit)) is True
    refused(await api("closeForumTopic", **edit), "Bad Request: TOPIC_NOT_MODIFIED")
    assert ok(await api("reopenForumTopic", **edit)) is True
    refused(await api("reopenForumTopic", **edit), "Bad Request: TOPIC_NOT_MODIFIED")
    service = (await client.transcript(forum["id"]))["messages"]
    kinds = [
        k
        for m in service
        for k in ("forum_topic_edited", "forum_topic_closed", "forum_topic_reopened")
        if k in m
    ]
    assert kinds == ["forum_topic_edited", "forum_topic_closed", "forum_topic_reopened"]
    [edited] = [m["forum_topic_edited"] for m in service if "forum_topic_edited" in m]
    assert edited == {"name": "Carl (VIP)"}
    assert service[0]["from"]["id"] == admin["id"]  # the supergroup's creation, message 1
    topics = (await client.transcript(forum["id"]))["topics"]
    assert [(t["name"], t["closed"]) for t in topics] == [("Carl (VIP)", False)]

    sent = ok(await api("sendMessage", chat_id=forum["id"], message_thread_id=thread, text="hi"))
    assert ok(await api("deleteForumTopic", **edit)) is True
    assert (await transcript_message(client, forum["id"], sent["message_id"]))["deleted"] is True
    refused(
        await api("sendMessage", chat_id=forum["id"], message_thread_id=thread, text="again"),
        "Bad Request: message thread not found",
    )
    refused(await api("closeForumTopic", **edit), "Bad Request: TOPIC_ID_INVALID")


async def test_topic_errors(client: SandboxClient, api: Any) -> None:
    admin, customer = await people(client)
    forum = await client.create_forum("Support", [admin["id"]])
    group = await client.create_group("Plain", [admin["id"]], chat_type="supergroup")
    refused(
        await api("createForumTopic", chat_id=group["id"], name="x"),
        "Bad Request: the chat is not a forum",
    )
    refused(
        await api("createForumTopic", chat_id=forum["id"], name="  "),
        "Bad Request: title must be non-empty",
    )
    refused(
        await api("createForumTopic", chat_id=forum["id"], name="x", icon_color=123),
        "Bad Request: invalid icon color specified",
    )
    long = ok(await api("createForumTopic", chat_id=forum["id"], name="n" * 200))
    assert long["name"] == "n" * 128
    pink = ok(await api("createForumTopic", chat_id=forum["id"], name="p", icon_color=16749490))
    assert pink["icon_color"] == 16749490
    refused(
        await api("editForumTopic", chat_id=forum["id"], message_thread_id=0, name="x"),
        "Bad Request: invalid message thread identifier specified",
    )
    refused(
        await api("sendMessage", chat_id=forum["id"], message_thread_id=999_999, text="x"),
        "Bad Request: message thread not found",
    )
    # The General topic is not addressed by a thread id.
    refused(
        await api("sendMessage", chat_id=forum["id"], message_thread_id=1, text="x"),
        "Bad Request: message thread not found",
    )
    refused(
        await api("sendMessage", chat_id=customer["id"], message_thread_id=5, text="x"),
        "Bad Request: message thread not found",
    )
    await client.set_admin(forum["id"], rights={"can_delete_messages": True})
    refused(
        await api("createForumTopic", chat_id=forum["id"], name="x"),
        "Bad Request: not enough rights to create a topic",
    )
    # A topic someone else created is theirs to manage.
    made = await client.create_topic(forum["id"], "Ada's", from_user_id=admin["id"])
    thread = made["topic"]["message_thread_id"]
    refused(
        await api("closeForumTopic", chat_id=forum["id"], message_thread_id=thread),
        "Bad Request: not enough rights to close or open the topic",
    )
    refused(
        await api("editForumTopic", chat_id=forum["id"], message_thread_id=thread, name="z"),
        "Bad Request: not enough rights to edit the topic",
    )
    # ... while its own topics stay the bot's to manage.
    assert ok(
        await api(
            "closeForumTopic", chat_id=forum["id"], message_thread_id=long["message_thread_id"]
        )
    )
    no_bot = await client.create_forum("Elsewhere", [admin["id"]])
    await client.set_admin(no_bot["id"], is_admin=False)
    refused(
        await api("createForumTopic", chat_id=no_bot["id"], name="x"),
        "Bad Request: not enough rights to create a topic",
    )


async def test_a_closed_topic_takes_messages_only_from_topic_managers(
    client: SandboxClient, api: Any
) -> None:
    admin, _ = await people(client)
    member = await client.create_user("Mo")
    forum2 = await client.create_forum("Support 2", [admin["id"], member["id"]])
    topic2 = ok(await api("createForumTopic", chat_id=forum2["id"], name="T"))["message_thread_id"]
    assert ok(await api("closeForumTopic", chat_id=forum2["id"], message_thread_id=topic2))
    # The bot manages topics: it may still write there.
    ok(await api("sendMessage", chat_id=forum2["id"], message_thread_id=topic2, text="note"))
    with pytest.raises(SandboxError) as raised:
        await client.send_text(
            forum2["id"], "let me in", from_user_id=member["id"], message_thread_id=topic2
        )
    assert "TOPIC_CLOSED" in raised.value.body
    posted = await client.send_text(
        forum2["id"], "admin note", from_user_id=admin["id"], message_thread_id=topic2
    )
    assert posted["message"]["message_thread_id"] == topic2
    await client.set_admin(forum2["id"], rights={"can_delete_messages": True})
    refused(
        await api("sendMessage", chat_id=forum2["id"], message_thread_id=topic2, text="x"),
        "Bad Request: TOPIC_CLOSED",
    )
    # Its creator may reopen it even without the right; then anyone may write.
    assert ok(await api("reopenForumTopic", chat_id=forum2["id"], message_thread_id=topic2))
    ok(await api("sendMessage", chat_id=forum2["id"], message_thread_id=topic2, text="open"))
    await client.send_text(
        forum2["id"], "thanks", from_user_id=member["id"], message_thread_id=topic2
    )


async def test_message_thread_id_in_sent_messages_and_updates(
    client: SandboxClient, api: Any, tg: Bot
) -> None:
    admin, _, forum, thread = await forum_with_topic(client, api)
    text = await tg.send_message(forum["id"], "hello topic", message_thread_id=thread)
    assert (text.message_thread_id, text.is_topic_message) == (thread, True)
    # In a topic, a message that replies to nothing replies to the topic's first message.
    assert text.reply_to_message is not None
    assert text.reply_to_message.forum_topic_created is not None
    photo = await tg.send_photo(
        forum["id"], BufferedInputFile(PNG, "p.png"), message_thread_id=thread, caption="pic"
    )
    document = await tg.send_document(
        forum["id"], BufferedInputFile(b"doc", "d.txt"), message_thread_id=thread
    )
    assert photo.message_thread_id == thread and document.message_thread_id == thread
    general = await tg.send_message(forum["id"], "general")
    assert general.message_thread_id is None and general.is_topic_message is None

    await drain(api)
    said = await client.send_text(
        forum["id"], "admin here", from_user_id=admin["id"], message_thread_id=thread
    )
    reply = await client.send_text(
        forum["id"],
        "re: hello",
        from_user_id=admin["id"],
        reply_to_message_id=text.message_id,
    )
    updates = await drain(api)
    assert [u["message"]["text"] for u in updates] == ["admin here", "re: hello"]
    first, second = (u["message"] for u in updates)
    assert first["message_thread_id"] == thread and first["is_topic_message"] is True
    assert first["reply_to_message"]["message_id"] == thread
    assert first["chat"] == {
        "id": forum["id"],
        "type": "supergroup",
        "title": "Support",
        "is_forum": True,
    }
    # A reply lands in the replied message's topic.
    assert second["message_thread_id"] == thread
    assert second["reply_to_message"]["message_id"] == text.message_id
    assert said["update_id"] == updates[0]["update_id"] and reply["message"] == second


async def test_copy_text_photo_and_document_into_a_topic_and_back(
    client: SandboxClient, api: Any, tg: Bot
) -> None:
    admin, customer, forum, thread = await forum_with_topic(client, api)
    question = await client.send_text(customer["id"], "/support my balance is wrong")
    photo = await client.send_photo(customer["id"], PNG, caption="screenshot")
    document = await client.send_document(customer["id"], "log.txt", b"log", "text/plain")

    copies = []
    for sent in (question, photo, document):
        copies.append(
            ok(
                await api(
                    "copyMessage",
                    chat_id=forum["id"],
                    message_thread_id=thread,
                    from_chat_id=customer["id"],
                    message_id=sent["message"]["message_id"],
                )
            )
        )
    assert all(set(c) == {"message_id"} for c in copies)
    text_copy, photo_copy, document_copy = [
        await transcript_message(client, forum["id"], c["message_id"]) for c in copies
    ]
    assert text_copy["text"] == "/support my balance is wrong"
    assert text_copy["entities"] == question["message"]["entities"]
    assert text_copy["is_bot_message"] is True and "forward_origin" not in text_copy
    assert text_copy["message_thread_id"] == thread and text_copy["is_topic_message"] is True
    assert photo_copy["photo"]["file_id"] == photo["message"]["photo"][-1]["file_id"]
    assert photo_copy["caption"] == "screenshot"
    assert document_copy["document"]["file_name"] == "log.txt"

    # A new caption replaces the old one.
    recaptioned = await tg.copy_message(
        forum["id"],
        customer["id"],
        photo["message"]["message_id"],
        message_thread_id=thread,
        caption="<b>from Carl</b>",
        parse_mode="HTML",
    )
    shown = await transcript_message(client, forum["id"], recaptioned.message_id)
    assert shown["caption"] == "from Carl" and shown["caption_html"] == "<b>from Carl</b>"

    # The administrator answers in the topic; the bot copies the answer back as a reply.
    await drain(api)
    answer = await client.send_text(
        forum["id"], "Fixed, sorry!", from_user_id=admin["id"], message_thread_id=thread
    )
    keyboard = {"inline_keyboard": [[{"text": "Thanks", "callback_data": "thanks"}]]}
    back = ok(
        await api(
            "copyMessage",
            chat_id=customer["id"],
            from_chat_id=forum["id"],
            message_id=answer["message"]["message_id"],
            reply_parameters={"message_id": question["message"]["message_id"]},
            reply_markup=keyboard,
        )
    )
    private = await transcript_message(client, customer["id"], back["message_id"])
    assert private["text"] == "Fixed, sorry!" and private["is_bot_message"] is True
    assert private["reply_to_message_id"] == question["message"]["message_id"]
    assert private["reply_markup"] == keyboard and private["message_thread_id"] is None
    # The bot's own copies are not delivered back to it.
    assert [u["message"]["text"] for u in await drain(api)] == ["Fixed, sorry!"]


async def test_copy_refusals(client: SandboxClient, api: Any) -> None:
    admin, customer, forum, thread = await forum_with_topic(client, api)
    target = {"chat_id": forum["id"], "message_thread_id": thread}
    refused(
        await api("copyMessage", from_chat_id=customer["id"], message_id=99_999, **target),
        "Bad Request: message to copy not found",
    )
    stranger = await client.create_user("Stranger")
    await client.send_text(stranger["id"], "/start")
    outsider = await client.create_group("Not ours", [admin["id"]], with_bot=False)
    elsewhere = await client.send_text(outsider["id"], "private talk", from_user_id=admin["id"])
    assert elsewhere["update_id"] is None  # the bot is not there to see it
    refused(
        await api(
            "copyMessage",
            from_chat_id=outsider["id"],
            message_id=elsewhere["message"]["message_id"],
            **target,
        ),
        "Bad Request: chat not found",
    )
    never = await client.create_user("Never wrote")
    refused(
        await api("copyMessage", from_chat_id=never["id"], message_id=1, **target),
        "Bad Request: chat not found",
    )
    refused(
        await api("copyMessage", from_chat_id=forum["id"], message_id=thread, **target),
        "Bad Request: the message can't be copied",
    )
    refused(
        await api("forwardMessage", from_chat_id=forum["id"], message_id=thread, **target),
        "Bad Request: the message can't be forwarded",
    )
    refused(
        await api("forwardMessage", from_chat_id=customer["id"], message_id=99_999, **target),
        "Bad Request: message to forward not found",
    )
    invoice = ok(
        await api(
            "sendInvoice",
            chat_id=customer["id"],
            title="Stars",
            description="100 Stars",
            payload="topup:100",
            currency="XTR",
            prices=[{"label": "Stars", "amount": 100}],
        )
    )
    refused(
        await api(
            "copyMessage",
            from_chat_id=customer["id"],
            message_id=invoice["message_id"],
            **target,
        ),
        "Bad Request: the message can't be copied",
    )
    # ...but an invoice can be forwarded, and the forward can be paid.
    forwarded = ok(
        await api(
            "forwardMessage",
            chat_id=stranger["id"],
            from_chat_id=customer["id"],
            message_id=invoice["message_id"],
        )
    )
    assert forwarded["invoice"]["total_amount"] == 100
    assert forwarded["reply_markup"]["inline_keyboard"][0][0]["pay"] is True
    assert forwarded["forward_origin"]["sender_user"]["id"] == api.bot_id
    paying = await client.pay(stranger["id"], message_id=forwarded["message_id"])
    assert paying == {"status": "pre_checkout_sent"}


async def test_forward_origin(client: SandboxClient, api: Any, tg: Bot) -> None:
    admin, customer, forum, thread = await forum_with_topic(client, api)
    said = await client.send_text(customer["id"], "forward me")
    forwarded = await tg.forward_message(
        forum["id"], customer["id"], said["message"]["message_id"], message_thread_id=thread
    )
    assert isinstance(forwarded.forward_origin, MessageOriginUser)
    assert forwarded.forward_origin.sender_user.id == customer["id"]
    assert forwarded.forward_origin.date.timestamp() == said["message"]["date"]
    assert forwarded.text == "forward me" and forwarded.message_thread_id == thread
    assert forwarded.from_user is not None and forwarded.from_user.is_bot

    # A forward of a forward names the first sender.
    again = ok(
        await api(
            "forwardMessage",
            chat_id=customer["id"],
            from_chat_id=forum["id"],
            message_id=forwarded.message_id,
        )
    )
    assert again["forward_origin"]["sender_user"]["id"] == customer["id"]

    shy = await client.create_user("Shy", last_name="Person", hides_forwards=True)
    secret = await client.send_text(shy["id"], "who am I")
    hidden = await tg.forward_message(forum["id"], shy["id"], secret["message"]["message_id"])
    assert isinstance(hidden.forward_origin, MessageOriginHiddenUser)
    assert hidden.forward_origin.sender_user_name == "Shy Person"

    bot_said = ok(await api("sendMessage", chat_id=customer["id"], text="from the bot"))
    of_bot = ok(
        await api(
            "forwardMessage",
            chat_id=forum["id"],
            from_chat_id=customer["id"],
            message_id=bot_said["message_id"],
        )
    )
    assert of_bot["forward_origin"]["type"] == "user"
    assert of_bot["forward_origin"]["sender_user"]["is_bot"] is True
    assert admin["id"] != customer["id"]


async def test_a_person_forwards_a_message_to_the_bot(client: SandboxClient, api: Any) -> None:
    admin, customer = await people(client)
    group = await client.create_group("Team", [admin["id"], customer["id"]])
    said = await client.send_text(group["id"], "look at this", from_user_id=admin["id"])
    await drain(api)
    forwarded = await client.forward(customer["id"], group["id"], said["message"]["message_id"])
    [update] = await drain(api)
    message = update["message"]
    assert message == forwarded["message"]
    assert message["from"]["id"] == customer["id"] and message["text"] == "look at this"
    assert message["forward_origin"] == {
        "type": "user",
        "date": said["message"]["date"],
        "sender_user": said["message"]["from"],
    }
    outsider = await client.create_group("Other", [admin["id"]])
    other = await client.send_text(outsider["id"], "secret", from_user_id=admin["id"])
    with pytest.raises(SandboxError):
        await client.forward(customer["id"], outsider["id"], other["message"]["message_id"])


async def test_copy_messages_and_forward_messages(client: SandboxClient, api: Any) -> None:
    _, customer, forum, thread = await forum_with_topic(client, api)
    ids = [
        (await client.send_text(customer["id"], f"m{n}"))["message"]["message_id"] for n in range(3)
    ]
    target = {"chat_id": forum["id"], "message_thread_id": thread, "from_chat_id": customer["id"]}
    copied = ok(await api("copyMessages", message_ids=[ids[0], ids[2], 99_998], **target))
    assert len(copied) == 2
    texts = [
        (await transcript_message(client, forum["id"], c["message_id"]))["text"] for c in copied
    ]
    assert texts == ["m0", "m2"]
    forwarded = ok(await api("forwardMessages", message_ids=ids, **target))
    shown = [await transcript_message(client, forum["id"], f["message_id"]) for f in forwarded]
    assert [m["text"] for m in shown] == ["m0", "m1", "m2"]
    assert all(m["forward_origin"]["sender_user"]["id"] == customer["id"] for m in shown)
    assert all(m["message_thread_id"] == thread for m in shown)
    refused(
        await api("copyMessages", message_ids=[ids[2], ids[0]], **target),
        "Bad Request: message identifiers must be in a strictly increasing order",
    )
    refused(
        await api("forwardMessages", message_ids=[99_998, 99_999], **target),
        "Bad Request: messages to forward not found",
    )


async def test_a_blocked_user_gets_nothing_copied_forwarded_or_sent(
    client: SandboxClient, api: Any, tg: Bot
) -> None:
    _, customer, forum, thread = await forum_with_topic(client, api)
    note = ok(await api("sendMessage", chat_id=forum["id"], message_thread_id=thread, text="ok"))
    await client.block(customer["id"])
    source = {"from_chat_id": forum["id"], "message_id": note["message_id"]}
    blocked = "Forbidden: bot was blocked by the user"
    refused(await api("copyMessage", chat_id=customer["id"], **source), blocked, 403)
    refused(await api("forwardMessage", chat_id=customer["id"], **source), blocked, 403)
    refused(
        await api(
            "copyMessages",
            chat_id=customer["id"],
            from_chat_id=forum["id"],
            message_ids=[note["message_id"]],
        ),
        blocked,
        403,
    )
    with pytest.raises(TelegramForbiddenError):
        await tg.send_photo(customer["id"], BufferedInputFile(PNG, "p.png"))
    with pytest.raises(TelegramForbiddenError):
        await tg.send_document(customer["id"], BufferedInputFile(b"x", "x.txt"))
    with pytest.raises(TelegramForbiddenError):
        await tg.copy_message(customer["id"], forum["id"], note["message_id"])
    # Their messages stay readable: the bot may still copy from the chat.
    ok(await api("copyMessage", chat_id=forum["id"], from_chat_id=customer["id"], message_id=1))


# --- people in groups ----------------------------------------------------------------------------


async def test_people_in_a_group_write_reply_send_files_and_edit(
    client: SandboxClient, api: Any
) -> None:
    admin, customer = await people(client)
    group = await client.create_group("Team", [admin["id"], customer["id"]], chat_type="supergroup")
    await drain(api)
    first = await client.send_text(group["id"], "first", from_user_id=customer["id"])
    reply = await client.send_text(
        group["id"],
        "answer",
        from_user_id=admin["id"],
        reply_to_message_id=first["message"]["message_id"],
    )
    photo = await client.send_photo(group["id"], PNG, caption="shot", from_user_id=admin["id"])
    document = await client.send_document(
        group["id"],
        "a.pdf",
        b"%PDF",
        "application/pdf",
        from_user_id=admin["id"],
        reply_to_message_id=first["message"]["message_id"],
    )
    edited = await client.edit_message(
        group["id"], reply["message"]["message_id"], text="better answer", from_user_id=admin["id"]
    )
    recaptioned = await client.edit_message(
        group["id"], photo["message"]["message_id"], caption="new shot", from_user_id=admin["id"]
    )
    updates = await drain(api)
    kinds = [next(k for k in u if k != "update_id") for u in updates]
    assert kinds == ["message"] * 4 + ["edited_message"] * 2
    assert updates[1]["message"]["reply_to_message"]["text"] == "first"
    assert "reply_to_message" not in updates[1]["message"]["reply_to_message"]
    assert updates[2]["message"]["photo"][-1]["file_size"] == len(PNG)
    assert updates[3]["message"]["document"]["file_name"] == "a.pdf"
    assert updates[3]["message"]["reply_to_message"]["message_id"] == first["message"]["message_id"]
    change = updates[4]["edited_message"]
    assert (
        change["text"] == "better answer" and change["message_id"] == reply["message"]["message_id"]
    )
    assert change["edit_date"] >= change["date"] and change["reply_to_message"]["text"] == "first"
    assert updates[5]["edited_message"]["caption"] == "new shot"
    assert (
        edited["update_id"] == updates[4]["update_id"]
        and recaptioned["message"]["caption"] == "new shot"
    )
    shown = await transcript_message(client, group["id"], reply["message"]["message_id"])
    assert shown["text"] == "better answer" and [e["text"] for e in shown["edits"]] == ["answer"]
    assert document["message"]["chat"]["type"] == "supergroup"

    with pytest.raises(SandboxError):  # only the author edits a message
        await client.edit_message(
            group["id"], first["message"]["message_id"], text="x", from_user_id=admin["id"]
        )
    with pytest.raises(SandboxError):  # an edit must change something
        await client.edit_message(
            group["id"], first["message"]["message_id"], text="first", from_user_id=customer["id"]
        )


async def test_a_private_edit_reaches_the_bot_as_edited_message(
    client: SandboxClient, api: Any
) -> None:
    _, customer = await people(client)
    said = await client.send_text(customer["id"], "typo")
    await drain(api)
    await client.edit_message(customer["id"], said["message"]["message_id"], text="fixed")
    [update] = await drain(api)
    assert update["edited_message"]["text"] == "fixed"
    assert update["edited_message"]["chat"]["type"] == "private"


async def test_people_manage_topics_and_the_bot_sees_it(client: SandboxClient, api: Any) -> None:
    admin, customer = await people(client)
    forum = await client.create_forum("Support", [admin["id"], customer["id"]])
    await drain(api)
    made = await client.create_topic(forum["id"], "Billing", from_user_id=admin["id"])
    thread = made["topic"]["message_thread_id"]
    await client.close_topic(forum["id"], thread, from_user_id=admin["id"])
    await client.edit_topic(forum["id"], thread, from_user_id=admin["id"], name="Billing (old)")
    await client.reopen_topic(forum["id"], thread, from_user_id=admin["id"])
    with pytest.raises(SandboxError) as raised:
        await client.create_topic(forum["id"], "Mine", from_user_id=customer["id"])
    assert "not enough rights to create a topic" in raised.value.body
    updates = [u["message"] for u in await drain(api)]
    assert [next(k for k in m if k.startswith("forum_topic")) for m in updates] == [
        "forum_topic_created",
        "forum_topic_closed",
        "forum_topic_edited",
        "forum_topic_reopened",
    ]
    assert all(m["message_thread_id"] == thread and m["from"]["id"] == admin["id"] for m in updates)
    deleted = await client.delete_topic(forum["id"], thread, from_user_id=admin["id"])
    assert deleted["topic"]["deleted"] is True
    refused(
        await api("sendMessage", chat_id=forum["id"], message_thread_id=thread, text="x"),
        "Bad Request: message thread not found",
    )


async def test_chat_members_and_administrators(client: SandboxClient, api: Any, tg: Bot) -> None:
    admin, customer = await people(client)
    helper = await client.create_user("Helper")
    forum = await client.create_forum(
        "Support", [admin["id"], customer["id"], helper["id"]], admin_ids=[helper["id"]]
    )
    owner = await tg.get_chat_member(forum["id"], admin["id"])
    assert isinstance(owner, ChatMemberOwner)
    helper_member = await tg.get_chat_member(forum["id"], helper["id"])
    assert isinstance(helper_member, ChatMemberAdministrator) and helper_member.can_manage_topics
    me = await tg.get_chat_member(forum["id"], api.bot_id)
    assert isinstance(me, ChatMemberAdministrator) and me.can_manage_topics
    assert (
        ok(await api("getChatMember", chat_id=forum["id"], user_id=customer["id"]))["status"]
        == "member"
    )
    outsider = await client.create_user("Out")
    assert (
        ok(await api("getChatMember", chat_id=forum["id"], user_id=outsider["id"]))["status"]
        == "left"
    )

    promoted = await client.set_admin(
        forum["id"], user_id=customer["id"], rights={"can_manage_topics": True}
    )
    assert promoted["status"] == "administrator" and promoted["can_manage_topics"] is True
    assert promoted["can_delete_messages"] is False
    admins = await tg.get_chat_administrators(forum["id"])
    assert {m.user.id for m in admins} == {admin["id"], helper["id"], customer["id"], api.bot_id}
    assert ok(await api("getChatMemberCount", chat_id=forum["id"])) == 4
    await client.set_admin(forum["id"], user_id=customer["id"], is_admin=False)
    assert (
        ok(await api("getChatMember", chat_id=forum["id"], user_id=customer["id"]))["status"]
        == "member"
    )

    await drain(api)
    demoted = await client.set_admin(forum["id"], is_admin=False)
    assert demoted["status"] == "member"
    [update] = await drain(api)
    assert update["my_chat_member"]["old_chat_member"]["status"] == "administrator"
    assert update["my_chat_member"]["new_chat_member"]["status"] == "member"
    refused(
        await api("getChatAdministrators", chat_id=customer["id"]),
        "Bad Request: there are no administrators in the private chat",
    )
    with pytest.raises(TelegramBadRequest):
        await tg.get_chat_member(forum["id"], 42)


async def test_an_admin_bot_deletes_other_peoples_messages(client: SandboxClient, api: Any) -> None:
    admin, customer = await people(client)
    forum = await client.create_forum("Support", [admin["id"], customer["id"]])
    spam = await client.send_text(forum["id"], "spam", from_user_id=customer["id"])
    assert ok(
        await api("deleteMessage", chat_id=forum["id"], message_id=spam["message"]["message_id"])
    )
    group = await client.create_group("Plain", [admin["id"], customer["id"]])
    more = await client.send_text(group["id"], "spam", from_user_id=customer["id"])
    refused(
        await api("deleteMessage", chat_id=group["id"], message_id=more["message"]["message_id"]),
        "Bad Request: message can't be deleted",
    )


# --- Stars subscriptions -------------------------------------------------------------------------


async def subscribe(client: SandboxClient, api: Any, user_id: int) -> dict[str, Any]:
    """The person pays a subscription link; the bot approves the checkout."""
    link = ok(
        await api(
            "createInvoiceLink",
            title="Pro",
            description="Pro plan, monthly",
            payload="plan:pro",
            currency="XTR",
            prices=[{"label": "Pro", "amount": 250}],
            subscription_period=2592000,
        )
    )
    await drain(api)
    after = await client.last_seq()
    await client.pay(user_id, invoice_link=link)
    [query] = ok(
        await api(
            "getUpdates",
            timeout=5,
            allowed_updates=["message", "pre_checkout_query", "subscription"],
        )
    )
    ok(
        await api(
            "answerPreCheckoutQuery",
            pre_checkout_query_id=query["pre_checkout_query"]["id"],
            ok=True,
        )
    )
    await client.wait_for(lambda e: e["type"] == "payment_succeeded", chat_id=user_id, after=after)
    updates = await drain(api)
    payment: dict[str, Any] = updates[-1]["message"]["successful_payment"]
    assert payment["is_first_recurring"] is True
    return payment


async def test_a_subscription_renews_until_canceled(client: SandboxClient, api: Any) -> None:
    _, customer = await people(client)
    first = await subscribe(client, api, customer["id"])
    first_id = first["telegram_payment_charge_id"]

    renewed = await client.renew_subscription(customer["id"], first_id)
    [update] = await drain(api)
    payment = update["message"]["successful_payment"]
    assert update["update_id"] == renewed["update_id"]
    assert payment["is_recurring"] is True and payment["is_first_recurring"] is False
    assert (
        payment["telegram_payment_charge_id"] == renewed["telegram_payment_charge_id"] != first_id
    )
    assert (
        payment["subscription_expiration_date"] == first["subscription_expiration_date"] + 2592000
    )
    assert (payment["total_amount"], payment["invoice_payload"]) == (250, "plan:pro")
    transactions = ok(await api("getStarTransactions"))["transactions"]
    assert [t["id"] for t in transactions] == [first_id, payment["telegram_payment_charge_id"]]
    assert all(t["source"]["subscription_period"] == 2592000 for t in transactions)

    # The person cancels: no renewal, an event says why, the bot (which asked) hears of it.
    after = await client.last_seq()
    state = await client.cancel_subscription(customer["id"], first_id)
    assert state["canceled_by_user"] is True
    [cancel] = await drain(api)
    assert cancel["subscription"]["state"] == "canceled"
    assert cancel["subscription"]["invoice_payload"] == "plan:pro"
    with pytest.raises(SandboxError) as raised:
        await client.renew_subscription(customer["id"], first_id)
    assert raised.value.status == 409 and "canceled by the user" in raised.value.body
    event = await client.wait_for(
        lambda e: e["type"] == "subscription_not_renewed", chat_id=customer["id"], after=after
    )
    assert event["charge_id"] == first_id
    assert await drain(api) == []
    assert len(ok(await api("getStarTransactions"))["transactions"]) == 2

    # Re-enabled by the person, then canceled by the bot.
    await client.cancel_subscription(customer["id"], first_id, is_canceled=False)
    third = await client.renew_subscription(customer["id"], first_id)
    assert (
        third["subscription_expiration_date"] == first["subscription_expiration_date"] + 2 * 2592000
    )
    edit = {"user_id": customer["id"], "telegram_payment_charge_id": first_id}
    assert ok(await api("editUserStarSubscription", is_canceled=True, **edit)) is True
    with pytest.raises(SandboxError) as raised:
        await client.renew_subscription(customer["id"], first_id)
    assert "canceled by the bot" in raised.value.body
    with pytest.raises(SandboxError):
        await client.cancel_subscription(customer["id"], first_id, is_canceled=False)
    assert ok(await api("editUserStarSubscription", is_canceled=False, **edit)) is True
    await client.renew_subscription(customer["id"], first_id)
    refused(
        await api(
            "editUserStarSubscription",
            user_id=customer["id"],
            telegram_payment_charge_id="nope",
            is_canceled=True,
        ),
        "Bad Request: CHARGE_NOT_FOUND",
    )


async def test_renewing_needs_a_subscription_of_that_chat(client: SandboxClient, api: Any) -> None:
    _, customer = await people(client)
    other = await client.create_user("Other")
    await client.send_text(other["id"], "/start")
    payment = await subscribe(client, api, customer["id"])
    with pytest.raises(SandboxError):
        await client.renew_subscription(other["id"], payment["telegram_payment_charge_id"])
    with pytest.raises(SandboxError):
        await client.renew_subscription(customer["id"], "stxNOPE")
