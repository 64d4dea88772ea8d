"""Talking to models through the real bot, the sandbox's Telegram and its provider fakes."""

from __future__ import annotations

import asyncio
import secrets
from typing import Any

import httpx

from core.services import billing
from core.services.chat import history_size as chat_history_size
from tests.bot.conftest import BotHarness, Person, PersonFactory, buttons, text_of


async def _ready(
    harness: BotHarness, person: PersonFactory, name: str, money: int = 100_000
) -> Person:
    someone: Person = await person(name)
    [consent] = await someone.say("/start")
    await someone.accept(consent)
    async with harness.uow_factory() as uow:
        user = await uow.users.by_telegram_id(someone.id)
        assert user is not None
        user_id = user.id
        if money:
            async with uow.transaction():
                await billing.credit(
                    uow, user_id=user_id, amount=money, category="topup", key=secrets.token_hex(8)
                )
    someone.user_id = user_id  # type: ignore[attr-defined]
    return someone


async def _script(harness: BotHarness, **script: Any) -> None:
    await harness.client._call("POST", "/providers/script", json=script)


async def _balance(harness: BotHarness, someone: Person) -> int:
    async with harness.uow_factory() as uow:
        return (await billing.get_balance(uow, someone.user_id)).balance  # type: ignore[attr-defined]


async def _final_replies(harness: BotHarness, someone: Person, after: int) -> list[dict[str, Any]]:
    """Bot messages that are part of the reply (not the Writing… control message)."""
    transcript = await harness.client.transcript(someone.id)
    return [
        m
        for m in transcript["messages"]
        if m["is_bot_message"] and not m["deleted"] and m["message_id"] > after
    ]


async def test_a_private_reply_streams_as_drafts_then_arrives_whole_and_is_charged(
    harness: BotHarness, person: PersonFactory
) -> None:
    ann = await _ready(harness, person, "Ann")
    reply = "Here is **bold** and a list:\n\n- one\n- two\n\n" + "word " * 60
    await _script(harness, provider="openai", reply=reply, chunk_size=12, chunk_delay_ms=15)
    before = await harness.client.last_seq()
    last_id = max(m["message_id"] for m in (await harness.client.transcript(ann.id))["messages"])
    await harness.client.send_text(ann.id, "Tell me something")
    final = await harness.client.wait_for(
        lambda e: e["type"] == "bot_message" and "word word" in (e["message"].get("text") or ""),
        chat_id=ann.id,
        after=before,
        wait=20,
    )
    events, _ = await harness.client.events(after=before, chat_id=ann.id)
    drafts = [e for e in events if e["type"] == "draft" and e["text"]]
    assert len(drafts) >= 2  # the reply was shown while it was being written
    assert "• one\n• two" in final["message"]["text"]
    assert any(e["type"] == "bold" for e in final["message"]["entities"])
    await asyncio.sleep(0.2)
    replies = await _final_replies(harness, ann, last_id)
    assert [m["text"] for m in replies] == [final["message"]["text"]]  # Writing… is gone
    assert await _balance(harness, ann) < 100_000


async def test_a_long_reply_with_code_across_4096_is_split_into_valid_messages(
    harness: BotHarness, person: PersonFactory
) -> None:
    bob = await _ready(harness, person, "Bob")
    code = "\n".join(f"print({n}) # <tag> & stuff" for n in range(300))
    reply = "Intro <b>not html</b>\n\n```python\n" + code + "\n```\n\nThe end."
    await _script(harness, provider="openai", reply=reply, chunk_size=400)
    before = await harness.client.last_seq()
    last_id = max(m["message_id"] for m in (await harness.client.transcript(bob.id))["messages"])
    await harness.client.send_text(bob.id, "Write code")
    await harness.client.wait_for(
        lambda e: e["type"] == "bot_message" and "The end." in (e["message"].get("text") or ""),
        chat_id=bob.id,
        after=before,
        wait=20,
    )
    await asyncio.sleep(0.2)
    replies = await _final_replies(harness, bob, last_id)
    assert len(replies) >= 2
    assert all(len(m["text"]) <= 4096 for m in replies)
    assert replies[0]["text"].startswith("Intro <b>not html</b>")
    joined = "".join(m["text"] for m in replies)
    assert joined.replace("\n", "").count("# <tag> & stuff") == 300
    # The code block crosses the boundary: each side is still a code block.
    assert sum(any(e["type"] == "pre" for e in m["entities"]) for m in replies) >= 2


