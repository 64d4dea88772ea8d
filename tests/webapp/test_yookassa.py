"""Card top-ups through YooKassa, end to end over real HTTP: the web app creates the payment in
the sandbox's YooKassa, the payer pays on its page, YooKassa notifies the web app, which checks
the payment with YooKassa and credits it once, however often the notification comes."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from ipaddress import ip_network
from typing import Any

import httpx
import pytest
from aiohttp import web
from redis.asyncio import Redis
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from core.payments.yookassa import YooKassaClient
from core.services import billing, reconciliation, yookassa_topups
from core.services.payments import PaymentTerms
from core.services.tariffs import Tariffs
from db.engine import UnitOfWorkFactory
from db.models import Payment, PaymentOrder
from sandbox.app import SandboxServer, start_sandbox
from sandbox.yookassa import YOOKASSA, YooKassaOptions
from tests.factories import register
from tests.webapp.conftest import web_access_token
from webapp.app import create_app
from webapp.keys import CONTEXT, WebContext
from webapp.routes.payments import NOTIFICATION_PATH

SECRET = "yookassa-test-jwt-secret-of-32-bytes!!"
TERMS = PaymentTerms.build(
    kopecks_per_star=130,
    star_packages=[50],
    referral_level1_percent=10,
    referral_level2_percent=3,
    signing_secret=SECRET,
)
LOCAL = (ip_network("127.0.0.0/8"), ip_network("::1/128"))


@dataclass
class Shop:
    sandbox: SandboxServer
    web_url: str
    app: web.Application
    http: httpx.AsyncClient
    factory: UnitOfWorkFactory

    networks: list[Any]

    def use_networks(self, networks: tuple[Any, ...]) -> None:
        """What the operator allows, changed while the app runs."""
        self.networks[:] = networks

    async def control(self, method: str, path: str, **kwargs: Any) -> Any:
        response = await self.http.request(
            method, f"{self.sandbox.url}/sandbox/api/yookassa{path}", **kwargs
        )
        assert response.status_code < 300, response.text
        return response.json()

    async def notifications(self, payment_id: str) -> list[dict[str, Any]]:
        return (await self.control("GET", f"/notifications?payment_id={payment_id}"))[
            "notifications"
        ]

    async def wait(self, check: Callable[[], Any], seconds: float = 10) -> Any:
        async with asyncio.timeout(seconds):
            while True:
                result = await check()
                if result:
                    return result
                await asyncio.sleep(0.05)


@pytest.fixture
async def shop(engine: AsyncEngine, redis: Redis) -> AsyncIterator[Shop]:
    sandbox = await start_sandbox()
    sandbox.app[YOOKASSA].options = YooKassaOptions(retry_base=0.05, retry_cap=0.2)
    http = httpx.AsyncClient(timeout=30)
    shop_id, key = f"shop-{secrets.token_hex(4)}", secrets.token_urlsafe(16)
    factory = UnitOfWorkFactory.for_engine(engine)
    networks: list[Any] = list(LOCAL)
    context = WebContext(
        uow_factory=factory,
        redis=redis,
        public_url="http://netroom.test",
        policy_version="2026-11-01",
        policy_date="2026-11-01",
        jwt_secret=SECRET,
        yookassa=YooKassaClient(http, shop_id, key, f"{sandbox.url}/yookassa/v3"),
        yookassa_packages=(300, 1000),
        yookassa_networks=networks,
        payment_terms=TERMS,
    )
    app = create_app(context)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    web_url = f"http://127.0.0.1:{port}"
    await http.post(
        f"{sandbox.url}/sandbox/api/yookassa/shops",
        json={"shop_id": shop_id, "secret_key": key, "webhook_url": web_url + NOTIFICATION_PATH},
    )
    try:
        yield Shop(sandbox, web_url, app, http, factory, networks)
    finally:
        await runner.cleanup()
        await http.aclose()
        await sandbox.stop()


async def _user(shop: Shop) -> tuple[int, str]:
    async with shop.factory() as uow:
        user = (await register(uow)).user
        token = await web_access_token(uow, user.id, secret=SECRET)
    return user.id, token


async def _start(shop: Shop, token: str, rub: int = 300) -> dict[str, Any]:
    response = await shop.http.post(
        f"{shop.web_url}/api/payments/yookassa",
        json={"rub": rub},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.status_code == 201, response.text
    return dict(response.json())


async def _balance(shop: Shop, user_id: int) -> int:
    async with shop.factory() as uow:
        return (await billing.get_balance(uow, user_id)).balance


async def _payment_id(shop: Shop, order_id: int) -> str:
    async with shop.factory() as uow:
        order = await uow.session.get(PaymentOrder, order_id)
        assert order is not None and order.external_id
        return order.external_id


async def test_paying_on_the_checkout_page_credits_the_balance_once(shop: Shop) -> None:
    user_id, token = await _user(shop)
    started = await _start(shop, token)
    assert started["confirmation_url"].startswith(f"{shop.sandbox.url}/yookassa/checkout/")
    payment_id = await _payment_id(shop, started["order_id"])
    # The payer presses Pay on YooKassa's page and is sent back to the app.
    page = await shop.http.get(started["confirmation_url"])
    assert "300.00" in page.text
    paid = await shop.http.post(
        started["confirmation_url"], data={"action": "pay"}, follow_redirects=False
    )
    assert paid.status_code == 303
    back = paid.headers["location"]
    assert back.startswith(f"http://netroom.test/pay/result/{started['order_id']}/")

    async def delivered() -> bool:
        found = await shop.notifications(payment_id)
        return any(n["delivered"] for n in found)

    await shop.wait(delivered)
    assert await _balance(shop, user_id) == 30_000
    # YooKassa re-sends the same notification ten times at once: nothing more is credited.
    await shop.control("POST", f"/notifications/{payment_id}/resend", json={"times": 10})

    async def all_delivered() -> bool:
        found = await shop.notifications(payment_id)
        return len(found) >= 11 and all(n["delivered"] for n in found)

    await shop.wait(all_delivered)
    assert await _balance(shop, user_id) == 30_000
    async with shop.factory() as uow:
        rows = list(
            await uow.session.scalars(select(Payment).where(Payment.external_id == payment_id))
        )
        assert [(r.provider, r.amount, r.credited, r.user_id) for r in rows] == [
            ("yookassa", 30_000, 30_000, user_id)
        ]
        order = await uow.session.get(PaymentOrder, started["order_id"])
        assert order is not None and order.status == "succeeded"


async def test_a_notification_is_believed_only_after_asking_yookassa(shop: Shop) -> None:
    user_id, token = await _user(shop)
    started = await _start(shop, token)
    payment_id = await _payment_id(shop, started["order_id"])
    # A forged "succeeded" for a payment nobody paid: YooKassa says pending, nothing happens.
    forged = {
        "type": "notification",
        "event": "payment.succeeded",
        "object": {"id": payment_id, "status": "succeeded", "paid": True},
    }
    answer = await shop.http.post(shop.web_url + NOTIFICATION_PATH, json=forged)
    assert answer.status_code == 200 and answer.json() == {"status": "pending"}
    # A payment id YooKassa does not know: it cannot be checked, so YooKassa would retry.
    unknown = forged | {"object": {"id": "2f1c0000-000f-5000-8000-000000000000"}}
    answer = await shop.http.post(shop.web_url + NOTIFICATION_PATH, json=unknown)
    assert answer.status_code == 503
    answer = await shop.http.post(shop.web_url + NOTIFICATION_PATH, content=b"not json")
    assert answer.status_code == 400
    assert await _balance(shop, user_id) == 0


@pytest.mark.parametrize(
    "object_",
    [
        {"id": "../payments"},
        {"id": "a/b"},
        {"id": "x" * 65},
        {"id": ""},
        {"id": "2f1c0000 000f"},
        {"id": "2f1c0000-000f\n-5000"},
        {"id": 12345},
        {"id": None},
        {"id": ["2f1c0000-000f-5000-8000-000000000000"]},
        {},
    ],
)
async def test_a_malformed_notification_is_refused_with_400_not_asked_again(
    shop: Shop, object_: dict[str, object]
) -> None:
    body = {"type": "notification", "event": "payment.succeeded", "object": object_}
    answer = await shop.http.post(shop.web_url + NOTIFICATION_PATH, json=body)
    assert answer.status_code == 400, answer.text
    refund = {"type": "notification", "event": "refund.succeeded", "object": {"payment_id": "../x"}}
    answer = await shop.http.post(shop.web_url + NOTIFICATION_PATH, json=refund)
    assert answer.status_code == 400


async def test_notifications_from_outside_yookassas_networks_are_refused(shop: Shop) -> None:
    user_id, token = await _user(shop)
    started = await _start(shop, token)
    payment_id = await _payment_id(shop, started["order_id"])
    shop.use_networks((ip_network("185.71.76.0/27"),))
    await shop.control("POST", f"/payments/{payment_id}/pay")

    async def refused() -> bool:
        found = await shop.notifications(payment_id)
        return any(n["last_status"] == 403 for n in found)

    await shop.wait(refused)
    assert await _balance(shop, user_id) == 0
    # From YooKassa's network (here: the sandbox's) the re-sent notification is accepted.
    shop.use_networks(LOCAL)

    async def credited() -> bool:
        return await _balance(shop, user_id) == 30_000

    await shop.wait(credited)


async def test_a_canceled_payment_credits_nothing_and_a_refund_takes_the_credit_back(
    shop: Shop,
) -> None:
    user_id, token = await _user(shop)
    first = await _start(shop, token)
    first_id = await _payment_id(shop, first["order_id"])
    await shop.control("POST", f"/payments/{first_id}/cancel")

    async def canceled() -> bool:
        async with shop.factory() as uow:
            order = await uow.session.get(PaymentOrder, first["order_id"])
            return order is not None and order.status == "canceled"

    await shop.wait(canceled)
    assert await _balance(shop, user_id) == 0

    second = await _start(shop, token, rub=1000)
    second_id = await _payment_id(shop, second["order_id"])
    await shop.control("POST", f"/payments/{second_id}/pay")

    async def credited() -> bool:
        return await _balance(shop, user_id) == 100_000

    await shop.wait(credited)
    # A full refund from the shop's side: YooKassa notifies refund.succeeded.
    yookassa = shop.app[CONTEXT].yookassa
    assert yookassa is not None
    refund = await shop.http.post(
        f"{yookassa.api_base}/refunds",
        json={"payment_id": second_id, "amount": {"value": "1000.00", "currency": "RUB"}},
        headers={"Idempotence-Key": secrets.token_hex(8)},
        auth=(yookassa.shop_id, yookassa.secret_key),
    )
    assert refund.status_code == 200, refund.text

    async def reversed_() -> bool:
        return await _balance(shop, user_id) == 0

    await shop.wait(reversed_)


async def test_only_offered_amounts_can_be_paid(shop: Shop) -> None:
    _, token = await _user(shop)
    response = await shop.http.post(
        f"{shop.web_url}/api/payments/yookassa",
        json={"rub": 299},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.status_code == 400
    response = await shop.http.post(f"{shop.web_url}/api/payments/yookassa", json={"rub": 300})
    assert response.status_code == 401


async def test_reconciliation_finds_a_paid_payment_that_was_never_credited(shop: Shop) -> None:
    user_id, token = await _user(shop)
    started = await _start(shop, token)
    payment_id = await _payment_id(shop, started["order_id"])
    # Notifications fail for now: the payment is paid at YooKassa but not credited here.
    shop.use_networks(())
    await shop.control("POST", f"/payments/{payment_id}/pay")
    yookassa = shop.app[CONTEXT].yookassa
    assert yookassa is not None
    now = datetime.now(UTC)
    payments = await yookassa.list_payments(
        created_from=now.replace(hour=0, minute=0), created_before=now.replace(hour=23, minute=59)
    )
    charges = [
        reconciliation.ProviderCharge(
            "yookassa", p.id, p.amount, datetime.fromisoformat(p.created_at.replace("Z", "+00:00"))
        )
        for p in payments
        if p.status == "succeeded"
    ]
    async with shop.factory() as uow:
        report = await reconciliation.reconcile(
            uow,
            since=now.replace(hour=0, minute=0),
            until=now.replace(hour=23, minute=59),
            charges=charges,
            providers=["yookassa"],
        )
    missing = [d for d in report.differences if d.external_id == payment_id]
    assert [d.problem for d in missing] == ["missing_here"]
    assert payment_id in report.summary()
    assert await _balance(shop, user_id) == 0


async def test_reconciliation_credits_a_paid_payment_whose_notification_was_lost_once(
    shop: Shop,
) -> None:
    user_id, token = await _user(shop)
    started = await _start(shop, token)
    payment_id = await _payment_id(shop, started["order_id"])
    shop.use_networks(())
    await shop.control("POST", f"/payments/{payment_id}/pay")
    yookassa = shop.app[CONTEXT].yookassa
    assert yookassa is not None
    now = datetime.now(UTC)
    since, until = now - timedelta(hours=1), now + timedelta(minutes=1)
    listed = await yookassa.list_payments(created_from=since, created_before=until)
    charges = [
        reconciliation.ProviderCharge(
            "yookassa", p.id, p.amount, datetime.fromisoformat(p.created_at.replace("Z", "+00:00"))
        )
        for p in listed
        if p.status == "succeeded"
    ]

    async def run() -> reconciliation.Report:
        async with shop.factory() as uow:
            report = await reconciliation.reconcile(
                uow, since=since, until=until, charges=charges, providers=["yookassa"]
            )
            return await reconciliation.heal(
                uow,
                report,
                charges,
                terms=TERMS,
                tariffs=Tariffs(free_limits={}),
                yookassa=yookassa,
                now=now,
            )

    first = await run()
    [healed] = [h for h in first.healed if h.external_id == payment_id]
    assert (healed.action, healed.user_id, healed.kopecks) == ("credited", user_id, 30_000)
    assert payment_id not in {d.external_id for d in first.differences}
    assert f"+ healed: yookassa {payment_id} credited" in first.summary()
    assert await _balance(shop, user_id) == 30_000
    # The next hourly run (or the notification, arriving at last) credits nothing more.
    again = await run()
    assert payment_id not in {h.external_id for h in again.healed}
    assert payment_id not in {d.external_id for d in again.differences}
    assert await _balance(shop, user_id) == 30_000


def _result_path(location: str) -> str:
    return location.removeprefix("http://netroom.test")


async def _pay_and_come_back(shop: Shop, started: dict[str, Any]) -> str:
    """Pay on YooKassa's page; the path of the page it sends the payer back to."""
    paid = await shop.http.post(
        started["confirmation_url"], data={"action": "pay"}, follow_redirects=False
    )
    assert paid.status_code == 303
    return _result_path(paid.headers["location"])


