"""The sandbox's YooKassa answers as API v3 does: Basic auth, Idempotence-Key, payment and refund
objects, list pages, the checkout page, and notifications re-sent until answered 200, over real
HTTP."""

from __future__ import annotations

import asyncio
import re
import secrets
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from aiohttp import web

from sandbox.app import SandboxServer, start_sandbox
from sandbox.yookassa import YOOKASSA, YooKassaOptions

ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")
RETURN_URL = "https://shop.example/return?order=72"


@pytest.fixture(scope="module")
async def sandbox() -> AsyncIterator[SandboxServer]:
    server = await start_sandbox()
    server.app[YOOKASSA].options = YooKassaOptions(retry_base=0.05, retry_cap=0.2)
    yield server
    await server.stop()


@dataclass
class Receiver:
    """A shop's webhook endpoint: answers the queued statuses in turn (then 200), keeps bodies."""

    url: str = ""
    statuses: list[int] = field(default_factory=list)
    received: list[dict[str, Any]] = field(default_factory=list)

    async def handle(self, request: web.Request) -> web.Response:
        self.received.append(await request.json())
        status = self.statuses.pop(0) if self.statuses else 200
        return web.Response(status=status, text="ok")


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    found = Receiver()
    app = web.Application()
    app.router.add_post("/yookassa/webhook", found.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    found.url = f"http://127.0.0.1:{port}/yookassa/webhook"
    yield found
    await runner.cleanup()


@pytest.fixture
async def control(sandbox: SandboxServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=f"{sandbox.url}/sandbox/api/yookassa") as http:
        yield http


def _new_shop_id() -> str:
    return str(secrets.randbelow(10**6) + 10**6)


async def _shop(
    control: httpx.AsyncClient, webhook_url: str | None, shop_id: str
) -> httpx.AsyncClient:
    secret = f"test_{secrets.token_urlsafe(24)}"
    body: dict[str, Any] = {"shop_id": shop_id, "secret_key": secret}
    if webhook_url:
        body["webhook_url"] = webhook_url
    response = await control.post("/shops", json=body)
    assert response.status_code == 201
    assert response.json()["shop_id"] == shop_id
    base = str(control.base_url).replace("/sandbox/api/yookassa", "/yookassa/v3")
    return httpx.AsyncClient(base_url=base, auth=(shop_id, secret))


@pytest.fixture
def shop_id() -> str:
    return _new_shop_id()


@pytest.fixture
async def api(
    control: httpx.AsyncClient, receiver: Receiver, shop_id: str
) -> AsyncIterator[httpx.AsyncClient]:
    async with await _shop(control, receiver.url, shop_id) as http:
        yield http


def _payment(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "amount": {"value": "100.00", "currency": "RUB"},
        "capture": True,
        "confirmation": {"type": "redirect", "return_url": RETURN_URL},
        "description": "Order 72",
        "metadata": {"order_id": "72"},
    }
    body.update(overrides)
    return body


async def _create(api: httpx.AsyncClient, **overrides: Any) -> dict[str, Any]:
    response = await api.post(
        "/payments", json=_payment(**overrides), headers={"Idempotence-Key": str(uuid.uuid4())}
    )
    assert response.status_code == 200, response.text
    payment: dict[str, Any] = response.json()
    return payment


async def _notifications(control: httpx.AsyncClient, payment_id: str) -> list[dict[str, Any]]:
    response = await control.get("/notifications", params={"payment_id": payment_id})
    found: list[dict[str, Any]] = response.json()["notifications"]
    return found


async def _settled(
    control: httpx.AsyncClient,
    payment_id: str,
    done: Callable[[list[dict[str, Any]]], bool],
    within: float = 5.0,
) -> list[dict[str, Any]]:
    """The payment's deliveries once ``done`` holds for them and none is still retrying."""
    deadline = time.monotonic() + within
    while True:
        found = await _notifications(control, payment_id)
        if done(found) and all(n["state"] != "pending" for n in found):
            return found
        assert time.monotonic() < deadline, f"notifications did not settle: {found}"
        await asyncio.sleep(0.02)


def _key() -> dict[str, str]:
    return {"Idempotence-Key": str(uuid.uuid4())}


def _assert_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert body["type"] == "error"
    assert body["code"] == code
    assert ID.fullmatch(body["id"])
    assert body["description"]
    return body


async def test_a_created_payment_is_pending_with_a_checkout_link(
    api: httpx.AsyncClient, sandbox: SandboxServer, shop_id: str
) -> None:
    payment = await _create(api, amount={"value": "123.45", "currency": "RUB"})
    assert ID.fullmatch(payment["id"])
    assert payment["status"] == "pending"
    assert payment["paid"] is False
    assert payment["amount"] == {"value": "123.45", "currency": "RUB"}
    assert payment["description"] == "Order 72"
    assert payment["metadata"] == {"order_id": "72"}
    assert TIME.fullmatch(payment["created_at"])
    assert payment["confirmation"] == {
        "type": "redirect",
        "confirmation_url": f"{sandbox.url}/yookassa/checkout/{payment['id']}",
        "return_url": RETURN_URL,
    }
    assert payment["test"] is True
    assert payment["refundable"] is False
    assert payment["recipient"]["account_id"] == shop_id
    assert payment["recipient"]["gateway_id"].isdigit()
    assert "payment_method" not in payment
    assert "income_amount" not in payment


async def test_the_same_key_and_body_replays_the_first_answer(api: httpx.AsyncClient) -> None:
    headers = _key()
    first = await api.post("/payments", json=_payment(), headers=headers)
    again = await api.post("/payments", json=_payment(), headers=headers)
    assert first.status_code == again.status_code == 200
    assert again.json() == first.json()
    listed = (await api.get("/payments")).json()["items"]
    assert [p["id"] for p in listed] == [first.json()["id"]]


async def test_the_same_key_with_another_body_is_refused(api: httpx.AsyncClient) -> None:
    headers = _key()
    first = await api.post("/payments", json=_payment(), headers=headers)
    other = await api.post(
        "/payments", json=_payment(amount={"value": "5.00", "currency": "RUB"}), headers=headers
    )
    body = _assert_error(other, 400, "invalid_request")
    assert body["parameter"] == "Idempotence-Key"
    listed = (await api.get("/payments")).json()["items"]
    assert [p["id"] for p in listed] == [first.json()["id"]]
    assert listed[0]["amount"]["value"] == "100.00"


async def test_a_missing_idempotence_key_is_refused(api: httpx.AsyncClient) -> None:
    response = await api.post("/payments", json=_payment())
    body = _assert_error(response, 400, "invalid_request")
    assert body["parameter"] == "Idempotence-Key"
    too_long = await api.post("/payments", json=_payment(), headers={"Idempotence-Key": "k" * 65})
    _assert_error(too_long, 400, "invalid_request")
    assert (await api.get("/payments")).json()["items"] == []


async def test_wrong_credentials_are_401(
    api: httpx.AsyncClient, sandbox: SandboxServer, shop_id: str
) -> None:
    payment = await _create(api)
    base = f"{sandbox.url}/yookassa/v3"
    for auth in [(shop_id, "wrong-secret"), ("999", "whatever"), None]:
        async with httpx.AsyncClient(base_url=base, auth=auth) as other:
            got = await other.get(f"/payments/{payment['id']}")
            body = _assert_error(got, 401, "invalid_credentials")
            assert payment["id"] not in got.text
            assert body["id"]
            created = await other.post("/payments", json=_payment(), headers=_key())
            _assert_error(created, 401, "invalid_credentials")
    assert len((await api.get("/payments")).json()["items"]) == 1


@pytest.mark.parametrize(
    ("overrides", "parameter"),
    [
        ({"amount": {"value": 100, "currency": "RUB"}}, "amount.value"),
        ({"amount": {"value": "100", "currency": "RUB"}}, "amount.value"),
        ({"amount": {"value": "100.5", "currency": "RUB"}}, "amount.value"),
        ({"amount": {"value": "100.000", "currency": "RUB"}}, "amount.value"),
        ({"amount": {"value": "100,00", "currency": "RUB"}}, "amount.value"),
        ({"amount": {"value": "-1.00", "currency": "RUB"}}, "amount.value"),
        ({"amount": {"value": "0.00", "currency": "RUB"}}, "amount.value"),
        ({"amount": {"value": "10.00", "currency": "XXX"}}, "amount.currency"),
        ({"amount": None}, "amount"),
        ({"description": "d" * 129}, "description"),
        ({"metadata": {f"k{i}": "v" for i in range(17)}}, "metadata"),
        ({"metadata": {"k" * 33: "v"}}, "metadata"),
        ({"capture": "yes"}, "capture"),
        ({"confirmation": {"type": "redirect"}}, "confirmation.return_url"),
    ],
)
async def test_invalid_payments_are_400_naming_the_parameter(
    api: httpx.AsyncClient, overrides: dict[str, Any], parameter: str
) -> None:
    response = await api.post("/payments", json=_payment(**overrides), headers=_key())
    body = _assert_error(response, 400, "invalid_request")
    assert body["parameter"] == parameter
    assert (await api.get("/payments")).json()["items"] == []


async def test_a_payment_is_visible_to_its_own_shop_only(
    api: httpx.AsyncClient, control: httpx.AsyncClient
) -> None:
    payment = await _create(api)
    got = await api.get(f"/payments/{payment['id']}")
    assert got.status_code == 200
    assert got.json() == payment
    async with await _shop(control, None, _new_shop_id()) as other:
        _assert_error(await other.get(f"/payments/{payment['id']}"), 404, "not_found")
        assert (await other.get("/payments")).json()["items"] == []
    _assert_error(await api.get(f"/payments/{uuid.uuid4()}"), 404, "not_found")


async def test_the_list_pages_newest_first_and_filters(
    api: httpx.AsyncClient, control: httpx.AsyncClient
) -> None:
    created = [await _create(api, description=f"Order {i}") for i in range(5)]
    newest_first = [p["id"] for p in reversed(created)]
    seen: list[str] = []
    sizes: list[int] = []
    params: dict[str, Any] = {"limit": 2}
    while True:
        page = (await api.get("/payments", params=params)).json()
        assert page["type"] == "list"
        seen += [p["id"] for p in page["items"]]
        sizes.append(len(page["items"]))
        if "next_cursor" not in page:
            break
        params = {"limit": 2, "cursor": page["next_cursor"]}
    assert sizes == [2, 2, 1]
    assert seen == newest_first
    default = (await api.get("/payments")).json()
    assert len(default["items"]) == 5
    assert "next_cursor" not in default

    await control.post(f"/payments/{created[1]['id']}/pay")
    succeeded = (await api.get("/payments", params={"status": "succeeded"})).json()["items"]
    assert [p["id"] for p in succeeded] == [created[1]["id"]]
    pending = (await api.get("/payments", params={"status": "pending"})).json()["items"]
    assert len(pending) == 4

    since = created[3]["created_at"]
    later = (await api.get("/payments", params={"created_at.gte": since})).json()["items"]
    assert {p["id"] for p in later} >= {created[3]["id"], created[4]["id"]}
    assert all(p["created_at"] >= since for p in later)
    earlier = (await api.get("/payments", params={"created_at.lt": since})).json()["items"]
    assert {p["id"] for p in earlier}.isdisjoint({p["id"] for p in later})
    assert len(earlier) + len(later) == 5

    for bad in ({"limit": 0}, {"limit": 101}, {"limit": "x"}):
        body = _assert_error(await api.get("/payments", params=bad), 400, "invalid_request")
        assert body["parameter"] == "limit"
    bad_cursor = await api.get("/payments", params={"cursor": "not-a-cursor"})
    assert _assert_error(bad_cursor, 400, "invalid_request")["parameter"] == "cursor"
    bad_status = await api.get("/payments", params={"status": "paid"})
    assert _assert_error(bad_status, 400, "invalid_request")["parameter"] == "status"


async def test_paying_succeeds_and_notifies_the_shop(
    api: httpx.AsyncClient, control: httpx.AsyncClient, receiver: Receiver
) -> None:
    payment = await _create(api)
    paid = await control.post(f"/payments/{payment['id']}/pay")
    assert paid.status_code == 200
    got = (await api.get(f"/payments/{payment['id']}")).json()
    assert got["status"] == "succeeded"
    assert got["paid"] is True
    assert TIME.fullmatch(got["captured_at"])
    assert got["payment_method"]["type"] == "bank_card"
    assert got["payment_method"]["id"]
    assert got["payment_method"]["saved"] is False
    assert got["payment_method"]["title"] == "Bank card *4444"
    assert got["income_amount"] == {"value": "96.50", "currency": "RUB"}
    assert got["refundable"] is True
    assert "confirmation" not in got

    deliveries = await _settled(control, payment["id"], lambda found: len(found) == 1)
    assert deliveries[0]["event"] == "payment.succeeded"
    assert deliveries[0]["delivered"] is True
    assert deliveries[0]["attempts"] == 1
    assert deliveries[0]["last_status"] == 200
    assert len(receiver.received) == 1
    body = receiver.received[0]
    assert body["type"] == "notification"
    assert body["event"] == "payment.succeeded"
    assert body["object"]["id"] == payment["id"]
    assert body["object"]["status"] == "succeeded"
    assert body["object"]["metadata"] == {"order_id": "72"}

    again = await control.post(f"/payments/{payment['id']}/pay")
    assert again.status_code == 409


async def test_a_notification_is_retried_until_answered_200(
    api: httpx.AsyncClient, control: httpx.AsyncClient, receiver: Receiver
) -> None:
    receiver.statuses = [500, 500]
    payment = await _create(api)
    await control.post(f"/payments/{payment['id']}/pay")
    deliveries = await _settled(control, payment["id"], lambda found: len(found) == 1)
    assert deliveries[0]["attempts"] == 3
    assert deliveries[0]["delivered"] is True
    assert deliveries[0]["last_status"] == 200
    assert len(receiver.received) == 3
    assert all(body == receiver.received[0] for body in receiver.received)


async def test_a_notification_never_answered_200_is_given_up(
    sandbox: SandboxServer, api: httpx.AsyncClient, control: httpx.AsyncClient, receiver: Receiver
) -> None:
    receiver.statuses = [204, 500, 503, 500]
    options = sandbox.app[YOOKASSA].options
    options.max_attempts = 4
    try:
        payment = await _create(api)
        await control.post(f"/payments/{payment['id']}/pay")
        deliveries = await _settled(control, payment["id"], lambda found: len(found) == 1)
    finally:
        options.max_attempts = YooKassaOptions().max_attempts
    assert deliveries[0]["state"] == "failed"
    assert deliveries[0]["delivered"] is False
    assert deliveries[0]["attempts"] == 4
    assert deliveries[0]["last_status"] == 500
    assert len(receiver.received) == 4


async def test_resend_delivers_the_latest_notification_again(
    api: httpx.AsyncClient, control: httpx.AsyncClient, receiver: Receiver
) -> None:
    payment = await _create(api)
    await control.post(f"/payments/{payment['id']}/pay")
    await _settled(control, payment["id"], lambda found: len(found) == 1)
    response = await control.post(f"/notifications/{payment['id']}/resend", json={"times": 5})
    assert response.status_code == 202
    assert len(response.json()["notifications"]) == 5
    deliveries = await _settled(control, payment["id"], lambda found: len(found) == 6)
    assert all(d["delivered"] and d["event"] == "payment.succeeded" for d in deliveries)
    assert len(receiver.received) == 6
    assert all(body == receiver.received[0] for body in receiver.received)
    missing = await control.post(f"/notifications/{uuid.uuid4()}/resend", json={"times": 1})
    assert missing.status_code == 404


async def test_the_payer_cancelling_cancels_the_payment(
    api: httpx.AsyncClient, control: httpx.AsyncClient, receiver: Receiver
) -> None:
    payment = await _create(api)
    response = await control.post(f"/payments/{payment['id']}/cancel")
    assert response.status_code == 200
    got = (await api.get(f"/payments/{payment['id']}")).json()
    assert got["status"] == "canceled"
    assert got["paid"] is False
    assert got["cancellation_details"] == {
        "party": "yoo_money",
        "reason": "expired_on_confirmation",
    }
    await _settled(control, payment["id"], lambda found: len(found) == 1)
    assert [b["event"] for b in receiver.received] == ["payment.canceled"]
    assert receiver.received[0]["object"]["status"] == "canceled"
    assert (await control.post(f"/payments/{payment['id']}/pay")).status_code == 409


async def test_a_two_stage_payment_is_captured_or_cancelled(
    api: httpx.AsyncClient, control: httpx.AsyncClient, receiver: Receiver
) -> None:
    held = await _create(api, capture=False)
    early = await api.post(f"/payments/{held['id']}/capture", headers=_key())
    _assert_error(early, 400, "invalid_request")
    await control.post(f"/payments/{held['id']}/pay")
    waiting = (await api.get(f"/payments/{held['id']}")).json()
    assert waiting["status"] == "waiting_for_capture"
    assert waiting["paid"] is True
    assert TIME.fullmatch(waiting["expires_at"])
    assert "captured_at" not in waiting

    headers = _key()
    part = {"amount": {"value": "60.00", "currency": "RUB"}}
    captured = await api.post(f"/payments/{held['id']}/capture", json=part, headers=headers)
    assert captured.status_code == 200
    assert captured.json()["status"] == "succeeded"
    assert captured.json()["amount"] == {"value": "60.00", "currency": "RUB"}
    assert captured.json()["income_amount"] == {"value": "57.90", "currency": "RUB"}
    again = await api.post(f"/payments/{held['id']}/capture", json=part, headers=headers)
    assert again.json() == captured.json()
    await _settled(control, held["id"], lambda found: len(found) == 2)
    events = sorted(b["event"] for b in receiver.received)
    assert events == ["payment.succeeded", "payment.waiting_for_capture"]

    released = await _create(api, capture=False)
    await control.post(f"/payments/{released['id']}/pay")
    no_key = await api.post(f"/payments/{released['id']}/cancel")
    _assert_error(no_key, 400, "invalid_request")
    canceled = await api.post(f"/payments/{released['id']}/cancel", headers=_key())
    assert canceled.status_code == 200
    assert canceled.json()["status"] == "canceled"
    assert canceled.json()["cancellation_details"] == {
        "party": "merchant",
        "reason": "canceled_by_merchant",
    }
    found = await _settled(control, released["id"], lambda found: len(found) == 2)
    assert {d["event"] for d in found} == {"payment.waiting_for_capture", "payment.canceled"}


async def test_a_refund_returns_money_once_per_key(
    api: httpx.AsyncClient, control: httpx.AsyncClient, receiver: Receiver
) -> None:
    payment = await _create(api)
    early = await api.post(
        "/refunds",
        json={"payment_id": payment["id"], "amount": {"value": "10.00", "currency": "RUB"}},
        headers=_key(),
    )
    _assert_error(early, 400, "invalid_request")
    await control.post(f"/payments/{payment['id']}/pay")
    headers = _key()
    body = {"payment_id": payment["id"], "amount": {"value": "40.00", "currency": "RUB"}}
    created = await api.post("/refunds", json=body, headers=headers)
    assert created.status_code == 200
    refund = created.json()
    assert ID.fullmatch(refund["id"])
    assert refund["payment_id"] == payment["id"]
    assert refund["status"] == "succeeded"
    assert refund["amount"] == {"value": "40.00", "currency": "RUB"}
    assert TIME.fullmatch(refund["created_at"])
    assert (await api.post("/refunds", json=body, headers=headers)).json() == refund
    assert (await api.get(f"/refunds/{refund['id']}")).json() == refund

    got = (await api.get(f"/payments/{payment['id']}")).json()
    assert got["refunded_amount"] == {"value": "40.00", "currency": "RUB"}
    assert got["refundable"] is True
    too_much = {"payment_id": payment["id"], "amount": {"value": "60.01", "currency": "RUB"}}
    over = await api.post("/refunds", json=too_much, headers=_key())
    assert _assert_error(over, 400, "invalid_request")["parameter"] == "amount.value"

    deliveries = await _settled(control, payment["id"], lambda found: len(found) == 2)
    assert sorted(d["event"] for d in deliveries) == ["payment.succeeded", "refund.succeeded"]
    refunds = [b for b in receiver.received if b["event"] == "refund.succeeded"]
    assert len(refunds) == 1
    assert refunds[0]["object"] == refund
    listed = (await api.get("/refunds", params={"payment_id": payment["id"]})).json()
    assert [r["id"] for r in listed["items"]] == [refund["id"]]


async def test_the_checkout_page_pays_through_its_form(
    api: httpx.AsyncClient, control: httpx.AsyncClient, receiver: Receiver
) -> None:
    payment = await _create(
        api, amount={"value": "123.45", "currency": "RUB"}, description="Pro <month>"
    )
    url = payment["confirmation"]["confirmation_url"]
    async with httpx.AsyncClient() as browser:
        page = await browser.get(url)
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        assert "123.45 RUB" in page.text
        assert "Pro &lt;month&gt;" in page.text
        assert f"action='/yookassa/checkout/{payment['id']}'" in page.text
        assert "value='pay'>Pay</button>" in page.text
        assert "value='cancel'>Cancel</button>" in page.text
        paid = await browser.post(url, data={"action": "pay"}, follow_redirects=False)
        assert paid.status_code == 303
        assert paid.headers["location"] == RETURN_URL
        after = await browser.get(url)
        assert "succeeded" in after.text
    got = (await api.get(f"/payments/{payment['id']}")).json()
    assert got["status"] == "succeeded"
    assert got["income_amount"] == {"value": "119.13", "currency": "RUB"}
    await _settled(control, payment["id"], lambda found: len(found) == 1)
    assert [b["event"] for b in receiver.received] == ["payment.succeeded"]


async def test_the_checkout_page_cancel_button_cancels(api: httpx.AsyncClient) -> None:
    payment = await _create(api)
    url = payment["confirmation"]["confirmation_url"]
    async with httpx.AsyncClient() as browser:
        left = await browser.post(url, data={"action": "cancel"}, follow_redirects=False)
        assert left.status_code == 303
        assert left.headers["location"] == RETURN_URL
        late = await browser.post(url, data={"action": "pay"}, follow_redirects=False)
        assert late.status_code == 303
    got = (await api.get(f"/payments/{payment['id']}")).json()
    assert got["status"] == "canceled"
    assert got["paid"] is False


async def test_a_scripted_fault_fails_the_next_matching_call(
    api: httpx.AsyncClient, control: httpx.AsyncClient
) -> None:
    added = await control.post(
        "/faults", json={"path_contains": "/v3/payments", "status": 500, "times": 1}
    )
    assert added.status_code == 201
    headers = _key()
    failed = await api.post("/payments", json=_payment(), headers=headers)
    _assert_error(failed, 500, "internal_server_error")
    retried = await api.post("/payments", json=_payment(), headers=headers)
    assert retried.status_code == 200
    assert [p["id"] for p in (await api.get("/payments")).json()["items"]] == [retried.json()["id"]]
    await control.post("/faults", json={"path_contains": "/refunds", "status": 429, "times": 2})
    for _ in range(2):
        _assert_error(await api.get(f"/refunds/{uuid.uuid4()}"), 429, "too_many_requests")
    _assert_error(await api.get(f"/refunds/{uuid.uuid4()}"), 404, "not_found")
    assert (await control.get("/faults")).json()["faults"] == []