async def test_flood_control_in_the_middle_of_a_stream_is_waited_out(
    harness: BotHarness, person: PersonFactory
) -> None:
    cy = await _ready(harness, person, "Cy")
    await harness.client.fault("sendMessageDraft", 429, retry_after=1, chat_id=cy.id, count=2)
    await _script(
        harness, provider="openai", reply="Patience pays. " * 20, chunk_size=20, chunk_delay_ms=20
    )
    before = await harness.client.last_seq()
    await harness.client.send_text(cy.id, "Go")
    final = await harness.client.wait_for(
        lambda e: (
            e["type"] == "bot_message" and "Patience pays" in (e["message"].get("text") or "")
        ),
        chat_id=cy.id,
        after=before,
        wait=20,
    )
    assert final["message"]["text"].count("Patience pays.") == 20


async def test_stop_ends_the_reply_keeping_what_arrived_and_billing_only_that(
    harness: BotHarness, person: PersonFactory
) -> None:
    dee = await _ready(harness, person, "Dee")
    await _script(harness, provider="openai", reply="slow " * 400, chunk_size=5, chunk_delay_ms=30)
    before = await harness.client.last_seq()
    await harness.client.send_text(dee.id, "Long story please")
    writing = await harness.client.wait_for(
        lambda e: e["type"] == "bot_message" and buttons(e), chat_id=dee.id, after=before
    )
    [stop] = buttons(writing)
    await harness.client.wait_for(
        lambda e: e["type"] == "draft" and len(e["text"]) > 20, chat_id=dee.id, after=before
    )
    await harness.client.tap(dee.id, writing["message_id"], stop["callback_data"])
    notice = await harness.client.wait_for(
        lambda e: e["type"] == "bot_message" and "Stopped" in (e["message"].get("text") or ""),
        chat_id=dee.id,
        after=before,
        wait=20,
    )
    transcript = await harness.client.transcript(dee.id)
    partial = [
        m
        for m in transcript["messages"]
        if m["is_bot_message"] and (m["text"] or "").startswith("slow")
    ]
    assert partial and partial[-1]["text"].count("slow") < 400
    assert notice["message"]["text"].startswith("⏹")
    spent = 100_000 - await _balance(harness, dee)
    assert spent > 0


async def test_a_provider_failing_mid_stream_keeps_the_partial_reply_and_says_so(
    harness: BotHarness, person: PersonFactory
) -> None:
    eve = await _ready(harness, person, "Eve")
    await _script(
        harness,
        provider="openai",
        reply="partial answer " * 30,
        chunk_size=15,
        fault={"kind": "cut", "after_chunks": 5},
    )
    before = await harness.client.last_seq()
    await harness.client.send_text(eve.id, "Try")
    note = await harness.client.wait_for(
        lambda e: e["type"] == "bot_message" and "cut short" in (e["message"].get("text") or ""),
        chat_id=eve.id,
        after=before,
        wait=20,
    )
    transcript = await harness.client.transcript(eve.id)
    assert any((m["text"] or "").startswith("partial answer") for m in transcript["messages"])
    assert note["message"]["text"].startswith("⚠️")


async def test_a_second_message_while_streaming_gets_a_clear_answer(
    harness: BotHarness, person: PersonFactory
) -> None:
    fay = await _ready(harness, person, "Fay")
    await _script(harness, provider="openai", reply="busy " * 100, chunk_size=5, chunk_delay_ms=20)
    before = await harness.client.last_seq()
    await harness.client.send_text(fay.id, "First")
    await harness.client.wait_for(lambda e: e["type"] == "draft", chat_id=fay.id, after=before)
    await harness.client.send_text(fay.id, "Second")
    busy = await harness.client.wait_for(
        lambda e: (
            e["type"] == "bot_message" and "still answering" in (e["message"].get("text") or "")
        ),
        chat_id=fay.id,
        after=before,
    )
    assert busy
    await harness.client.wait_for(
        lambda e: e["type"] == "bot_message" and "busy busy" in (e["message"].get("text") or ""),
        chat_id=fay.id,
        after=before,
        wait=20,
    )