async def test_the_payer_comes_back_to_a_page_saying_the_payment_arrived(shop: Shop) -> None:
    user_id, token = await _user(shop)
    started = await _start(shop, token)
    payment_id = await _payment_id(shop, started["order_id"])
    back = await _pay_and_come_back(shop, started)

    async def credited() -> bool:
        return await _balance(shop, user_id) == 30_000

    await shop.wait(credited)
    # No sign-in needed: the payer may come back in another browser than the app's.
    page = await shop.http.get(f"{shop.web_url}{back}")
    assert page.status_code == 200
    assert "Payment received" in page.text and "₽300.00" in page.text
    assert 'http-equiv="refresh"' not in page.text
    assert page.headers["Cache-Control"] == "no-store"
    assert await shop.notifications(payment_id)


async def test_coming_back_before_the_notification_asks_yookassa_and_credits_once(
    shop: Shop,
) -> None:
    user_id, token = await _user(shop)
    started = await _start(shop, token)
    # YooKassa's notifications do not get through for now.
    shop.use_networks(())
    back = await _pay_and_come_back(shop, started)
    first = await shop.http.get(f"{shop.web_url}{back}", headers={"Accept-Language": "ru"})
    assert "Платёж получен" in first.text
    assert await _balance(shop, user_id) == 30_000
    # Back again, and the notification finally arrives: nothing is credited twice.
    shop.use_networks(LOCAL)
    again = await shop.http.get(f"{shop.web_url}{back}")
    assert "Payment received" in again.text
    payment_id = await _payment_id(shop, started["order_id"])
    await shop.control("POST", f"/notifications/{payment_id}/resend", json={"times": 2})

    async def delivered() -> bool:
        return any(n["delivered"] for n in await shop.notifications(payment_id))

    await shop.wait(delivered)
    assert await _balance(shop, user_id) == 30_000


