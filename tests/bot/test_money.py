"""Balance and Stars top-ups through the real bot and the sandbox's payments."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import delete, select

from bot.stars import TelegramStars
from core.services import billing, chat, reconciliation, subscriptions
from db.models import Payment, PaymentOrder
from sandbox.client import SandboxError
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
    assert [b["text"] for b in buttons(view)] == [
        "⭐️ 50 → ₽65.00",
        "⭐️ 100 → ₽130.00",
        "💳 ₽100.00 by card",
        "💳 ₽500.00 by card",
        "⭐️ Subscription plans",
    ]
    # The free tier is shown with its next reset, in the operator's time zone.
    assert "Free requests left: basic 1/1" in text_of(view)
    assert "(Europe/Moscow)" in text_of(view)


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


async def _referral_payload(someone: Person) -> str:
    [info] = await someone.say("/referral")
    return text_of(info).split("?start=", 1)[1].split()[0]


async def _pay(harness: BotHarness, someone: Person, stars: int) -> dict[str, Any]:
    invoice = await _invoice(someone, stars)
    after = await harness.client.last_seq()
    await harness.client._call(
        "POST", f"/chats/{someone.id}/pay", json={"message_id": invoice["message_id"]}
    )
    paid = await harness.client.wait_for(
        lambda e: e["type"] == "payment_succeeded", chat_id=someone.id, after=after
    )
    await someone.replies(after, 1)
    return paid


async def test_top_ups_earn_the_inviter_and_the_inviters_inviter_a_share(
    harness: BotHarness, person: PersonFactory
) -> None:
    dan = await _onboard(person, "Dan")
    eve = await _onboard(person, "Eve", await _referral_payload(dan))
    gil = await _onboard(person, "Gil", await _referral_payload(eve))
    before = await harness.client.last_seq()
    await _pay(harness, eve, 50)
    level1 = 50 * PAYMENT_TERMS.kopecks_per_star * 10 // 100
    assert await _balance(harness, dan.id) == level1
    # Dan hears what Eve's top-up earned him.
    notice = await harness.client.wait_for(
        lambda e: e["type"] == "bot_message" and "you earned" in text_of(e),
        chat_id=dan.id,
        after=before,
    )
    assert "A friend you invited topped up" in text_of(notice) and "₽6.50" in text_of(notice)
    [info] = await dan.say("/referral")
    assert "Earned from their top-ups: ₽6.50" in text_of(info)
    # The terms are stated, and the link can be shared through Telegram's share sheet.
    assert "friends' top-ups: 10%; of their friends' top-ups: 3%" in text_of(info)
    [share] = [b for b in buttons(info) if "Share" in b["text"]]
    assert share["url"].startswith("https://t.me/share/url?url=https%3A%2F%2Ft.me%2F")
    # Gil, invited by Eve, pays: Eve earns level 1, Dan level 2, and each is told once.
    before = await harness.client.last_seq()
    paid = await _pay(harness, gil, 100)
    assert await _balance(harness, eve.id) == 50 * 130 + 100 * 130 * 10 // 100
    assert await _balance(harness, dan.id) == level1 + 100 * 130 * 3 // 100
    to_dan = await harness.client.wait_for(
        lambda e: e["type"] == "bot_message" and "you earned" in text_of(e),
        chat_id=dan.id,
        after=before,
    )
    assert "A friend of a friend" in text_of(to_dan) and "₽3.90" in text_of(to_dan)
    await harness.client.wait_for(
        lambda e: e["type"] == "bot_message" and "₽13.00" in text_of(e),
        chat_id=eve.id,
        after=before,
    )
    # Gil's payment is refunded: his credit and both earnings from it are reversed.
    after = await harness.client.last_seq()
    assert await harness.bot.refund_star_payment(
        user_id=gil.id, telegram_payment_charge_id=paid["charge_id"]
    )
    await harness.client.wait_for(
        lambda e: e["type"] == "payment_refunded", chat_id=gil.id, after=after
    )

    async def settled() -> bool:
        return await _balance(harness, gil.id) == 0

    for _ in range(100):
        if await settled():
            break
        await asyncio.sleep(0.05)
    assert await _balance(harness, gil.id) == 0
    assert await _balance(harness, eve.id) == 50 * 130
    assert await _balance(harness, dan.id) == level1


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


async def _use_model(harness: BotHarness, telegram_id: int, model_id: str) -> None:
    async with harness.uow_factory() as uow:
        user = await uow.users.by_telegram_id(telegram_id)
        assert user is not None
        user_id = user.id
        await chat.set_prefs(uow, user_id, model=model_id)


async def test_the_free_tier_answers_first_then_asks_for_a_top_up(
    harness: BotHarness, person: PersonFactory
) -> None:
    hana = await _onboard(person, "Hana")
    await _use_model(harness, hana.id, "sandbox-mini")
    await harness.client._call(
        "POST", "/providers/script", json={"provider": "openai", "reply": "Free answer."}
    )
    before = await harness.client.last_seq()
    await harness.client.send_text(hana.id, "Hello?")
    await harness.client.wait_for(
        lambda e: e["type"] == "bot_message" and "Free answer." in (e["message"].get("text") or ""),
        chat_id=hana.id,
        after=before,
        wait=20,
    )
    assert await _balance(harness, hana.id) == 0
    [refused] = await hana.say("Again?")
    assert "free requests to this model are used up" in text_of(refused)
    [view] = await hana.say("/balance")
    assert "Free requests left: basic 0/1" in text_of(view)


async def test_a_card_top_up_sends_the_user_to_yookassas_page(
    harness: BotHarness, person: PersonFactory
) -> None:
    ivo = await _onboard(person, "Ivo")
    [view] = await ivo.say("/topup")
    card = next(b for b in buttons(view) if b["text"] == "💳 ₽500.00 by card")
    [link] = await ivo.tap(view, card["callback_data"])
    [pay] = buttons(link)
    assert pay["text"] == "Pay ₽500.00"
    assert pay["url"].startswith(f"{harness.sandbox.url}/yookassa/checkout/")
    async with harness.uow_factory() as uow:
        user = await uow.users.by_telegram_id(ivo.id)
        assert user is not None
        orders = [
            (o.amount, o.status)
            for o in await uow.session.scalars(
                select(PaymentOrder).where(PaymentOrder.user_id == user.id)
            )
        ]
    assert orders == [(50_000, "pending")]


async def test_reconciliation_matches_star_charges_and_reports_a_lost_credit(
    harness: BotHarness, person: PersonFactory
) -> None:
    jon = await _onboard(person, "Jon")
    kept = await _pay(harness, jon, 50)
    lost = await _pay(harness, jon, 100)
    # A credit that went missing on our side.
    async with harness.uow_factory() as uow:
        await uow.session.execute(
            delete(Payment).where(
                Payment.provider == "stars", Payment.external_id == lost["charge_id"]
            )
        )
        await uow.commit()
    now = datetime.now(UTC)
    charges = await TelegramStars(harness.bot).star_charges(now - timedelta(hours=1))
    mine = {c.external_id: c for c in charges}
    assert mine[kept["charge_id"]].amount == 50 and not mine[kept["charge_id"]].refunded
    async with harness.uow_factory() as uow:
        report = await reconciliation.reconcile(
            uow,
            since=now - timedelta(hours=1),
            until=now + timedelta(minutes=1),
            charges=charges,
            providers=["stars"],
        )
    about = {d.external_id: d.problem for d in report.differences}
    assert kept["charge_id"] not in about
    assert about[lost["charge_id"]] == "missing_here"


async def test_a_subscription_is_paid_renewed_cancelled_and_resumed(
    harness: BotHarness, person: PersonFactory
) -> None:
    kim = await _onboard(person, "Kim")
    [plans] = await kim.say("/subscribe")
    assert "Plus" in text_of(plans) and "3 free basic requests a day" in text_of(plans)
    [subscribe] = buttons(plans)
    [offer] = await kim.tap(plans, subscribe["callback_data"])
    [link_button] = buttons(offer)
    assert link_button["text"] == "Subscribe for ⭐️ 100"
    after = await harness.client.last_seq()
    await harness.client.pay(kim.id, invoice_link=link_button["url"])
    paid = await harness.client.wait_for(
        lambda e: e["type"] == "payment_succeeded", chat_id=kim.id, after=after
    )
    [welcome] = await kim.replies(after, 1)
    assert "Plan Plus is active until" in text_of(welcome)
    [view] = await kim.say("/balance")
    assert "Plan Plus, paid in Stars every 30 days. Renews on" in text_of(view)
    assert "basic 3/3" in text_of(view)
    # The balance is untouched: the Stars paid for the plan, as two explained entries.
    assert await _balance(harness, kim.id) == 0
    [history] = await kim.say("/history")
    assert "+₽130.00 · paid in Stars for plan Plus" in text_of(history)
    assert "−₽130.00 · plan Plus, 30 days" in text_of(history)

    async def period_end() -> datetime:
        async with harness.uow_factory() as uow:
            user = await uow.users.by_telegram_id(kim.id)
            assert user is not None
            current = await subscriptions.current_subscription(uow, user.id, datetime.now(UTC))
            assert current is not None
            return current.current_period_end

    first_end = await period_end()
    # Telegram renews it a month later.
    after = await harness.client.last_seq()
    renewal = await harness.client.renew_subscription(kim.id, paid["charge_id"])
    [renewed] = await kim.replies(after, 1)
    assert "Plan Plus is active until" in text_of(renewed)
    assert (await period_end() - first_end).days == 30
    # Delivered again: nothing changes.
    async with harness.uow_factory() as uow:
        user = await uow.users.by_telegram_id(kim.id)
        assert user is not None
        charges = [
            p.external_id
            for p in await uow.session.scalars(select(Payment).where(Payment.user_id == user.id))
        ]
    assert sorted(charges) == sorted([paid["charge_id"], renewal["telegram_payment_charge_id"]])

    # Cancel renewal from /subscribe: Telegram is told, the plan stays until the period ends.
    [status] = await kim.say("/subscribe")
    [cancel] = buttons(status)
    assert cancel["text"] == "Cancel renewal"
    [cancelled] = await kim.tap(status, cancel["callback_data"])
    assert "Renewal cancelled" in text_of(cancelled)
    with pytest.raises(SandboxError) as refused:
        await harness.client.renew_subscription(kim.id, paid["charge_id"])
    assert refused.value.status == 409
    [view] = await kim.say("/balance")
    assert "renewal cancelled" in text_of(view)
    # And turn it back on.
    [resume] = buttons(cancelled)
    [resumed] = await kim.tap(cancelled, resume["callback_data"])
    assert "Renewal is on again" in text_of(resumed)
    again = await harness.client.renew_subscription(kim.id, paid["charge_id"])
    assert again["telegram_payment_charge_id"]


async def test_erasing_the_account_stops_telegram_renewing_its_subscription(
    harness: BotHarness, person: PersonFactory
) -> None:
    lou = await _onboard(person, "Lou")
    [plans] = await lou.say("/subscribe")
    [offer] = await lou.tap(plans, buttons(plans)[0]["callback_data"])
    after = await harness.client.last_seq()
    await harness.client.pay(lou.id, invoice_link=buttons(offer)[0]["url"])
    paid = await harness.client.wait_for(
        lambda e: e["type"] == "payment_succeeded", chat_id=lou.id, after=after
    )
    await lou.replies(after, 1)
    [confirm] = await lou.say("/delete")
    delete = next(b for b in buttons(confirm) if "Delete my account" in b["text"])
    [gone] = await lou.tap(confirm, delete["callback_data"])
    assert "has been deleted" in text_of(gone)
    with pytest.raises(SandboxError) as refused:
        await harness.client.renew_subscription(lou.id, paid["charge_id"])
    assert refused.value.status == 409