async def test_without_money_the_bot_offers_a_top_up_before_calling_the_model(
    harness: BotHarness, person: PersonFactory
) -> None:
    gus = await _ready(harness, person, "Gus", money=0)
    await harness.client._call("DELETE", "/providers/requests")
    [reply] = await gus.say("Hello?")
    assert "Not enough money" in text_of(reply)
    assert [b["text"] for b in buttons(reply)] == ["💰 Top up"]
    requests = (await harness.client._call("GET", "/providers/requests"))["requests"]
    assert requests == []


async def test_switching_the_model_sends_the_next_request_to_its_provider(
    harness: BotHarness, person: PersonFactory
) -> None:
    hal = await _ready(harness, person, "Hal")
    [menu] = await hal.say("/model")
    claude = next(b for b in buttons(menu) if b["text"].startswith("sandbox-claude"))
    after = await harness.client.last_seq()
    await harness.client.tap(hal.id, menu["message_id"], claude["callback_data"])
    await harness.client.wait_for(
        lambda e: e["type"] == "callback_answered", chat_id=hal.id, after=after
    )
    await harness.client._call("DELETE", "/providers/requests")
    await _script(harness, provider="anthropic", reply="Claude here.")
    before = await harness.client.last_seq()
    await harness.client.send_text(hal.id, "Who are you?")
    await harness.client.wait_for(
        lambda e: e["type"] == "bot_message" and "Claude here." in (e["message"].get("text") or ""),
        chat_id=hal.id,
        after=before,
        wait=20,
    )
    requests = (await harness.client._call("GET", "/providers/requests?provider=anthropic"))[
        "requests"
    ]
    assert requests and requests[-1]["json"]["model"] == "claude-sandbox"


async def test_in_a_group_the_bot_answers_when_mentioned_by_editing_one_message(
    harness: BotHarness, person: PersonFactory
) -> None:
    ivy = await _ready(harness, person, "Ivy")
    group = await harness.client.create_group("Team", [ivy.id])
    await _script(
        harness, provider="openai", reply="Group answer. " * 30, chunk_size=30, chunk_delay_ms=40
    )
    before = await harness.client.last_seq()
    await harness.client.send_text(group["id"], "just chatting", from_user_id=ivy.id)
    await harness.client.send_text(
        group["id"], "@netroom_test_bot what is up?", from_user_id=ivy.id
    )
    edited = await harness.client.wait_for(
        lambda e: (
            e["type"] == "message_edited"
            and (e["message"].get("text") or "").count("Group answer.") == 30
        ),
        chat_id=group["id"],
        after=before,
        wait=25,
    )
    transcript = await harness.client.transcript(group["id"])
    bot_messages = [m for m in transcript["messages"] if m["is_bot_message"]]
    assert [m["message_id"] for m in bot_messages] == [edited["message_id"]]
    # The Stop button is gone at the end; what is left is what can be done with the reply.
    labels = [b["text"] for row in bot_messages[0]["reply_markup"]["inline_keyboard"] for b in row]
    assert labels == ["🔄", "🔀", "👍", "👎", "ℹ️"]


