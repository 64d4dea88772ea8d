from __future__ import annotations

import secrets
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select

from core.errors import NotFound
from core.providers.base import Usage
from core.services import billing, chat, presets, turns
from core.services.billing import InsufficientFunds
from core.services.chat import ModelTerms
from db.models import ChatMessageRow
from db.uow import UnitOfWork
from tests.factories import register

NOW = datetime(2026, 11, 24, 12, tzinfo=UTC)
MODEL = ModelTerms(
    id="test-model",
    provider="openai",
    provider_model="gpt-test",
    context_window=8_000,
    input_per_1k=10,
    output_per_1k=30,
    markup_percent=20,
)
FREE = ModelTerms(
    id="free-model",
    provider="openai",
    provider_model="gpt-free",
    context_window=2_000,
    input_per_1k=0,
    output_per_1k=0,
)


async def _funded(uow: UnitOfWork, amount: int = 100_000) -> int:
    user_id = (await register(uow)).user.id
    async with uow.transaction():
        await billing.credit(
            uow, user_id=user_id, amount=amount, category="topup", key=secrets.token_hex(8)
        )
    return user_id


async def _messages(uow: UnitOfWork, user_id: int) -> list[tuple[str, str, str]]:
    rows = await uow.session.execute(
        select(ChatMessageRow.role, ChatMessageRow.content, ChatMessageRow.status)
        .where(ChatMessageRow.user_id == user_id)
        .order_by(ChatMessageRow.id)
    )
    return [tuple(r) for r in rows]  # type: ignore[misc]


async def test_a_turn_stores_prompt_and_reply_and_charges_the_reported_usage(
    uow: UnitOfWork,
) -> None:
    user_id = await _funded(uow)
    turn = await turns.begin_turn(uow, user_id=user_id, text="Hello?", model=MODEL, now=NOW)
    assert turn.reservation is not None
    held = (await billing.get_balance(uow, user_id)).reserved
    assert held == turn.reservation.amount > 0
    assert turn.request.messages[-1].text == "Hello?"
    result = await turns.finish_turn(
        uow,
        turn,
        text="Hi!",
        reasoning="",
        usage=Usage(input_tokens=1_000, output_tokens=1_000),
        status="complete",
        now=NOW,
    )
    # (1000 × 10 + 1000 × 30) / 1000 = 40 kopecks of cost, +20% markup = 48.
    assert result.charged == 48
    balance = await billing.get_balance(uow, user_id)
    assert (balance.balance, balance.reserved) == (100_000 - 48, 0)
    assert await _messages(uow, user_id) == [
        ("user", "Hello?", "complete"),
        ("assistant", "Hi!", "complete"),
    ]


async def test_history_is_sent_with_the_next_turn_and_trimmed_to_the_window(
    uow: UnitOfWork,
) -> None:
    user_id = await _funded(uow)
    small = ModelTerms(
        id=MODEL.id,
        provider=MODEL.provider,
        provider_model=MODEL.provider_model,
        context_window=1_200,
        input_per_1k=MODEL.input_per_1k,
        output_per_1k=MODEL.output_per_1k,
    )
    for n in range(6):
        turn = await turns.begin_turn(
            uow, user_id=user_id, text=f"question {n} " + "x" * 300, model=small, now=NOW
        )
        await turns.finish_turn(
            uow,
            turn,
            text=f"answer {n} " + "y" * 300,
            reasoning="",
            usage=None,
            status="complete",
            now=NOW,
        )
    turn = await turns.begin_turn(uow, user_id=user_id, text="last", model=small, now=NOW)
    texts = [m.text[:10] for m in turn.request.messages]
    assert texts[-1] == "last"
    assert texts[0].startswith("question")  # a request starts with a user turn
    assert "question 0" not in " ".join(texts)  # the oldest turns no longer fit
    assert any(t.startswith("answer 5") for t in texts)


async def test_not_enough_money_stores_nothing(uow: UnitOfWork) -> None:
    user_id = await _funded(uow, amount=1)
    with pytest.raises(InsufficientFunds):
        await turns.begin_turn(uow, user_id=user_id, text="Expensive?", model=MODEL, now=NOW)
    assert await _messages(uow, user_id) == []
    assert (await billing.get_balance(uow, user_id)).reserved == 0


async def test_a_failure_that_delivered_nothing_costs_nothing(uow: UnitOfWork) -> None:
    user_id = await _funded(uow)
    turn = await turns.begin_turn(uow, user_id=user_id, text="Hi", model=MODEL, now=NOW)
    result = await turns.finish_turn(
        uow, turn, text="", reasoning="", usage=None, status="failed", now=NOW
    )
    assert result.charged == 0
    balance = await billing.get_balance(uow, user_id)
    assert (balance.balance, balance.reserved) == (100_000, 0)


