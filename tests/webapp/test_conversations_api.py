"""Finding and naming conversations through create_app() over real HTTP: search over titles and
messages in both languages, renaming, and a conversation's own model answering its turns."""

from __future__ import annotations

from tests.webapp import test_chat_api
from tests.webapp.test_chat_api import Env, User

# The chat API's own environment: the app with a paid and a free model, the sandbox providers.
env = test_chat_api.env


async def _search(env: Env, user: User, q: str) -> list[dict[str, object]]:
    answer = await env.client.get(
        "/api/conversations/search", params={"q": q}, headers=user.headers
    )
    assert answer.status == 200, await answer.text()
    return list((await answer.json())["results"])


async def test_search_finds_own_conversations_by_words_in_either_language(env: Env) -> None:
    ann = await env.user(money=100_000)
    bob = await env.user(money=100_000)
    await env.script(reply="Коты любят спать на солнце. Cats sleeping all day.", chunk_delay_ms=0)
    cats = (await env.chat(ann, text="Почему кошки много спят?", conversation_id=None))[0][1]
    await env.script(reply="Use a sharp knife.", chunk_delay_ms=0)
    await env.chat(ann, text="How to slice bread", conversation_id=None)
    for query in ("кот", "sleep", "кошка"):
        hits = await _search(env, ann, query)
        assert [h["conversation_id"] for h in hits] == [cats["conversation_id"]], query
    [hit] = await _search(env, ann, "солнцем")
    assert hit["title"] == "Почему кошки много спят?"
    assert isinstance(hit["snippet"], str) and "солнце" in hit["snippet"]
    # Only one's own conversations.
    assert await _search(env, bob, "кот") == []
    missing = await env.client.get("/api/conversations/search", headers=ann.headers)
    assert missing.status == 400


async def test_a_conversation_is_renamed_and_found_by_its_new_name(env: Env) -> None:
    ann, conversation_id = await _a_conversation(env)
    renamed = await env.client.patch(
        f"/api/conversations/{conversation_id}",
        json={"title": "Планы на отпуск"},
        headers=ann.headers,
    )
    assert renamed.status == 200, await renamed.text()
    assert (await renamed.json())["title"] == "Планы на отпуск"
    listed = await (await env.client.get("/api/conversations", headers=ann.headers)).json()
    assert listed["conversations"][0]["title"] == "Планы на отпуск"
    [hit] = await _search(env, ann, "отпуска")
    assert hit["conversation_id"] == conversation_id and hit["snippet"] is None
    blank = await env.client.patch(
        f"/api/conversations/{conversation_id}", json={"title": "  "}, headers=ann.headers
    )
    assert blank.status == 400


async def test_nobody_renames_or_reconfigures_another_users_conversation(env: Env) -> None:
    ann, conversation_id = await _a_conversation(env)
    eve = await env.user()
    for body in ({"title": "Mine now"}, {"model_id": "web-mini"}, {"preset_id": None}):
        answer = await env.client.patch(
            f"/api/conversations/{conversation_id}", json=body, headers=eve.headers
        )
        assert answer.status == 404, body
    listed = await (await env.client.get("/api/conversations", headers=ann.headers)).json()
    assert listed["conversations"][0]["title"] == "A question"


async def test_a_conversation_answers_with_its_own_model(env: Env) -> None:
    ann, conversation_id = await _a_conversation(env)
    unknown = await env.client.patch(
        f"/api/conversations/{conversation_id}", json={"model_id": "gpt-9"}, headers=ann.headers
    )
    assert unknown.status == 404
    changed = await env.client.patch(
        f"/api/conversations/{conversation_id}",
        json={"model_id": "web-mini"},
        headers=ann.headers,
    )
    assert (await changed.json())["model_id"] == "web-mini"
    await env.script(model=env.free, reply="Small answer.", chunk_delay_ms=0)
    await env.chat(ann, text="And now?", conversation_id=conversation_id)
    stored = await env.messages(ann, conversation_id)
    assert stored[-1]["model_id"] == "web-mini"
    # The user's default did not change, and a new conversation follows it.
    models = await (await env.client.get("/api/models", headers=ann.headers)).json()
    assert models["current"] == "web-gpt"
    await env.script(reply="Big answer.", chunk_delay_ms=0)
    start = (await env.chat(ann, text="Fresh", conversation_id=None))[0][1]
    assert (await env.messages(ann, start["conversation_id"]))[-1]["model_id"] == "web-gpt"


async def test_a_conversations_own_model_is_named_as_people_read_it(env: Env) -> None:
    ann, conversation_id = await _a_conversation(env)
    changed = await env.client.patch(
        f"/api/conversations/{conversation_id}", json={"model_id": "web-gpt"}, headers=ann.headers
    )
    assert (await changed.json())["model_name"] == "Web GPT"
    listed = await (await env.client.get("/api/conversations", headers=ann.headers)).json()
    [own] = listed["conversations"]
    assert (own["model_id"], own["model_name"]) == ("web-gpt", "Web GPT")
    [hit] = await _search(env, ann, "question")
    assert (hit["model_id"], hit["model_name"]) == ("web-gpt", "Web GPT")
    # Back to the user's default: no model of its own, no name.
    reset = await env.client.patch(
        f"/api/conversations/{conversation_id}", json={"model_id": None}, headers=ann.headers
    )
    assert (await reset.json())["model_name"] is None


async def test_a_long_first_message_titles_the_chat_cut_at_a_word(env: Env) -> None:
    ann = await env.user(money=100_000)
    await env.script(reply="Sure.", chunk_delay_ms=0)
    text = "Please explain step by step how a refrigerator moves heat from inside to outside"
    await env.chat(ann, text=text, conversation_id=None)
    listed = await (await env.client.get("/api/conversations", headers=ann.headers)).json()
    title = listed["conversations"][0]["title"]
    assert title == "Please explain step by step how a refrigerator moves heat from…"


async def _a_conversation(env: Env) -> tuple[User, int]:
    ann = await env.user(money=100_000)
    await env.script(reply="An answer.", chunk_delay_ms=0)
    start = (await env.chat(ann, text="A question", conversation_id=None))[0][1]
    return ann, int(start["conversation_id"])