async def test_a_payment_not_made_yet_shows_a_waiting_page_that_refreshes(shop: Shop) -> None:
    _, token = await _user(shop)
    started = await _start(shop, token)
    async with shop.factory() as uow:
        order = await uow.session.get(PaymentOrder, started["order_id"])
        assert order is not None
        path = _result_path(
            yookassa_topups.result_url("http://netroom.test", order.id, order.idempotence_key)
        )
    page = await shop.http.get(f"{shop.web_url}{path}")
    assert page.status_code == 200
    assert "Waiting for the bank" in page.text and 'http-equiv="refresh"' in page.text
    # Cancelled on YooKassa's page: the page says no money was taken.
    cancel = await shop.http.post(
        started["confirmation_url"], data={"action": "cancel"}, follow_redirects=False
    )
    assert cancel.status_code == 303
    canceled = await shop.http.get(f"{shop.web_url}{path}")
    assert "did not go through" in canceled.text and "No money was taken" in canceled.text


async def test_a_result_page_with_a_wrong_token_is_not_found(shop: Shop) -> None:
    _, token = await _user(shop)
    started = await _start(shop, token)
    forged = f"/pay/result/{started['order_id']}/{'0' * 32}"
    page = await shop.http.get(f"{shop.web_url}{forged}")
    assert page.status_code == 404 and "Payment" not in page.text
