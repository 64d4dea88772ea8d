"""The sandbox's Bot API answers as Telegram does: envelope, error texts, updates, webhooks,
formatting checks, drafts and flood control, over real HTTP."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.exceptions import TelegramBadRequest, TelegramRetryAfter
from aiohttp import web

from sandbox.app import SandboxServer, start_sandbox
from sandbox.client import SandboxClient, SandboxError
from sandbox.telegram import TelegramOptions


def new_token() -> str:
    return f"{secrets.randbelow(10**9) + 10**9}:{secrets.token_urlsafe(27)}"


@pytest.fixture(scope="module")
async def sandbox() -> AsyncIterator[SandboxServer]:
    server = await start_sandbox(
        options=TelegramOptions(webhook_retry_base=0.05, private_burst=5, private_rate=1.0)
    )
    yield server
    await server.stop()


@pytest.fixture
async def api(sandbox: SandboxServer) -> AsyncIterator[Any]:
    token = new_token()
    async with httpx.AsyncClient(base_url=f"{sandbox.url}/bot{token}/", timeout=60) as http:

        async def call(method: str, **params: Any) -> httpx.Response:
            return await http.post(method, json=params)

        call.token = token  # type: ignore[attr-defined]
        yield call


@pytest.fixture
async def client(sandbox: SandboxServer) -> AsyncIterator[SandboxClient]:
    async with SandboxClient(sandbox.url) as c:
        yield c


async def _user_chat(client: SandboxClient, api: Any) -> dict[str, Any]:
    """A user who has written to the bot, so the bot may answer."""
    await api("getMe")
    await client.register_bot(api.token)
    user = await client.create_user("Tess", language_code="en")
    await client.send_text(user["id"], "/start")
    return user


async def test_success_uses_the_ok_result_envelope(api: Any) -> None:
    response = await api("getMe")
    assert response.status_code == 200
    body = response.json()
    assert body["ok"] is True
    assert body["result"]["is_bot"] is True
    assert body["result"]["id"] == int(api.token.split(":")[0])


async def test_a_malformed_token_is_401_unauthorized(sandbox: SandboxServer) -> None:
    async with httpx.AsyncClient() as http:
        response = await http.post(f"{sandbox.url}/botnot-a-token/getMe")
    assert response.status_code == 401
    assert response.json() == {"ok": False, "error_code": 401, "description": "Unauthorized"}


async def test_an_unknown_method_is_404_not_found(api: Any) -> None:
    response = await api("sendTelepathy")
    assert response.status_code == 404
    assert response.json() == {"ok": False, "error_code": 404, "description": "Not Found"}


async def test_method_names_are_case_insensitive(api: Any) -> None:
    assert (await api("GETME")).json()["ok"] is True


async def test_an_unknown_chat_is_chat_not_found(api: Any) -> None:
    response = await api("sendMessage", chat_id=12345, text="hi")
    assert response.status_code == 400
    assert response.json()["description"] == "Bad Request: chat not found"


async def test_a_user_who_never_wrote_cannot_be_messaged_and_a_blocker_is_403(
    client: SandboxClient, api: Any
) -> None:
    await api("getMe")
    await client.register_bot(api.token)
    silent = await client.create_user("Silent")
    response = await api("sendMessage", chat_id=silent["id"], text="hi")
    assert response.status_code == 403
    user = await _user_chat(client, api)
    await client.block(user["id"])
    response = await api("sendMessage", chat_id=user["id"], text="hi")
    assert response.status_code == 403
    assert response.json()["description"] == "Forbidden: bot was blocked by the user"


@pytest.mark.parametrize(
    ("text", "mode", "error"),
    [
        ("<b>bold", "HTML", 'Can\'t find end tag corresponding to start tag "b"'),
        ("<b>x</i>", "HTML", "Unmatched end tag"),
        ("<script>x</script>", "HTML", 'Unsupported start tag "script"'),
        ("1 < 2", "HTML", "Unsupported start tag"),
        ("end.", "MarkdownV2", "Character '.' is reserved"),
        ("*bold", "MarkdownV2", "Can't find end of Bold entity"),
    ],
)
async def test_bad_markup_fails_with_cant_parse_entities(
    client: SandboxClient, api: Any, text: str, mode: str, error: str
) -> None:
    user = await _user_chat(client, api)
    response = await api("sendMessage", chat_id=user["id"], text=text, parse_mode=mode)
    assert response.status_code == 400
    description = response.json()["description"]
    assert description.startswith("Bad Request: can't parse entities: ")
    assert error in description


async def test_html_is_parsed_into_entities_with_utf16_offsets(
    client: SandboxClient, api: Any
) -> None:
    user = await _user_chat(client, api)
    response = await api(
        "sendMessage",
        chat_id=user["id"],
        text='😀 <b>bold</b> &amp; <a href="https://x.test">link</a>',
        parse_mode="HTML",
    )
    message = response.json()["result"]
    assert message["text"] == "😀 bold & link"
    assert message["entities"] == [
        {"type": "bold", "offset": 3, "length": 4},
        {"type": "text_link", "offset": 10, "length": 4, "url": "https://x.test"},
    ]


async def test_empty_and_too_long_texts_are_refused(client: SandboxClient, api: Any) -> None:
    user = await _user_chat(client, api)
    empty = await api("sendMessage", chat_id=user["id"], text="<b></b>", parse_mode="HTML")
    assert empty.json()["description"] == "Bad Request: message text is empty"
    long = await api("sendMessage", chat_id=user["id"], text="я" * 4097)
    assert long.json()["description"] == "Bad Request: message is too long"
    exact = await api("sendMessage", chat_id=user["id"], text="я" * 4096)
    assert exact.json()["ok"] is True


async def test_editing_to_the_same_content_is_not_modified(client: SandboxClient, api: Any) -> None:
    user = await _user_chat(client, api)
    sent = (await api("sendMessage", chat_id=user["id"], text="v1")).json()["result"]
    edit = {"chat_id": user["id"], "message_id": sent["message_id"]}
    assert (await api("editMessageText", text="v2", **edit)).json()["ok"] is True
    same = await api("editMessageText", text="v2", **edit)
    assert same.status_code == 400
    assert same.json()["description"].startswith("Bad Request: message is not modified")
    missing = await api("editMessageText", chat_id=user["id"], message_id=99999, text="x")
    assert missing.json()["description"] == "Bad Request: message to edit not found"
    transcript = await client.transcript(user["id"])
    edited = next(m for m in transcript["messages"] if m["message_id"] == sent["message_id"])
    assert edited["text"] == "v2"
    assert [e["text"] for e in edited["edits"]] == ["v1"]


async def test_get_updates_offsets_confirm_and_a_negative_offset_keeps_the_tail(
    client: SandboxClient, api: Any
) -> None:
    user = await _user_chat(client, api)
    for n in range(4):
        await client.send_text(user["id"], f"m{n}")
    updates = (await api("getUpdates")).json()["result"]
    assert [u["message"]["text"] for u in updates] == ["/start", "m0", "m1", "m2", "m3"]
    ids = [u["update_id"] for u in updates]
    assert ids == sorted(ids) and len(set(ids)) == 5
    limited = (await api("getUpdates", offset=ids[2], limit=2)).json()["result"]
    assert [u["update_id"] for u in limited] == ids[2:4]
    # Updates before the offset are confirmed and gone.
    assert [u["update_id"] for u in (await api("getUpdates")).json()["result"]] == ids[2:]
    tail = (await api("getUpdates", offset=-1)).json()["result"]
    assert [u["update_id"] for u in tail] == [ids[-1]]
    assert [u["update_id"] for u in (await api("getUpdates")).json()["result"]] == [ids[-1]]


async def test_a_long_poll_returns_as_soon_as_an_update_arrives(
    client: SandboxClient, api: Any
) -> None:
    user = await _user_chat(client, api)
    first = (await api("getUpdates")).json()["result"]
    offset = first[-1]["update_id"] + 1
    started = time.monotonic()
    poll = asyncio.create_task(api("getUpdates", offset=offset, timeout=20))
    await asyncio.sleep(0.3)
    await client.send_text(user["id"], "wake up")
    result = (await poll).json()["result"]
    assert [u["message"]["text"] for u in result] == ["wake up"]
    assert time.monotonic() - started < 5


async def test_an_empty_long_poll_ends_at_its_timeout(api: Any) -> None:
    started = time.monotonic()
    response = await api("getUpdates", timeout=1)
    elapsed = time.monotonic() - started
    assert response.json() == {"ok": True, "result": []}
    assert 0.9 <= elapsed < 4


async def test_a_second_poll_terminates_the_first_with_409(api: Any) -> None:
    held = asyncio.create_task(api("getUpdates", timeout=10))
    await asyncio.sleep(0.2)
    await api("getUpdates", timeout=0)
    first = await held
    assert first.status_code == 409
    assert first.json()["description"] == (
        "Conflict: terminated by other getUpdates request; "
        "make sure that only one bot instance is running"
    )


async def test_allowed_updates_filter_updates_created_afterwards(
    client: SandboxClient, api: Any
) -> None:
    user = await _user_chat(client, api)
    await api("getUpdates", allowed_updates=["callback_query"], offset=-1)
    await client.send_text(user["id"], "ignored")
    updates = (await api("getUpdates")).json()["result"]
    assert all("message" not in u or u["message"]["text"] == "/start" for u in updates)


async def test_webhook_delivers_with_the_secret_and_retries_after_a_failure(
    client: SandboxClient, api: Any
) -> None:
    received: list[tuple[str | None, dict[str, Any]]] = []
    failures = {"left": 2}
    third = asyncio.Event()

    async def hook(request: web.Request) -> web.Response:
        received.append(
            (request.headers.get("X-Telegram-Bot-Api-Secret-Token"), await request.json())
        )
        if len(received) >= 3:
            third.set()
        if failures["left"]:
            failures["left"] -= 1
            return web.Response(status=502)
        return web.Response()

    app = web.Application()
    app.router.add_post("/hook", hook)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        user = await _user_chat(client, api)
        set_result = await api(
            "setWebhook",
            url=f"http://127.0.0.1:{port}/hook",
            secret_token="s3cr3t_token-1",
            drop_pending_updates=True,
        )
        assert set_result.json() == {"ok": True, "result": True, "description": "Webhook was set"}
        conflict = await api("getUpdates")
        assert conflict.status_code == 409
        await client.send_text(user["id"], "via webhook")
        await asyncio.wait_for(third.wait(), 10)
        assert {secret for secret, _ in received} == {"s3cr3t_token-1"}
        deliveries = [u for _, u in received if u.get("message", {}).get("text") == "via webhook"]
        assert len(deliveries) == 3  # two failures, then success
        info = (await api("getWebhookInfo")).json()["result"]
        assert info["last_error_message"] == "Wrong response from the webhook: 502 Bad Gateway"
        assert info["pending_update_count"] == 0
        assert (await api("deleteWebhook")).json()["ok"] is True
    finally:
        await runner.cleanup()


async def test_drafts_are_private_only_and_end_with_the_real_message(
    client: SandboxClient, api: Any
) -> None:
    user = await _user_chat(client, api)
    group = await client.create_group("Team", [user["id"]])
    refused = await api("sendMessageDraft", chat_id=group["id"], draft_id=1, text="x")
    assert refused.status_code == 400
    zero = await api("sendMessageDraft", chat_id=user["id"], draft_id=0, text="x")
    assert zero.status_code == 400
    assert (await api("sendMessageDraft", chat_id=user["id"], draft_id=7, text="Thin")).json()["ok"]
    drafts = (await client.transcript(user["id"]))["drafts"]
    assert [(d["text"], d["active"]) for d in drafts] == [("Thin", True)]
    await api("sendMessage", chat_id=user["id"], text="Thinking done")
    drafts = (await client.transcript(user["id"]))["drafts"]
    assert [d["active"] for d in drafts] == [False]


async def test_a_burst_in_one_chat_gets_429_with_retry_after(
    sandbox: SandboxServer, client: SandboxClient
) -> None:
    token = new_token()
    bot = Bot(token, session=AiohttpSession(api=TelegramAPIServer.from_base(sandbox.url)))
    try:
        await bot.get_me()
        await client.register_bot(token)
        user = await client.create_user("Flood")
        await client.send_text(user["id"], "/start")
        with pytest.raises(TelegramRetryAfter) as raised:
            for n in range(20):
                await bot.send_message(user["id"], f"spam {n}")
        assert raised.value.retry_after >= 1
        assert "Too Many Requests: retry after" in raised.value.message
    finally:
        await bot.session.close()


async def test_a_callback_query_is_answered_once(client: SandboxClient, api: Any) -> None:
    user = await _user_chat(client, api)
    markup = {"inline_keyboard": [[{"text": "Tap", "callback_data": "tap:1"}]]}
    sent = (await api("sendMessage", chat_id=user["id"], text="Q", reply_markup=markup)).json()
    tapped = await client.tap(user["id"], sent["result"]["message_id"], "tap:1")
    query_id = tapped["callback_query_id"]
    assert (await api("answerCallbackQuery", callback_query_id=query_id, text="Done")).json()["ok"]
    again = await api("answerCallbackQuery", callback_query_id=query_id)
    assert again.json()["description"] == (
        "Bad Request: query is too old and response timeout expired or query ID is invalid"
    )
    too_long = {"inline_keyboard": [[{"text": "x", "callback_data": "x" * 65}]]}
    refused = await api("sendMessage", chat_id=user["id"], text="Q", reply_markup=too_long)
    assert refused.json()["description"] == "Bad Request: BUTTON_DATA_INVALID"


async def test_a_document_round_trips_through_get_file_and_download(
    sandbox: SandboxServer, client: SandboxClient
) -> None:
    token = new_token()
    bot = Bot(token, session=AiohttpSession(api=TelegramAPIServer.from_base(sandbox.url)))
    try:
        await bot.get_me()
        await client.register_bot(token)
        user = await client.create_user("Files")
        sent = await client.send_document(user["id"], "notes.txt", b"hello file", "text/plain")
        document = sent["message"]["document"]
        file = await bot.get_file(document["file_id"])
        assert file.file_size == 10
        data = await bot.download_file(file.file_path or "")
        assert data is not None and data.read() == b"hello file"
        with pytest.raises(TelegramBadRequest):
            await bot.get_file("nope")
    finally:
        await bot.session.close()


async def test_init_data_is_signed_like_telegram_signs_it() -> None:
    from sandbox.telegram.initdata import sign_fields

    # The vector from the protocol notes: token, fields and the hash Telegram would send.
    token = "123456:ABC-DEF1234ghIkl-zyx57W2v1u123ew11"
    fields = {
        "auth_date": "1700000000",
        "query_id": "AAHdF6IQAAAAAN0XohDhrOrc",
        "user": '{"id":123456789,"first_name":"Alice","username":"alice_dev","language_code":"en"}',
    }
    signed = sign_fields(fields, token)
    assert signed.endswith("hash=f57f4bfe2af8937570e38a37fad84e30561d7edc555b91c6ba95b8e1d22bf11e")


async def test_the_events_long_poll_wakes_on_the_next_event(
    client: SandboxClient, api: Any
) -> None:
    user = await _user_chat(client, api)
    after = await client.last_seq()
    waiting = asyncio.create_task(client.events(after=after, chat_id=user["id"], wait=10))
    await asyncio.sleep(0.2)
    await api("sendMessage", chat_id=user["id"], text="ping")
    events, last = await waiting
    assert [e["type"] for e in events] == ["bot_message"]
    assert last >= events[0]["seq"]


async def test_a_bot_uploads_a_document_as_aiogram_sends_it(
    sandbox: SandboxServer, client: SandboxClient
) -> None:
    from aiogram.types import BufferedInputFile

    token = new_token()
    bot = Bot(token, session=AiohttpSession(api=TelegramAPIServer.from_base(sandbox.url)))
    try:
        await bot.get_me()
        await client.register_bot(token)
        user = await client.create_user("Upload")
        await client.send_text(user["id"], "/start")
        sent = await bot.send_document(
            user["id"], BufferedInputFile(b"report body", filename="report.txt"), caption="Yours"
        )
        assert sent.document is not None and sent.document.file_name == "report.txt"
        [message] = [m for m in await client.bot_messages(user["id"]) if m.get("document")]
        assert message["caption"] == "Yours"
        async with httpx.AsyncClient() as http:
            download = await http.get(sandbox.url + message["document"]["url"])
        assert download.content == b"report body"
    finally:
        await bot.session.close()


async def test_mini_app_data_reaches_the_bot_as_a_message(client: SandboxClient, api: Any) -> None:
    user = await _user_chat(client, api)
    await api("getUpdates", offset=-1)
    await client._call(
        "POST",
        f"/chats/{user['id']}/web-app-data",
        json={"data": '{"plan":"pro"}', "button_text": "Choose"},
    )
    updates = (await api("getUpdates")).json()["result"]
    assert updates[-1]["message"]["web_app_data"] == {
        "data": '{"plan":"pro"}',
        "button_text": "Choose",
    }


async def test_many_people_send_at_one_instant_all_or_none(client: SandboxClient, api: Any) -> None:
    first = await _user_chat(client, api)
    second = await client.create_user("Uma", language_code="en")
    await client.send_text(second["id"], "/start")
    tail = (await api("getUpdates", offset=-1)).json()["result"][-1]["update_id"]
    # One bad item (no text) refuses the whole batch: nothing is sent.
    with pytest.raises(SandboxError, match="text is required"):
        await client.send_texts([(first["id"], "fine"), (second["id"], " ")])
    # So does one for a bot nobody registered, wherever it stands in the batch.
    with pytest.raises(SandboxError):
        await client._call(
            "POST",
            "/messages",
            json={
                "messages": [
                    {"chat_id": first["id"], "text": "fine"},
                    {"chat_id": second["id"], "text": "also", "bot_id": 42},
                ]
            },
        )
    assert (await api("getUpdates", offset=tail + 1)).json()["result"] == []
    sent = await client.send_texts([(first["id"], "one"), (second["id"], "two")])
    assert [s["message"]["text"] for s in sent] == ["one", "two"]
    updates = (await api("getUpdates", offset=tail + 1)).json()["result"]
    assert [(u["message"]["chat"]["id"], u["message"]["text"]) for u in updates] == [
        (first["id"], "one"),
        (second["id"], "two"),
    ]
    assert [u["update_id"] for u in updates] == [s["update_id"] for s in sent]
