from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from core.catalogue import ModelUnavailable
from core.errors import InvalidInput, NotFound
from core.services import chat, conversations, presets, retention, search, turns
from core.services.chat import ModelMenu, ModelTerms
from db.uow import UnitOfWork
from tests.factories import register

NOW = datetime(2026, 12, 5, 12, tzinfo=UTC)
FREE = ModelTerms("free-model", "openai", "gpt-free", 8_000, 0, 0)
OTHER = ModelTerms("other-model", "openai", "gpt-other", 8_000, 0, 0)
MENU = ModelMenu(models=(FREE, OTHER), default_id=FREE.id)


async def _talk(
    uow: UnitOfWork, user_id: int, prompt: str, reply: str, *, now: datetime = NOW
) -> int:
    """One stored turn in a new conversation; its id."""
    await chat.new_conversation(uow, user_id)
    turn = await turns.begin_turn(uow, user_id=user_id, text=prompt, model=FREE, now=now)
    await turns.finish_turn(
        uow, turn, text=reply, reasoning="", usage=None, status="complete", now=now
    )
    return turn.conversation_id


async def _found(uow: UnitOfWork, user_id: int, query: str) -> list[int]:
    hits = await search.search_conversations(uow, user_id, query=query, now=NOW)
    return [hit.conversation_id for hit in hits]


async def test_search_finds_russian_words_in_any_form(uow: UnitOfWork) -> None:
    user_id = (await register(uow)).user.id
    cats = await _talk(uow, user_id, "Как ухаживать за котами?", "Кормите кота дважды в день.")
    await _talk(uow, user_id, "Рецепт борща", "Свёкла, капуста, картофель.")
    assert await _found(uow, user_id, "кошка кот") == []  # every word must match
    assert await _found(uow, user_id, "коты") == [cats]
    hit = (await search.search_conversations(uow, user_id, query="коту", now=NOW))[0]
    # The newest matching message, as a fragment of plain text.
    assert hit.snippet is not None and "кота" in hit.snippet
    assert hit.title == "Как ухаживать за котами?"


async def test_search_finds_english_words_in_any_form(uow: UnitOfWork) -> None:
    user_id = (await register(uow)).user.id
    monad = await _talk(uow, user_id, "What is a monad?", "A monoid in the category of functors.")
    running = await _talk(uow, user_id, "Tips for running", "Start slowly; runners rest.")
    assert await _found(uow, user_id, "run") == [running]
    # Quotes ask for a phrase, as in a search box.
    assert await _found(uow, user_id, '"categories of functors"') == [monad]
    assert await _found(uow, user_id, '"functors category"') == []


async def test_search_finds_a_conversation_by_its_new_name(uow: UnitOfWork) -> None:
    user_id = (await register(uow)).user.id
    first = await _talk(uow, user_id, "hello", "hi")
    renamed = await conversations.update_conversation(
        uow, user_id, first, models=MENU, title="  Отпуск\nв Италии  "
    )
    assert renamed.title == "Отпуск в Италии"
    assert await _found(uow, user_id, "италия") == [first]
    hit = (await search.search_conversations(uow, user_id, query="отпуск", now=NOW))[0]
    assert (hit.message_id, hit.snippet) == (None, None)


async def test_search_never_finds_someone_elses_conversations(uow: UnitOfWork) -> None:
    mine = (await register(uow)).user.id
    theirs = (await register(uow)).user.id
    await _talk(uow, theirs, "secret zanzibar plan", "noted")
    assert await _found(uow, mine, "zanzibar") == []
    assert len(await _found(uow, theirs, "zanzibar")) == 1


async def test_search_forgets_messages_past_their_retention(uow: UnitOfWork) -> None:
    user_id = (await register(uow)).user.id
    old = NOW - timedelta(days=15)
    await _talk(uow, user_id, "old question", "about quokkas", now=old)
    recent = await _talk(uow, user_id, "recent question", "quokka facts", now=NOW)
    # Expired is not found even before the purge removes it, nor after.
    assert await _found(uow, user_id, "quokka") == [recent]
    await retention.purge_expired(uow, now=NOW)
    assert await _found(uow, user_id, "quokka") == [recent]


