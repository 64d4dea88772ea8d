"""/model: models grouped by provider with capabilities, a typical request's price and the free
class explained; picking one edits the whole message, text included."""

from __future__ import annotations

from tests.bot.conftest import BotHarness, Person, PersonFactory, buttons, text_of
from tests.bot.test_redo import _ask, _tap


async def _ready(person: PersonFactory, name: str, language: str = "en") -> Person:
    someone: Person = await person(name, language_code=language)
    [consent] = await someone.say("/start")
    await someone.accept(consent)
    return someone


async def test_model_menu_groups_models_by_provider_with_marks_prices_and_classes(
    harness: BotHarness, person: PersonFactory
) -> None:
    ida = await _ready(person, "Ida")
    [menu] = await ida.say("/model")
    lines = text_of(menu).split("\n")
    assert lines[0] == "🤖 Current model: sandbox-gpt"
    openai, anthropic = lines.index("OpenAI"), lines.index("Anthropic")
    # The catalogue's order within a provider; the provider's models together.
    assert lines[openai + 1].startswith("▶️ sandbox-gpt 👁🧠 · ~₽")
    assert lines[openai + 2] == "• Sandbox Mini · ~₽0.04 · 🎁 basic"
    assert lines[anthropic + 1].startswith("• sandbox-claude · ~₽")
    assert lines[lines.index("DeepSeek") + 1].startswith("• Sandbox Thinker 🧠 · ~₽")
    assert "👁 sees pictures · 🧠 reasons before answering · 🌐 searches the web" in lines
    assert "• basic: light, fast models; 1 free basic requests a day" in lines
    labels = [b["text"] for b in buttons(menu)]
    assert labels[:2] == [labels[0], "Sandbox Mini · ~₽0.04 🎁"]
    assert labels[0].startswith("• sandbox-gpt 👁🧠 · ~₽")
    assert labels[2].startswith("sandbox-claude · ~₽")


async def test_picking_a_model_edits_the_current_model_in_the_text_too(
    harness: BotHarness, person: PersonFactory
) -> None:
    jon = await _ready(person, "Jon")
    [menu] = await jon.say("/model")
    mini = next(b for b in buttons(menu) if b["text"].startswith("Sandbox Mini"))
    after = await harness.client.last_seq()
    await harness.client.tap(jon.id, menu["message_id"], mini["callback_data"])
    answer = await harness.client.wait_for(
        lambda e: e["type"] == "callback_answered", chat_id=jon.id, after=after
    )
    assert answer["text"] == "Model: Sandbox Mini"
    edited = await harness.client.wait_for(
        lambda e: e["type"] == "message_edited" and e["message_id"] == menu["message_id"],
        chat_id=jon.id,
        after=after,
    )
    text = edited["message"]["text"]
    assert text.startswith("🤖 Current model: Sandbox Mini\n")
    assert "▶️ Sandbox Mini · ~₽0.04 · 🎁 basic" in text
    assert "• sandbox-gpt 👁🧠" in text
    marked = [b["text"] for b in buttons(edited) if b["text"].startswith("• ")]
    assert marked == ["• Sandbox Mini · ~₽0.04 🎁"]


async def test_model_menu_explains_the_free_classes_in_russian(
    harness: BotHarness, person: PersonFactory
) -> None:
    ivan = await _ready(person, "Ivan", language="ru")
    [menu] = await ivan.say("/model")
    text = text_of(menu)
    assert text.startswith("🤖 Текущая модель: sandbox-gpt\n")
    assert "• базовые: лёгкие быстрые модели;" in text
    assert "Цены — за типичный запрос" in text


async def test_a_replys_cost_names_the_model_as_the_menu_does(
    harness: BotHarness, person: PersonFactory
) -> None:
    kim = await _ready(person, "Kim")
    [menu] = await kim.say("/model")
    mini = next(b for b in buttons(menu) if b["text"].startswith("Sandbox Mini"))
    after = await harness.client.last_seq()
    await harness.client.tap(kim.id, menu["message_id"], mini["callback_data"])
    await harness.client.wait_for(
        lambda e: e["type"] == "callback_answered", chat_id=kim.id, after=after
    )
    _, reply = await _ask(harness, kim, "Hello", "Hello from the mini model.")
    after = await _tap(harness, kim, reply, "ℹ️")
    answer = await harness.client.wait_for(
        lambda e: e["type"] == "callback_answered", chat_id=kim.id, after=after
    )
    assert "This reply was free (Sandbox Mini)." in answer["text"]


async def test_balance_and_plans_tell_what_the_free_classes_hold(
    harness: BotHarness, person: PersonFactory
) -> None:
    lea = await _ready(person, "Lea")
    [balance] = await lea.say("/balance")
    lines = text_of(balance).split("\n")
    left = lines.index("🎁 Free requests left: basic 1/1.")
    assert lines[left + 1] == "Classes: basic: light, fast models."
    [plans] = await lea.say("/subscribe")
    assert "Classes: basic: light, fast models." in text_of(plans).split("\n")


async def test_balance_tells_the_free_classes_in_russian(
    harness: BotHarness, person: PersonFactory
) -> None:
    lev = await _ready(person, "Lev", language="ru")
    [balance] = await lev.say("/balance")
    assert "Классы: базовые: лёгкие быстрые модели." in text_of(balance).split("\n")