async def test_a_preset_made_in_the_bot_becomes_the_model_instructions(
    harness: BotHarness, person: PersonFactory
) -> None:
    jo = await _ready(harness, person, "Jo")
    [listing] = await jo.say("/presets")
    new = next(b for b in buttons(listing) if "New preset" in b["text"])
    [ask_title] = await jo.tap(listing, new["callback_data"])
    assert "title" in text_of(ask_title)
    [ask_prompt] = await jo.say("Pirate")
    assert "instructions" in text_of(ask_prompt)
    [saved] = await jo.say("Talk like a pirate.")
    assert "«Pirate» saved" in text_of(saved)
    await harness.client._call("DELETE", "/providers/requests")
    await _script(harness, provider="openai", reply="Arr!")
    before = await harness.client.last_seq()
    await harness.client.send_text(jo.id, "Hello")
    await harness.client.wait_for(
        lambda e: e["type"] == "bot_message" and "Arr!" in (e["message"].get("text") or ""),
        chat_id=jo.id,
        after=before,
        wait=20,
    )
    [sent] = (await harness.client._call("GET", "/providers/requests?provider=openai"))["requests"]
    assert sent["json"]["messages"][0] == {"role": "system", "content": "Talk like a pirate."}
    [listing] = await jo.say("/presets")
    delete = next(b for b in buttons(listing) if b["text"] == "🗑")
    after = await harness.client.last_seq()
    await harness.client.tap(jo.id, listing["message_id"], delete["callback_data"])
    await harness.client.wait_for(
        lambda e: e["type"] == "markup_edited", chat_id=jo.id, after=after
    )
    transcript = await harness.client.transcript(jo.id)
    edited = next(m for m in transcript["messages"] if m["message_id"] == listing["message_id"])
    labels = [b["text"] for row in edited["reply_markup"]["inline_keyboard"] for b in row]
    assert "• Pirate" not in labels and "Pirate" not in labels


async def test_image_command_draws_sends_the_picture_and_charges_its_price(
    harness: BotHarness, person: PersonFactory
) -> None:
    kim = await _ready(harness, person, "Kim")
    before = await harness.client.last_seq()
    await harness.client.send_text(kim.id, "/image a red fox in the snow")
    sent = await harness.client.wait_for(
        lambda e: e["type"] == "bot_message" and "photo" in e["message"],
        chat_id=kim.id,
        after=before,
        wait=20,
    )
    caption = sent["message"]["caption"]
    # The model by its display name, in the caption and in the history of payments.
    assert caption.startswith("🎨 Sandbox Picture · ₽5.00")
    assert "a red fox in the snow" in caption
    # The full-size file is behind a button, not a raw URL in the caption.
    assert "http" not in caption
    [full_size] = buttons(sent)
    assert full_size["url"].startswith("http://netroom.test/media/")
    transcript = await harness.client.transcript(kim.id)
    [photo] = [m for m in transcript["messages"] if m.get("photo")]
    async with httpx.AsyncClient() as http:
        data = (await http.get(harness.sandbox.url + photo["photo"]["url"])).content
    assert data.startswith(b"\x89PNG")
    assert await _balance(harness, kim) == 100_000 - 500
    requests = (await harness.client._call("GET", "/providers/requests?provider=openai"))[
        "requests"
    ]
    assert requests[-1]["json"]["prompt"] == "a red fox in the snow"
    [history] = await kim.say("/history")
    assert "−₽5.00 · image · Sandbox Picture" in text_of(history)
    assert "sandbox-image" not in text_of(history)


async def test_image_without_a_prompt_explains_how(
    harness: BotHarness, person: PersonFactory
) -> None:
    lee = await _ready(harness, person, "Lee")
    [reply] = await lee.say("/image")
    assert "/image a fox in the snow" in text_of(reply)


async def test_a_photo_goes_to_a_model_that_can_see_with_its_caption(
    harness: BotHarness, person: PersonFactory
) -> None:
    max_ = await _ready(harness, person, "Max")
    await harness.client._call("DELETE", "/providers/requests")
    await _script(harness, provider="openai", reply="A cat on a sofa.")
    before = await harness.client.last_seq()
    await harness.client.send_photo(
        max_.id, b"\xff\xd8\xff\xe0fake-jpeg-bytes", caption="What is it?"
    )
    await harness.client.wait_for(
        lambda e: e["type"] == "bot_message" and "A cat" in (e["message"].get("text") or ""),
        chat_id=max_.id,
        after=before,
        wait=20,
    )
    [sent] = (await harness.client._call("GET", "/providers/requests?provider=openai"))["requests"]
    content = sent["json"]["messages"][-1]["content"]
    kinds = [part["type"] for part in content]
    assert kinds == ["text", "image_url"]
    assert content[0]["text"] == "What is it?"
    assert content[1]["image_url"]["url"].startswith("data:image/jpeg;base64,")


