"""Stars subscriptions from the web app, through create_app() on real Postgres and Redis: the
invoice links and the renewal changes go to the sandbox's Telegram over HTTP through the ports
netroom wires for the web process (a real aiogram Bot), and the payment reaches the real bot
polling the same sandbox, which activates the plan."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiogram import Bot
from aiohttp.test_utils import TestClient
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.factory import create_bot
from bot.stars import renewal_switch
from core.dto import ClientInfo
from core.security.tokens import issue_access_token
from core.services import accounts, sessions, subscriptions
from core.services.accounts import NewIdentity
from core.services.payments import PaymentTerms
from core.services.tariffs import Plan, Tariffs
from db.engine import UnitOfWorkFactory
from netroom.processes import invoice_links
from sandbox.app import SandboxServer, start_sandbox
from sandbox.client import Event, SandboxClient, SandboxError
from sandbox.telegram.botapi import WORLD
from tests.factories import POLICY, register
from tests.webapp.conftest import ClientMaker, make_context, web_access_token
from tests.webapp.running_bot import bot_env, running_bot
from webapp.app import create_app

SECRET = "subscription-api-secret-of-at-least-32-bytes!"
TERMS = PaymentTerms.build(
    kopecks_per_star=150,
    star_packages=[50, 100],
    referral_level1_percent=10,
    referral_level2_percent=3,
    signing_secret=SECRET,
)
PLUS = Plan("plus", 250, {"basic": 200}, 10)
TARIFFS = Tariffs(free_limits={"basic": 20}, plans=(PLUS,))


@dataclass
class Telegram:
    sandbox: SandboxServer
    control: SandboxClient
    token: str


@pytest.fixture(scope="module")
async def telegram(
    database_url: str, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Telegram]:
    """The sandbox's Telegram with the bot running against it, on the same terms and plans."""
    sandbox = await start_sandbox()
    control = SandboxClient(sandbox.url)
    token = f"{secrets.randbelow(10**9) + 10**9}:{secrets.token_urlsafe(27)}"
    workdir = tmp_path_factory.mktemp("bot")
    env = bot_env(
        TERMS,
        TARIFFS,
        signing_secret=SECRET,
        token=token,
        api_base=sandbox.url,
        database_url=database_url,
        redis_url=redis_url,
        web_url="http://netroom.test",
        data_dir=workdir / "data",
    )
    try:
        await control.register_bot(token, "netroom_plans_bot", "NetRoom")
        async with running_bot(env, workdir):
            yield Telegram(sandbox, control, token)
    finally:
        await control.aclose()
        await sandbox.stop()


@dataclass
class Person:
    id: int
    telegram_id: int | None
    headers: dict[str, str]


