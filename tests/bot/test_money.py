"""Balance and Stars top-ups through the real bot and the sandbox's payments."""

from __future__ import annotations

from typing import Any

from core.services import billing
from tests.bot.conftest import PAYMENT_TERMS, BotHarness, Person, PersonFactory, buttons, text_of


async def _onboard(person: PersonFactory, name: str, payload: str = "") -> Person:
    someone: Person = await person(name)
    [consent] = await someone.say(f"/start {payload}".strip())
    await someone.accept(consent)
    return someone


async def _balance(harness: BotHarness, telegram_id: int) -> int:
    async with harness.uow_factory() as uow:
        user = await uow.users.by_telegram_id(telegram_id)
        assert user is not None
        user_id = user.id
        return (await billing.get_balance(uow, user_id)).balance


async def _invoice(someone: Person, stars: int) -> dict[str, Any]:
    [view] = await someone.say("/balance")
    offer = next(b for b in buttons(view) if b["text"].startswith(f"⭐️ {stars} "))
    [invoice] = await someone.tap(view, offer["callback_data"])
    return invoice


async def test_balance_shows_zero_and_the_star_packages(
    harness: BotHarness, person: PersonFactory
) -> None:
    ann = await _onboard(person, "Ann")
    [view] = await ann.say("/balance")
    assert "Balance: ₽0.00" in text_of(view)
    assert [b["text"] for b in buttons(view)] == ["⭐️ 50 → ₽65.00", "⭐️ 100 → ₽130.00"]


async def test_paying_a_stars_invoice_credits_the_balance_once(
    harness: BotHarness, person: PersonFactory
) -> None:
    bea = await _onboard(person, "Bea")
    invoice = await _invoice(bea, 100)
    assert invoice["message"]["invoice"]["total_amount"] == 100
    assert invoice["message"]["invoice"]["currency"] == "XTR"
    after = await harness.client.last_seq()
    await harness.client._call(
        "POST", f"/chats/{bea.id}/pay", json={"message_id": invoice["message_id"]}
    )
    paid = await harness.client.wait_for(
        lambda e: e["type"] == "payment_succeeded", chat_id=bea.id, after=after
    )
    [receipt] = await bea.replies(after, 1)
    assert "Payment received: ₽130.00 added. Balance: ₽130.00" in text_of(receipt)
    assert await _balance(harness, bea.id) == 13_000

    # Telegram may deliver the same payment again (webhook retries): nothing more is credited.
    after = await harness.client.last_seq()
    await harness.client._call(
        "POST",
        f"/chats/{bea.id}/replay-payment",
        json={"message_id": paid["message_id"], "times": 10},
    )
    [history] = await bea.say("/history")
    assert text_of(history).count("top-up") == 1
    assert await _balance(harness, bea.id) == 13_000


async def test_a_forged_invoice_is_refused_at_checkout(
    harness: BotHarness, person: PersonFactory
) -> None:
    cid = await _onboard(person, "Cid")
    # An invoice whose payload this deployment did not sign.
    sent = await harness.bot.send_invoice(
        chat_id=cid.id,
        title="Cheap stars",
        description="Not from NetRoom",
        payload="s1.1.100.abc.forgedsignature",
        currency="XTR",
        prices=[{"label": "100", "amount": 1}],  # type: ignore[list-item]
        provider_token="",
    )
    after = await harness.client.last_seq()
    await harness.client._call("POST", f"/chats/{cid.id}/pay", json={"message_id": sent.message_id})
    failed = await harness.client.wait_for(
        lambda e: e["type"] in ("payment_failed", "payment_succeeded"), chat_id=cid.id, after=after
    )
    assert failed["type"] == "payment_failed"
    assert "not valid any more" in failed["reason"]
    assert await _balance(harness, cid.id) == 0


async def test_an_invitee_top_up_earns_the_inviter_a_share(
    harness: BotHarness, person: PersonFactory
) -> None:
    dan = await _onboard(person, "Dan")
    [info] = await dan.say("/referral")
    payload = text_of(info).split("?start=", 1)[1].split()[0]
    eve = await _onboard(person, "Eve", payload)
    invoice = await _invoice(eve, 50)
    after = await harness.client.last_seq()
    await harness.client._call(
        "POST", f"/chats/{eve.id}/pay", json={"message_id": invoice["message_id"]}
    )
    await eve.replies(after, 1)
    share = 50 * PAYMENT_TERMS.kopecks_per_star * 10 // 100
    assert await _balance(harness, dan.id) == share
    [info] = await dan.say("/referral")
    assert "Earned from their top-ups: ₽6.50" in text_of(info)


async def test_a_promo_code_from_the_bot_credits_the_balance(
    harness: BotHarness, person: PersonFactory
) -> None:
    from core.services import promo

    code = "BOT" + str(harness.bot.id)[-6:]
    async with harness.uow_factory() as uow:
        await promo.create_code(uow, code=code, kind="amount", value=2_500)
    fay = await _onboard(person, "Fay")
    [reply] = await fay.say(f"/promo {code.lower()}")
    assert "₽25.00 added to your balance" in text_of(reply)
    assert await _balance(harness, fay.id) == 2_500
    [again] = await fay.say(f"/promo {code}")
    assert "already used" in text_of(again)
    [unknown] = await fay.say("/promo NO-SUCH-CODE")
    assert "no such promo code" in text_of(unknown)