async def test_a_photo_for_a_model_that_cannot_see_is_refused_clearly(
    harness: BotHarness, person: PersonFactory
) -> None:
    ned = await _ready(harness, person, "Ned")
    [menu] = await ned.say("/model")
    claude = next(b for b in buttons(menu) if b["text"].startswith("sandbox-claude"))
    after = await harness.client.last_seq()
    await harness.client.tap(ned.id, menu["message_id"], claude["callback_data"])
    await harness.client.wait_for(
        lambda e: e["type"] == "callback_answered", chat_id=ned.id, after=after
    )
    before = await harness.client.last_seq()
    await harness.client.send_photo(ned.id, b"\xff\xd8\xff\xe0fake", caption="See?")
    reply = await harness.client.wait_for(
        lambda e: e["type"] == "bot_message", chat_id=ned.id, after=before
    )
    assert "cannot see pictures" in reply["message"]["text"]


async def test_a_video_is_made_in_the_background_and_arrives_when_ready(
    harness: BotHarness, person: PersonFactory
) -> None:
    ora = await _ready(harness, person, "Ora")
    before = await harness.client.last_seq()
    [accepted] = await ora.say("/video waves on a beach")
    assert "being made" in text_of(accepted)
    delivered = await harness.client.wait_for(
        lambda e: e["type"] == "bot_message" and "video" in e["message"],
        chat_id=ora.id,
        after=before,
        wait=30,
    )
    assert delivered["message"]["video"]["file_size"] > 0
    # The caption tells what it is: the model, the price and the prompt, not just "🎬".
    caption = delivered["message"]["caption"]
    assert caption.startswith("🎬 Sandbox Motion · ₽8.00")
    assert "waves on a beach" in caption
    assert any(e["type"] == "italic" for e in delivered["message"]["caption_entities"])
    # 8 seconds at 100 kopecks a second.
    assert await _balance(harness, ora) == 100_000 - 800


async def test_a_failed_video_costs_nothing_and_says_so(
    harness: BotHarness, person: PersonFactory
) -> None:
    pia = await _ready(harness, person, "Pia")
    await _script(
        harness,
        provider="openai",
        model="sora-2",
        fault={"kind": "content_filtered"},
        video_polls=1,
    )
    before = await harness.client.last_seq()
    await pia.say("/video something refused")
    notice = await harness.client.wait_for(
        lambda e: (
            e["type"] == "bot_message" and "could not be made" in (e["message"].get("text") or "")
        ),
        chat_id=pia.id,
        after=before,
        wait=30,
    )
    assert notice
    assert await _balance(harness, pia) == 100_000


async def test_in_image_mode_a_text_message_draws_a_picture(
    harness: BotHarness, person: PersonFactory
) -> None:
    quin = await _ready(harness, person, "Quin")
    [panel] = await quin.say("/settings")
    mode = next(b for b in buttons(panel) if "Image mode" in b["text"])
    after = await harness.client.last_seq()
    await harness.client.tap(quin.id, panel["message_id"], mode["callback_data"])
    await harness.client.wait_for(
        lambda e: e["type"] == "markup_edited", chat_id=quin.id, after=after
    )
    before = await harness.client.last_seq()
    await harness.client.send_text(quin.id, "a lighthouse at dusk")
    drawn = await harness.client.wait_for(
        lambda e: e["type"] == "bot_message" and "photo" in e["message"],
        chat_id=quin.id,
        after=before,
        wait=20,
    )
    assert drawn["message"]["caption"].startswith("🎨")