async def test_search_refuses_an_empty_query(uow: UnitOfWork) -> None:
    user_id = (await register(uow)).user.id
    with pytest.raises(InvalidInput):
        await search.search_conversations(uow, user_id, query=" \n ", now=NOW)


def test_titles_are_cut_at_a_word_boundary_with_an_ellipsis() -> None:
    text = "Explain how photosynthesis works in desert plants during a long drought season"
    title = conversations.title_from(text)
    assert title == "Explain how photosynthesis works in desert plants during a long…"
    assert title is not None and len(title) <= 64
    assert conversations.title_from("Short  question\n") == "Short question"
    assert conversations.title_from("x" * 100) == "x" * 63 + "…"


async def test_a_new_conversation_is_titled_without_cutting_a_word(uow: UnitOfWork) -> None:
    user_id = (await register(uow)).user.id
    prompt = "Расскажи подробно, как устроена фотосинтезирующая система растений пустыни"
    await _talk(uow, user_id, prompt, "…")
    [listed] = await conversations.list_conversations(uow, user_id)
    assert listed.title == "Расскажи подробно, как устроена фотосинтезирующая система…"


async def test_picking_a_preset_keeps_the_current_conversation(uow: UnitOfWork) -> None:
    user_id = (await register(uow)).user.id
    first = await _talk(uow, user_id, "hello", "hi")
    poet = await presets.create_preset(uow, user_id, title="Poet", prompt="Answer in verse.")
    await presets.use_preset(uow, user_id, poet.id)
    prefs = await chat.get_prefs(uow, user_id)
    assert prefs.conversation_id == first
    setup = await turns.setup_turn(uow, user_id=user_id, models=MENU)
    # The current conversation goes on with its own (no) instructions ...
    assert (setup.prefs.conversation_id, setup.prefs.preset_id) == (first, None)
    # ... and the next one takes the preset.
    fresh = await turns.setup_turn(uow, user_id=user_id, models=MENU, new_conversation=True)
    assert fresh.prefs.preset_id == poet.id


async def test_a_conversation_answers_with_its_own_model(uow: UnitOfWork) -> None:
    user_id = (await register(uow)).user.id
    first = await _talk(uow, user_id, "hello", "hi")
    [listed] = await conversations.list_conversations(uow, user_id)
    assert listed.model_id is None  # the user's default
    changed = await conversations.update_conversation(
        uow, user_id, first, models=MENU, model_id=OTHER.id
    )
    assert changed.model_id == OTHER.id
    assert (await turns.setup_turn(uow, user_id=user_id, models=MENU)).model == OTHER
    # A new conversation follows the user's default; naming a model still wins.
    new = await turns.setup_turn(uow, user_id=user_id, models=MENU, new_conversation=True)
    assert new.model == FREE
    named = await turns.setup_turn(uow, user_id=user_id, models=MENU, model_id=FREE.id)
    assert named.model == FREE
    back = await conversations.update_conversation(uow, user_id, first, models=MENU, model_id=None)
    assert back.model_id is None
    assert (await turns.setup_turn(uow, user_id=user_id, models=MENU)).model == FREE


async def test_a_conversation_takes_only_menu_models_and_own_presets(uow: UnitOfWork) -> None:
    user_id = (await register(uow)).user.id
    other = (await register(uow)).user.id
    first = await _talk(uow, user_id, "hello", "hi")
    theirs = await presets.create_preset(uow, other, title="Theirs", prompt="No.")
    with pytest.raises(ModelUnavailable):
        await conversations.update_conversation(
            uow, user_id, first, models=MENU, model_id="gone-model"
        )
    with pytest.raises(NotFound):
        await conversations.update_conversation(
            uow, user_id, first, models=MENU, preset_id=theirs.id
        )
    with pytest.raises(NotFound):
        await conversations.update_conversation(uow, other, first, models=MENU, title="Mine")
    with pytest.raises(InvalidInput):
        await conversations.update_conversation(uow, user_id, first, models=MENU, title=" ")
    mine = await presets.create_preset(uow, user_id, title="Mine", prompt="Be brief.")
    changed = await conversations.update_conversation(
        uow, user_id, first, models=MENU, preset_id=mine.id
    )
    assert changed.preset_id == mine.id
    setup = await turns.setup_turn(uow, user_id=user_id, models=MENU)
    assert setup.prefs.preset_id == mine.id
