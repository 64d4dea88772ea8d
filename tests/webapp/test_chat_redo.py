"""Asking again and rating from the web app, through create_app() over real HTTP with the
sandbox's provider fakes: regenerate and edit the last turn (with another model or not), each a
billed turn; the turn replaced stays, marked; 👍/👎 and each reply's cost in the message list."""

from __future__ import annotations

from typing import Any

from tests.webapp.test_chat_api import Env, User, env, read_events

__all__ = ["env"]


async def _redo(env: Env, user: User, message_id: int, **body: Any) -> list[tuple[str, Any]]:
    response = await env.client.post(
        f"/api/messages/{message_id}/redo", json=body, headers=user.headers
    )
    assert response.status == 200, await response.text()
    return [event async for event in read_events(response)]


async def test_regenerate_replaces_the_last_reply_and_bills_a_new_turn(env: Env) -> None:
    ann = await env.user(money=100_000)
    await env.script(reply="First try.", chunk_delay_ms=0)
    first = await env.chat(ann, text="Say something", conversation_id=None)
    conversation_id = first[0][1]["conversation_id"]
    charged_first = first[-1][1]["charged_kopecks"]
    await env.script(reply="Second try.", chunk_delay_ms=0)
    events = await _redo(env, ann, first[-1][1]["message_id"])
    start, done = events[0][1], events[-1][1]
    assert start["conversation_id"] == conversation_id
    assert "".join(d["text"] for n, d in events if n == "delta") == "Second try."
    assert done["status"] == "complete" and done["charged_kopecks"] > 0
    stored = await env.messages(ann, conversation_id)
    assert [(m["content"], m["replaced"]) for m in stored] == [
        ("Say something", True),
        ("First try.", True),
        ("Say something", False),
        ("Second try.", False),
    ]
    # Each reply shows what it cost; both were charged.
    assert [m["cost_kopecks"] for m in stored if m["role"] == "assistant"] == [
        charged_first,
        done["charged_kopecks"],
    ]
    assert await env.balance(ann) == 100_000 - charged_first - done["charged_kopecks"]
    # The model was asked the prompt alone, not the reply it replaced.
    last = (await env.provider_requests())[-1]
    assert [m["content"] for m in last["json"]["messages"]] == ["Say something"]


async def test_an_edited_prompt_with_another_model_goes_to_that_model(env: Env) -> None:
    bea = await env.user(money=100_000)
    await env.script(reply="Madrid.", chunk_delay_ms=0)
    await env.chat(bea, text="Capital of Spain?", conversation_id=None)
    await env.script(reply="Paris.", chunk_delay_ms=0)
    start = (await env.chat(bea, text="Capital of France?"))[0][1]
    prompt = (await env.messages(bea, start["conversation_id"]))[-2]
    await env.script(env.free, reply="Rome.", chunk_delay_ms=0)
    events = await _redo(env, bea, prompt["id"], text="Capital of Italy?", model_id="web-mini")
    assert events[-1][1]["status"] == "complete" and events[-1][1]["free"] is True
    last = (await env.provider_requests())[-1]
    assert last["json"]["model"] == env.free.provider_model
    assert [m["content"] for m in last["json"]["messages"]] == [
        "Capital of Spain?",
        "Madrid.",
        "Capital of Italy?",
    ]
    stored = await env.messages(bea, start["conversation_id"])
    assert [(m["content"], m["model_id"], m["replaced"]) for m in stored[2:]] == [
        ("Capital of France?", "web-gpt", True),
        ("Paris.", "web-gpt", True),
        ("Capital of Italy?", "web-mini", False),
        ("Rome.", "web-mini", False),
    ]
    assert stored[-1]["cost_kopecks"] == 0


async def test_only_the_last_turn_of_ones_own_chat_can_be_asked_again(env: Env) -> None:
    cal = await env.user(money=100_000)
    stranger = await env.user(money=100_000)
    await env.script(reply="One.", chunk_delay_ms=0, times=2)
    start = (await env.chat(cal, text="First", conversation_id=None))[0][1]
    await env.chat(cal, text="Second")
    [old_prompt, old_reply, _, reply] = await env.messages(cal, start["conversation_id"])
    before = await env.provider_requests()
    older = await env.client.post(
        f"/api/messages/{old_reply['id']}/redo", json={}, headers=cal.headers
    )
    assert older.status == 400 and (await older.json())["error"] == "not_last_turn"
    for path, body in (
        (f"/api/messages/{reply['id']}/redo", {}),
        (f"/api/messages/{reply['id']}/rating", {"rating": 1}),
        (f"/api/messages/{old_prompt['id']}/rating", {"rating": -1}),
    ):
        answer = await env.client.post(path, json=body, headers=stranger.headers)
        assert answer.status == 404, path
    assert await env.provider_requests() == before
    assert not any(
        m["replaced"] or m["rating"] for m in await env.messages(cal, start["conversation_id"])
    )


async def test_a_reply_is_rated_and_the_rating_can_be_taken_back(env: Env) -> None:
    dee = await env.user(money=100_000)
    await env.script(reply="Rated.", chunk_delay_ms=0)
    start = (await env.chat(dee, text="Rate this", conversation_id=None))[0][1]
    [prompt, reply] = await env.messages(dee, start["conversation_id"])
    for body, expected in (({"rating": 1}, 1), ({"rating": -1}, -1), ({"rating": None}, None)):
        # The prompt's id names its reply.
        answer = await env.client.post(
            f"/api/messages/{prompt['id']}/rating", json=body, headers=dee.headers
        )
        assert await answer.json() == {"message_id": reply["id"], "rating": expected}
        stored = await env.messages(dee, start["conversation_id"])
        assert [m["rating"] for m in stored] == [None, expected]
    bad = await env.client.post(
        f"/api/messages/{reply['id']}/rating", json={"rating": 5}, headers=dee.headers
    )
    assert bad.status == 400


async def test_a_failed_turn_is_retried_and_only_the_retry_is_paid(env: Env) -> None:
    eve = await env.user(money=100_000)
    await env.script(
        reply="never", chunk_delay_ms=0, fault={"kind": "in_stream_error", "after_chunks": 0}
    )
    events = await env.chat(eve, text="Explain tides", conversation_id=None)
    assert events[-1][1]["status"] == "failed" and events[-1][1]["charged_kopecks"] == 0
    conversation_id = events[0][1]["conversation_id"]
    [prompt] = await env.messages(eve, conversation_id)
    await env.script(reply="The moon pulls the sea.", chunk_delay_ms=0)
    retried = await _redo(env, eve, prompt["id"])
    done = retried[-1][1]
    assert done["status"] == "complete" and done["charged_kopecks"] > 0
    stored = await env.messages(eve, conversation_id)
    assert [(m["content"], m["replaced"]) for m in stored] == [
        ("Explain tides", True),
        ("Explain tides", False),
        ("The moon pulls the sea.", False),
    ]
    assert await env.balance(eve) == 100_000 - done["charged_kopecks"]
    # Once replaced, the failed turn cannot be asked again.
    again = await env.client.post(
        f"/api/messages/{prompt['id']}/redo", json={}, headers=eve.headers
    )
    assert again.status == 400 and (await again.json())["error"] == "already_replaced"