async def test_top_up_chat_until_the_money_runs_out_then_top_up_again(
    harness: BotHarness, person: PersonFactory
) -> None:
    sam = await _ready(harness, person, "Sam", money=0)

    async def top_up() -> None:
        before = await harness.client.last_seq()
        await harness.client.send_text(sam.id, "/topup")
        view = await harness.client.wait_for(
            lambda e: e["type"] == "bot_message" and "Top up:" in (e["message"].get("text") or ""),
            chat_id=sam.id,
            after=before,
        )
        offer = next(b for b in buttons(view) if b["text"].startswith("⭐️ 50 "))
        tapped = await harness.client.last_seq()
        await harness.client.tap(sam.id, view["message_id"], offer["callback_data"])
        # The invoice itself: a late part of an earlier answer may arrive first.
        invoice = await harness.client.wait_for(
            lambda e: e["type"] == "bot_message" and "invoice" in e["message"],
            chat_id=sam.id,
            after=tapped,
        )
        after = await harness.client.last_seq()
        await harness.client._call(
            "POST", f"/chats/{sam.id}/pay", json={"message_id": invoice["message_id"]}
        )
        await harness.client.wait_for(
            lambda e: (
                e["type"] == "bot_message"
                and "Payment received" in (e["message"].get("text") or "")
            ),
            chat_id=sam.id,
            after=after,
        )

    await top_up()
    assert await _balance(harness, sam) == 6_500
    # Most of it is spent already; a few more answers use up the rest.
    async with harness.uow_factory() as uow:
        user = await uow.users.by_telegram_id(sam.id)
        assert user is not None
        user_id = user.id
        async with uow.transaction():
            await billing.debit(
                uow, user_id=user_id, amount=6_300, category="text", key=secrets.token_hex(8)
            )
    answered = 0
    for n in range(20):
        await _script(harness, provider="openai", reply="paid words " * 400, chunk_size=4000)
        before = await harness.client.last_seq()
        await harness.client.send_text(sam.id, f"question {n}")
        reply = await harness.client.wait_for(
            lambda e: (
                e["type"] == "bot_message"
                and (
                    "paid words" in (e["message"].get("text") or "")
                    or "Not enough money" in (e["message"].get("text") or "")
                )
            ),
            chat_id=sam.id,
            after=before,
            wait=20,
        )
        if "Not enough money" in reply["message"]["text"]:
            await harness.client._call("DELETE", "/providers/script")
            break
        answered += 1
    else:
        raise AssertionError("the balance never ran out")
    assert answered > 0
    left = await _balance(harness, sam)
    assert 0 <= left < 200
    async with harness.uow_factory() as uow:
        assert await billing.check_consistency(uow, user_id)
    await top_up()
    assert await _balance(harness, sam) == left + 6_500
    # And the conversation carries on.
    await _script(harness, provider="openai", reply="Back in business.")
    before = await harness.client.last_seq()
    await harness.client.send_text(sam.id, "still there?")
    await harness.client.wait_for(
        lambda e: (
            e["type"] == "bot_message" and "Back in business." in (e["message"].get("text") or "")
        ),
        chat_id=sam.id,
        after=before,
        wait=20,
    )


async def test_a_user_who_blocks_the_bot_mid_reply_still_has_the_turn_closed(
    harness: BotHarness, person: PersonFactory
) -> None:
    tom = await _ready(harness, person, "Tom")
    await _script(
        harness, provider="openai", reply="words " * 200, chunk_size=10, chunk_delay_ms=10
    )
    before = await harness.client.last_seq()
    await harness.client.send_text(tom.id, "Tell me")
    await harness.client.wait_for(lambda e: e["type"] == "draft", chat_id=tom.id, after=before)
    await harness.client.block(tom.id)
    async with harness.uow_factory() as uow:
        user = await uow.users.by_telegram_id(tom.id)
        assert user is not None
        user_id = user.id
    # The turn ends anyway: nothing stays held, the reply is stored.
    for _ in range(100):
        async with harness.uow_factory() as uow:
            balance = await billing.get_balance(uow, user_id)
            stored = await chat_history_size(uow, user_id)
        if balance.reserved == 0 and stored == 2:
            break
        await asyncio.sleep(0.1)
    assert (balance.reserved, stored) == (0, 2)
    assert balance.balance < 100_000
    await harness.client.block(tom.id, blocked=False)