@dataclass
class Env:
    client: TestClient  # type: ignore[type-arg]
    factory: UnitOfWorkFactory
    telegram: Telegram

    @property
    def control(self) -> SandboxClient:
        return self.telegram.control

    async def user(self, *, telegram: bool = True) -> Person:
        """A Telegram user of the sandbox with an account (or an account by email only)."""
        async with self.factory() as uow:
            if telegram:
                tg = await self.control.create_user("Ann", username=f"ann_{secrets.token_hex(3)}")
                dto = (await register(uow, tg_id=int(tg["id"]))).user
                # They know the bot (the Mini App opens from it), so it may write to them.
                after = await self.control.last_seq()
                await self.control.send_text(int(tg["id"]), "/start")
                await self.control.wait_for(
                    lambda e: e["type"] == "bot_message", chat_id=int(tg["id"]), after=after
                )
            else:
                dto = await accounts.register_web_user(
                    uow,
                    identity=NewIdentity("email", f"{secrets.token_hex(5)}@example.test"),
                    language="en",
                    profile_name=None,
                    policy_version=POLICY,
                    client=ClientInfo(platform="web"),
                )
            token = await web_access_token(uow, dto.id, secret=SECRET)
        return Person(dto.id, dto.telegram_id, {"Authorization": f"Bearer {token}"})

    async def call(self, user: Person, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        kwargs: dict[str, Any] = {"headers": user.headers}
        if body is not None:
            kwargs["json"] = body
        response = await self.client.request(method, path, **kwargs)
        data = await response.json() if response.content_type == "application/json" else None
        return response.status, data

    def invoices(self) -> dict[str, dict[str, Any]]:
        """The invoice links the sandbox's Telegram made for the bot, by slug."""
        world = self.telegram.sandbox.app[WORLD]
        return dict(world.bot_for_token(self.telegram.token).invoice_links)

    async def pay(self, person: Person, link: str) -> Event:
        """The person pays the invoice in Telegram; returns once the bot has thanked them (the
        payment is recorded by then)."""
        assert person.telegram_id is not None
        after = await self.control.last_seq()
        await self.control.pay(person.telegram_id, invoice_link=link)
        paid = await self.control.wait_for(
            lambda e: e["type"] == "payment_succeeded", chat_id=person.telegram_id, after=after
        )
        await self.control.wait_for(
            lambda e: (
                e["type"] == "bot_message"
                and "Plan Plus is active until" in (e["message"].get("text") or "")
            ),
            chat_id=person.telegram_id,
            after=paid["seq"],
        )
        return paid

    async def subscribed(self, person: Person) -> str:
        """Plus bought from the web app and paid; the subscription's first charge id."""
        status, data = await self.call(person, "POST", "/api/subscription", {"plan": "plus"})
        assert status == 201, data
        return str((await self.pay(person, data["invoice_link"]))["charge_id"])

    async def plan(self, person: Person) -> Any:
        status, data = await self.call(person, "GET", "/api/balance")
        assert status == 200
        return data["plan"]


@pytest.fixture
async def env(
    aiohttp_client: ClientMaker, engine: AsyncEngine, redis: Redis, telegram: Telegram
) -> AsyncIterator[Env]:
    # The web process's own Bot, as netroom makes it.
    bot: Bot = create_bot(telegram.token, telegram.sandbox.url)
    context = make_context(
        engine,
        redis,
        jwt_secret=SECRET,
        payment_terms=TERMS,
        tariffs=TARIFFS,
        stars_invoice_links=invoice_links(bot),
        subscription_renewals=renewal_switch(bot),
    )
    client = await aiohttp_client(create_app(context))
    try:
        yield Env(client, UnitOfWorkFactory.for_engine(engine), telegram)
    finally:
        await bot.session.close()


def _is(kind: str, charge_id: str) -> Any:
    return lambda e: e["type"] == kind and e.get("charge_id") == charge_id


# --- buying --------------------------------------------------------------------------------------


async def test_a_plan_bought_from_the_web_is_paid_in_telegram_and_becomes_active(
    env: Env,
) -> None:
    ann = await env.user()
    status, before = await env.call(ann, "GET", "/api/balance")
    assert status == 200
    assert (before["plan"], before["plans_purchasable"]) == (None, True)

    status, data = await env.call(ann, "POST", "/api/subscription", {"plan": "plus"})
    assert status == 201
    link = data["invoice_link"]
    assert link.startswith("https://t.me/$")
    # A subscription invoice in Telegram: 30 days, the plan's Stars, signed for Ann and Plus.
    invoice = env.invoices()[link.rsplit("$", 1)[1]]
    assert invoice["subscription_period"] == subscriptions.PERIOD_SECONDS == 2_592_000
    assert (invoice["currency"], invoice["total_amount"]) == ("XTR", 250)
    assert invoice["title"] == "NetRoom Plus"
    assert invoice["description"] == (
        "Subscription to the Plus plan for 30 days, renewed until you cancel."
    )
    assert subscriptions.parse_subscription_payload(TERMS, invoice["payload"]) == (ann.id, "plus")

    await env.pay(ann, link)
    status, after = await env.call(ann, "GET", "/api/balance")
    assert after["plan"]["id"] == "plus"
    assert (after["plan"]["stars"], after["plan"]["discount_percent"]) == (250, 10)
    assert after["plan"]["renews"] is True
    until = datetime.fromisoformat(after["plan"]["until"])
    assert timedelta(days=29) < until - datetime.now(UTC) <= timedelta(days=30)
    # The plan's perks apply at once; the Stars paid for the plan, the balance is untouched.
    assert after["free_tier"]["allowances"] == [
        {"tier": "basic", "limit": 200, "used": 0, "left": 200}
    ]
    assert after["balance_kopecks"] == 0
    # The history names the plan on both entries: the Stars in, the plan's charge out.
    status, listed = await env.call(ann, "GET", "/api/transactions")
    entries = [(t["category"], t["amount_kopecks"] > 0, t["plan"]) for t in listed["transactions"]]
    assert sorted(entries) == [("subscription", False, "plus"), ("subscription", True, "plus")]


async def test_a_second_plan_is_refused_while_one_is_active(env: Env) -> None:
    ann = await env.user()
    await env.subscribed(ann)
    made = len(env.invoices())
    status, data = await env.call(ann, "POST", "/api/subscription", {"plan": "plus"})
    assert (status, data["error"]) == (409, "already_subscribed")
    assert data["message"] == "You already have an active subscription."
    assert len(env.invoices()) == made


@pytest.mark.parametrize(
    ("body", "status", "error"),
    [
        ({"plan": "gold"}, 404, "not_found"),
        ({"plan": 1}, 400, "invalid_input"),
        ({}, 400, "invalid_input"),
        (["plus"], 400, "invalid_input"),
    ],
)
async def test_an_unknown_plan_is_refused_and_no_invoice_is_made(
    env: Env, body: Any, status: int, error: str
) -> None:
    ann = await env.user()
    made = len(env.invoices())
    answered, data = await env.call(ann, "POST", "/api/subscription", body)
    assert (answered, data["error"]) == (status, error)
    assert len(env.invoices()) == made


async def test_without_a_telegram_account_plans_are_neither_offered_nor_sold(env: Env) -> None:
    web = await env.user(telegram=False)
    _, balance = await env.call(web, "GET", "/api/balance")
    assert balance["plans_purchasable"] is False
    assert [p["id"] for p in balance["plans"]] == ["plus"]
    made = len(env.invoices())
    status, data = await env.call(web, "POST", "/api/subscription", {"plan": "plus"})
    assert (status, data["error"]) == (404, "not_found")
    status, data = await env.call(web, "PATCH", "/api/subscription", {"renews": False})
    assert (status, data["error"]) == (404, "no_subscription")
    assert len(env.invoices()) == made


# --- renewal -------------------------------------------------------------------------------------


async def test_renewal_is_cancelled_and_resumed_in_telegram_first_then_here(env: Env) -> None:
    ann = await env.user()
    assert ann.telegram_id is not None
    charge = await env.subscribed(ann)
    until = (await env.plan(ann))["until"]

    after = await env.control.last_seq()
    status, plan = await env.call(ann, "PATCH", "/api/subscription", {"renews": False})
    assert status == 200
    assert plan == {
        "id": "plus",
        "stars": 250,
        "discount_percent": 10,
        "until": until,
        "renews": False,
    }
    cancelled = await env.control.wait_for(_is("subscription_canceled", charge), after=after)
    assert cancelled["by"] == "bot"
    # Telegram will not renew it; the plan stays until the paid period ends.
    with pytest.raises(SandboxError) as refused:
        await env.control.renew_subscription(ann.telegram_id, charge)
    assert refused.value.status == 409
    assert await env.plan(ann) == plan

    after = await env.control.last_seq()
    status, plan = await env.call(ann, "PATCH", "/api/subscription", {"renews": True})
    assert (status, plan["renews"], plan["until"]) == (200, True, until)
    resumed = await env.control.wait_for(_is("subscription_reenabled", charge), after=after)
    assert resumed["by"] == "bot"
    assert (await env.plan(ann))["renews"] is True
    renewed = await env.control.renew_subscription(ann.telegram_id, charge)
    assert renewed["telegram_payment_charge_id"] != charge


async def test_a_renewal_change_telegram_refuses_is_not_recorded(env: Env) -> None:
    ann = await env.user()
    assert ann.telegram_id is not None
    # A subscription Telegram knows nothing of: its first charge was never made there.
    async with env.factory() as uow:
        await subscriptions.record_payment(
            uow,
            TERMS,
            TARIFFS,
            telegram_id=ann.telegram_id,
            charge_id=f"stxUNKNOWN{secrets.token_hex(8)}",
            payload=subscriptions.subscription_payload(TERMS, user_id=ann.id, plan=PLUS),
            currency="XTR",
            total_amount=250,
            expires_at=None,
            first=True,
            now=datetime.now(UTC),
        )
    status, data = await env.call(ann, "PATCH", "/api/subscription", {"renews": False})
    assert (status, data["error"]) == (502, "renewal_refused")
    assert data["message"].startswith("Telegram did not accept the change")
    assert (await env.plan(ann))["renews"] is True


async def test_another_user_cannot_change_someone_elses_subscription(env: Env) -> None:
    ann, bob = await env.user(), await env.user()
    assert ann.telegram_id is not None
    charge = await env.subscribed(ann)
    after = await env.control.last_seq()
    for renews in (False, True):
        status, data = await env.call(bob, "PATCH", "/api/subscription", {"renews": renews})
        assert (status, data["error"]) == (404, "no_subscription")
    assert await env.plan(bob) is None
    # Ann's subscription is as it was, here and in Telegram.
    assert (await env.plan(ann))["renews"] is True
    events, _ = await env.control.events(after=after)
    assert [e for e in events if e.get("charge_id") == charge] == []
    renewed = await env.control.renew_subscription(ann.telegram_id, charge)
    assert renewed["telegram_payment_charge_id"] != charge


@pytest.mark.parametrize("body", [{"renews": "no"}, {"renews": 0}, {}])
async def test_a_renewal_change_needs_a_boolean(env: Env, body: Any) -> None:
    ann = await env.user()
    status, data = await env.call(ann, "PATCH", "/api/subscription", body)
    assert (status, data["error"]) == (400, "invalid_input")


async def test_a_renewal_change_without_a_json_body_is_415(env: Env) -> None:
    ann = await env.user()
    status, data = await env.call(ann, "PATCH", "/api/subscription", None)
    assert (status, data["error"]) == (415, "unsupported_media_type")


async def test_without_the_bot_here_plans_are_left_to_the_bot(
    aiohttp_client: ClientMaker, engine: AsyncEngine, redis: Redis
) -> None:
    client = await aiohttp_client(
        create_app(make_context(engine, redis, jwt_secret=SECRET, tariffs=TARIFFS))
    )
    async with UnitOfWorkFactory.for_engine(engine)() as uow:
        dto = (await register(uow)).user
        opened = await sessions.open_session(
            uow,
            user_id=dto.id,
            client=ClientInfo(platform="web"),
            now=datetime.now(UTC),
            ttl=timedelta(days=1),
        )
    token, _ = issue_access_token(
        dto.id,
        secret=SECRET,
        now=datetime.now(UTC),
        ttl=timedelta(hours=1),
        session_id=opened.session_id,
    )
    headers = {"Authorization": f"Bearer {token}"}
    balance = await (await client.get("/api/balance", headers=headers)).json()
    assert balance["plans_purchasable"] is False
    bought = await client.post("/api/subscription", json={"plan": "plus"}, headers=headers)
    changed = await client.patch("/api/subscription", json={"renews": False}, headers=headers)
    assert (bought.status, changed.status) == (404, 404)