async def test_a_stopped_reply_keeps_what_arrived_and_bills_only_that(uow: UnitOfWork) -> None:
    user_id = await _funded(uow)
    turn = await turns.begin_turn(uow, user_id=user_id, text="Tell a story", model=MODEL, now=NOW)
    result = await turns.finish_turn(
        uow, turn, text="Once upon", reasoning="", usage=None, status="stopped", now=NOW
    )
    assert 0 < result.charged < turn.reservation.amount  # type: ignore[union-attr]
    assert (await _messages(uow, user_id))[-1] == ("assistant", "Once upon", "stopped")


async def test_free_models_reserve_nothing(uow: UnitOfWork) -> None:
    user_id = (await register(uow)).user.id
    turn = await turns.begin_turn(uow, user_id=user_id, text="Hi", model=FREE, now=NOW)
    assert turn.reservation is None
    result = await turns.finish_turn(
        uow, turn, text="Hey", reasoning="", usage=Usage(10, 10), status="complete", now=NOW
    )
    assert result.charged == 0


async def test_with_history_off_nothing_is_stored(uow: UnitOfWork) -> None:
    user = (await register(uow)).user
    await uow.users.set_fields(user.id, history_enabled=False)
    await uow.commit()
    turn = await turns.begin_turn(uow, user_id=user.id, text="secret", model=FREE, now=NOW)
    await turns.finish_turn(
        uow, turn, text="ok", reasoning="", usage=None, status="complete", now=NOW
    )
    count = await uow.session.scalar(
        select(func.count()).select_from(ChatMessageRow).where(ChatMessageRow.user_id == user.id)
    )
    assert count == 0


async def test_new_starts_a_fresh_conversation(uow: UnitOfWork) -> None:
    user_id = await _funded(uow)
    first = await turns.begin_turn(uow, user_id=user_id, text="one", model=FREE, now=NOW)
    again = await turns.begin_turn(uow, user_id=user_id, text="two", model=FREE, now=NOW)
    assert again.conversation_id == first.conversation_id
    await chat.new_conversation(uow, user_id)
    fresh = await turns.begin_turn(uow, user_id=user_id, text="three", model=FREE, now=NOW)
    assert fresh.conversation_id != first.conversation_id
    assert [m.text for m in fresh.request.messages] == ["three"]


async def test_a_preset_becomes_the_system_prompt_and_belongs_to_its_owner(
    uow: UnitOfWork,
) -> None:
    user_id = await _funded(uow)
    other = (await register(uow)).user.id
    preset = await presets.create_preset(uow, user_id, title="Poet", prompt="Answer in verse.")
    assert [p.title for p in await presets.list_presets(uow, user_id)] == ["Poet"]
    with pytest.raises(NotFound):
        await presets.use_preset(uow, other, preset.id)
    await presets.use_preset(uow, user_id, preset.id)
    turn = await turns.begin_turn(uow, user_id=user_id, text="Rain?", model=FREE, now=NOW)
    assert turn.request.system == "Answer in verse."
    edited = await presets.edit_preset(
        uow, user_id, preset.id, title="Poet", prompt="Haiku only.", now=NOW
    )
    assert edited.system_prompt == "Haiku only."
    await presets.delete_preset(uow, user_id, preset.id)
    assert await presets.list_presets(uow, user_id) == []
    assert (await chat.get_prefs(uow, user_id)).preset_id is None


async def test_turning_history_off_clears_it_and_keeps_nothing_new(uow: UnitOfWork) -> None:
    user_id = await _funded(uow)
    turn = await turns.begin_turn(uow, user_id=user_id, text="remember me", model=FREE, now=NOW)
    await turns.finish_turn(
        uow, turn, text="noted", reasoning="", usage=None, status="complete", now=NOW
    )
    assert len(await _messages(uow, user_id)) == 2
    prefs = await chat.set_history(uow, user_id, enabled=False)
    assert not prefs.history_enabled
    assert await _messages(uow, user_id) == []
    turn = await turns.begin_turn(uow, user_id=user_id, text="forget me", model=FREE, now=NOW)
    await turns.finish_turn(
        uow, turn, text="ok", reasoning="", usage=None, status="complete", now=NOW
    )
    assert await _messages(uow, user_id) == []
    assert (await chat.set_history(uow, user_id, enabled=True)).history_enabled
