"""What a turn costs when the provider reports no usage, and that money is settled first."""

from __future__ import annotations

import dataclasses

from sqlalchemy import select

from core.services import billing, chat, turns
from db.models import ChatMessageRow
from db.uow import UnitOfWork
from tests.core.test_chat import MODEL, NOW, _funded


def _estimated(turn: turns.Turn, delivered: str) -> int:
    prompt = "".join(m.text for m in turn.request.messages)
    return billing.price(
        chat.cost(MODEL, chat.estimate_tokens(prompt), chat.estimate_tokens(delivered)),
        markup_percent=MODEL.markup_percent,
        discount_percent=0,
    )


async def test_hidden_reasoning_is_not_billed_and_shown_reasoning_is(uow: UnitOfWork) -> None:
    user_id = await _funded(uow)
    thought = "Let me think about this at some length. " * 20
    hidden = await turns.begin_turn(uow, user_id=user_id, text="Why?", model=MODEL, now=NOW)
    result = await turns.finish_turn(
        uow, hidden, text="Because.", reasoning=thought, usage=None, status="stopped", now=NOW
    )
    assert result.charged == _estimated(hidden, "Because.")
    shown = await turns.begin_turn(uow, user_id=user_id, text="Why?", model=MODEL, now=NOW)
    result = await turns.finish_turn(
        uow,
        shown,
        text="Because.",
        reasoning=thought,
        reasoning_shown=True,
        usage=None,
        status="stopped",
        now=NOW,
    )
    assert result.charged == _estimated(shown, "Because." + thought)


async def test_an_estimate_never_charges_more_than_the_hold(uow: UnitOfWork) -> None:
    user_id = await _funded(uow)
    turn = await turns.begin_turn(uow, user_id=user_id, text="Write", model=MODEL, now=NOW)
    assert turn.reservation is not None
    # Far more text than the hold's estimate of a complete reply.
    flood = "long words everywhere " * 2_000
    assert _estimated(turn, flood) > turn.reservation.amount
    result = await turns.finish_turn(
        uow, turn, text=flood, reasoning="", usage=None, status="cut", now=NOW
    )
    assert result.charged == turn.reservation.amount
    balance = await billing.get_balance(uow, user_id)
    assert (balance.balance, balance.reserved) == (100_000 - turn.reservation.amount, 0)


async def test_a_reply_that_cannot_be_stored_is_still_settled(uow: UnitOfWork) -> None:
    user_id = await _funded(uow)
    turn = await turns.begin_turn(uow, user_id=user_id, text="Hi", model=MODEL, now=NOW)
    # Its conversation is gone (deleted meanwhile): the reply has nowhere to go.
    gone = dataclasses.replace(turn, conversation_id=turn.conversation_id + 10**9)
    result = await turns.finish_turn(
        uow, gone, text="Hello!", reasoning="", usage=None, status="complete", now=NOW
    )
    assert result.message_id is None and result.charged == _estimated(turn, "Hello!") > 0
    balance = await billing.get_balance(uow, user_id)
    assert (balance.balance, balance.reserved) == (100_000 - result.charged, 0)
    assert await billing.check_consistency(uow, user_id)


async def test_text_is_stored_without_nul_or_lone_surrogates(uow: UnitOfWork) -> None:
    user_id = await _funded(uow)
    turn = await turns.begin_turn(uow, user_id=user_id, text="a\x00b", model=MODEL, now=NOW)
    await turns.finish_turn(
        uow, turn, text="c\ud83dd\x00", reasoning="", usage=None, status="complete", now=NOW
    )
    rows = await uow.session.scalars(
        select(ChatMessageRow.content)
        .where(ChatMessageRow.user_id == user_id)
        .order_by(ChatMessageRow.id)
    )
    assert list(rows) == ["a\ufffdb", "c\ufffdd\ufffd"]
