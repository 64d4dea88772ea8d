"""The account pages' API through create_app() on real Postgres and Redis: presets, the gallery,
balance and history, referrals, settings and Stars invoices (made by a real aiogram Bot against
the sandbox's Bot API). Two users on every route: nobody reads or changes the other's objects,
and another user's object answers exactly like one that does not exist."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiohttp.test_utils import TestClient
from redis.asyncio import Redis
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from core.dto import ClientInfo
from core.media import LocalMediaStore
from core.services import accounts, billing, chat, conversations, images, payments, presets
from core.services.accounts import NewIdentity
from core.services.payments import PaymentTerms
from core.services.tariffs import Plan, Tariffs
from db.engine import UnitOfWorkFactory
from db.models import ChatMessageRow, Conversation, Media, User
from netroom.processes import invoice_links
from sandbox.app import SandboxServer
from sandbox.client import SandboxClient
from tests.factories import POLICY, register
from tests.webapp.conftest import ClientMaker, make_context, web_access_token
from webapp.app import create_app

SECRET = "account-api-secret-of-at-least-32-bytes!"
TERMS = PaymentTerms.build(
    kopecks_per_star=150,
    star_packages=[50, 100],
    referral_level1_percent=10,
    referral_level2_percent=3,
    signing_secret=SECRET,
)
TARIFFS = Tariffs(free_limits={"basic": 20}, plans=(Plan("plus", 250, {"basic": 200}, 10),))


@dataclass
class Person:
    id: int
    telegram_id: int | None
    headers: dict[str, str]


@dataclass
class Env:
    client: TestClient  # type: ignore[type-arg]
    factory: UnitOfWorkFactory
    invoices: list[dict[str, Any]]

    async def user(self, *, telegram: bool = True, money: int = 0) -> Person:
        async with self.factory() as uow:
            if telegram:
                dto = (await register(uow)).user
            else:
                dto = await accounts.register_web_user(
                    uow,
                    identity=NewIdentity("email", f"{secrets.token_hex(5)}@example.test"),
                    language="en",
                    profile_name=None,
                    policy_version=POLICY,
                    client=ClientInfo(platform="web"),
                )
            if money:
                async with uow.transaction():
                    await billing.credit(
                        uow,
                        user_id=dto.id,
                        amount=money,
                        category="topup",
                        key=secrets.token_hex(8),
                    )
            token = await web_access_token(uow, dto.id, secret=SECRET)
        return Person(dto.id, dto.telegram_id, {"Authorization": f"Bearer {token}"})

    async def call(
        self, user: Person | None, method: str, path: str, body: Any = None
    ) -> tuple[int, Any]:
        kwargs: dict[str, Any] = {"headers": user.headers if user else {}}
        if body is not None:
            kwargs["json"] = body
        response = await self.client.request(method, path, **kwargs)
        data = await response.json() if response.content_type == "application/json" else None
        return response.status, data

    async def preset(self, user: Person, title: str = "Teacher") -> int:
        async with self.factory() as uow:
            return (await presets.create_preset(uow, user.id, title=title, prompt="Be kind.")).id

    async def media(
        self,
        user: Person,
        *,
        status: str = "ready",
        prompt: str = "a fox",
        created_at: datetime | None = None,
    ) -> int:
        async with self.factory() as uow:
            row = Media(
                user_id=user.id,
                kind="image",
                prompt=prompt,
                model_id="dall-e-3",
                status=status,
                storage_key=f"{secrets.token_hex(16)}.png" if status == "ready" else None,
                mime="image/png",
                width=64,
                height=64,
            )
            if created_at is not None:
                row.created_at = created_at
            uow.session.add(row)
            await uow.session.flush()
            media_id = row.id
            await uow.commit()
            return media_id


# The catalogue's display names (Catalogue.names).
MODEL_NAMES = {"dall-e-3": "DALL·E 3", "gpt-4o": "GPT-4o"}


@pytest.fixture
async def env(
    aiohttp_client: ClientMaker, engine: AsyncEngine, redis: Redis, sandbox: SandboxServer
) -> AsyncIterator[Env]:
    token = f"{secrets.randbelow(10**9) + 10**9}:{secrets.token_urlsafe(27)}"
    async with SandboxClient(sandbox.url) as control:
        await control.register_bot(token, "netroom_api_bot", "NetRoom")
    bot = Bot(token, session=AiohttpSession(api=TelegramAPIServer.from_base(sandbox.url)))
    invoices: list[dict[str, Any]] = []
    make_link = invoice_links(bot)

    async def invoice_link(*, title: str, description: str, payload: str, stars: int) -> str:
        invoices.append(
            {"title": title, "description": description, "payload": payload, "stars": stars}
        )
        return await make_link(title=title, description=description, payload=payload, stars=stars)

    context = make_context(
        engine,
        redis,
        jwt_secret=SECRET,
        payment_terms=TERMS,
        tariffs=TARIFFS,
        stars_invoice_links=invoice_link,
        model_names=MODEL_NAMES,
    )
    client = await aiohttp_client(create_app(context))
    try:
        yield Env(client, UnitOfWorkFactory.for_engine(engine), invoices)
    finally:
        await bot.session.close()


ROUTES = [
    ("GET", "/api/presets", None),
    ("POST", "/api/presets", {"title": "T", "system_prompt": "P"}),
    ("PUT", "/api/presets/{preset}", {"title": "T", "system_prompt": "P"}),
    ("DELETE", "/api/presets/{preset}", None),
    ("POST", "/api/presets/{preset}/use", None),
    ("DELETE", "/api/presets/active", None),
    ("GET", "/api/media", None),
    ("GET", "/api/balance", None),
    ("GET", "/api/transactions", None),
    ("POST", "/api/payments/stars", {"stars": 50}),
    ("POST", "/api/subscription", {"plan": "plus"}),
    ("PATCH", "/api/subscription", {"renews": False}),
    ("GET", "/api/referrals", None),
    ("GET", "/api/settings", None),
    ("PATCH", "/api/settings", {"theme": "dark"}),
    ("PUT", "/api/settings/timezone", {"timezone": "UTC"}),
    ("GET", "/api/auth/methods", None),
]


# --- who may call --------------------------------------------------------------------------------


@pytest.mark.parametrize(("method", "path", "body"), ROUTES, ids=[f"{m} {p}" for m, p, _ in ROUTES])
async def test_every_route_needs_a_signed_in_user(
    env: Env, method: str, path: str, body: Any
) -> None:
    owner = await env.user()
    preset = await env.preset(owner)
    status, data = await env.call(None, method, path.format(preset=preset), body)
    assert status == 401
    assert data["error"] in ("unauthorized", "session_invalid")


async def test_another_users_preset_answers_404_on_every_route_and_stays_as_it_was(
    env: Env,
) -> None:
    ann, bob = await env.user(), await env.user()
    bobs = await env.preset(bob, "Bob's secret")
    never = bobs + 10_000
    for preset in (bobs, never):
        for method, path, body in (
            ("PUT", f"/api/presets/{preset}", {"title": "Mine now", "system_prompt": "x"}),
            ("POST", f"/api/presets/{preset}/use", None),
            ("DELETE", f"/api/presets/{preset}", None),
        ):
            status, data = await env.call(ann, method, path, body)
            assert (status, data["error"]) == (404, "not_found"), (method, path)
    async with env.factory() as uow:
        [kept] = await presets.list_presets(uow, bob.id)
        assert (kept.title, kept.system_prompt) == ("Bob's secret", "Be kind.")
        assert (await chat.get_prefs(uow, ann.id)).preset_id is None
    status, listed = await env.call(ann, "GET", "/api/presets")
    assert (status, listed) == (200, {"presets": [], "active_id": None})


async def test_lists_show_only_the_users_own_objects(env: Env) -> None:
    ann, bob = await env.user(money=10_000), await env.user(money=99_000)
    await env.preset(ann, "Ann's")
    await env.preset(bob, "Bob's")
    await env.media(ann, prompt="ann's fox")
    bobs_media = await env.media(bob, prompt="bob's cat")
    async with env.factory() as uow, uow.transaction():
        bobs_entry = await billing.debit(
            uow, user_id=bob.id, amount=500, category="text", key=secrets.token_hex(8)
        )

    _, presets = await env.call(ann, "GET", "/api/presets")
    assert [p["title"] for p in presets["presets"]] == ["Ann's"]
    _, media = await env.call(ann, "GET", "/api/media")
    assert [m["prompt"] for m in media["media"]] == ["ann's fox"]
    _, media = await env.call(ann, "GET", f"/api/media?before={bobs_media + 1}")
    assert [m["prompt"] for m in media["media"]] == ["ann's fox"]
    _, history = await env.call(ann, "GET", f"/api/transactions?before={bobs_entry.id + 1}")
    assert [t["amount_kopecks"] for t in history["transactions"]] == [10_000]
    _, balance = await env.call(ann, "GET", "/api/balance")
    assert balance["balance_kopecks"] == 10_000
    _, referrals = await env.call(ann, "GET", "/api/referrals")
    async with env.factory() as uow:
        assert referrals["code"] == (await accounts.get_user(uow, ann.id)).referral_code

    status, _ = await env.call(ann, "PATCH", "/api/settings", {"theme": "dark"})
    assert status == 200
    _, bobs_settings = await env.call(bob, "GET", "/api/settings")
    assert bobs_settings["theme"] == "auto"


# --- presets -------------------------------------------------------------------------------------


async def test_a_preset_is_created_edited_used_stopped_and_deleted(env: Env) -> None:
    ann = await env.user()
    status, made = await env.call(
        ann, "POST", "/api/presets", {"title": " Teacher ", "system_prompt": "Correct me."}
    )
    assert status == 201
    assert made == {
        "id": made["id"],
        "title": "Teacher",
        "system_prompt": "Correct me.",
        "active": False,
    }
    path = f"/api/presets/{made['id']}"
    status, edited = await env.call(
        ann, "PUT", path, {"title": "Strict teacher", "system_prompt": "Correct everything."}
    )
    assert (status, edited["title"], edited["system_prompt"]) == (
        200,
        "Strict teacher",
        "Correct everything.",
    )
    assert await env.call(ann, "POST", f"{path}/use") == (200, {"active_id": made["id"]})
    _, listed = await env.call(ann, "GET", "/api/presets")
    assert listed["active_id"] == made["id"] and listed["presets"][0]["active"] is True
    assert await env.call(ann, "DELETE", "/api/presets/active") == (200, {"active_id": None})
    assert (await env.call(ann, "DELETE", path))[0] == 204
    assert await env.call(ann, "GET", "/api/presets") == (
        200,
        {"presets": [], "active_id": None},
    )


@pytest.mark.parametrize(
    "body",
    [
        {"title": "", "system_prompt": "x"},
        {"title": "x" * 65, "system_prompt": "x"},
        {"title": "x", "system_prompt": ""},
        {"title": "x"},
        {"title": 5, "system_prompt": "x"},
        ["not", "an", "object"],
    ],
)
async def test_a_preset_without_a_proper_title_and_prompt_is_refused(env: Env, body: Any) -> None:
    ann = await env.user()
    status, data = await env.call(ann, "POST", "/api/presets", body)
    assert (status, data["error"]) == (400, "invalid_input")


# --- gallery -------------------------------------------------------------------------------------


async def test_the_gallery_pages_back_and_links_only_finished_media(env: Env) -> None:
    ann = await env.user()
    ids = [await env.media(ann, prompt=f"picture {n}") for n in range(3)]
    pending = await env.media(ann, status="pending", prompt="still drawing")
    status, first = await env.call(ann, "GET", "/api/media?limit=2")
    assert status == 200
    assert [m["id"] for m in first["media"]] == [pending, ids[2]]
    assert first["media"][0]["url"] is None and first["media"][0]["status"] == "pending"
    assert first["media"][1]["url"].startswith("/media/")
    assert first["next_before"] == ids[2]
    _, rest = await env.call(ann, "GET", f"/api/media?limit=2&before={first['next_before']}")
    assert [m["id"] for m in rest["media"]] == [ids[1], ids[0]]
    assert set(rest["media"][0]) == {
        "id",
        "kind",
        "prompt",
        "model_id",
        "model_name",
        "status",
        "created_at",
        "url",
        "mime",
        "width",
        "height",
        "duration_seconds",
        "aspect",
    }
    # The model as people read it, beside its id.
    assert (rest["media"][0]["model_id"], rest["media"][0]["model_name"]) == (
        "dall-e-3",
        "DALL·E 3",
    )
    status, data = await env.call(ann, "GET", "/api/media?before=soon")
    assert (status, data["error"]) == (400, "invalid_input")


async def test_a_picture_abandoned_by_a_stopped_process_shows_as_failed_and_can_be_deleted(
    env: Env, tmp_path: Path
) -> None:
    """A picture is drawn within its request: one still "being made" ten minutes on was left by
    a process that stopped mid-drawing. It is not shown as being made for ever, and it can go."""
    ann = await env.user()
    drawing = await env.media(ann, status="pending", prompt="still drawing")
    left = await env.media(
        ann,
        status="pending",
        prompt="left behind",
        created_at=datetime.now(UTC) - timedelta(minutes=11),
    )
    _, page = await env.call(ann, "GET", "/api/media")
    status_of = {m["id"]: m["status"] for m in page["media"]}
    assert (status_of[drawing], status_of[left]) == ("pending", "failed")
    store = LocalMediaStore(tmp_path / "media")
    async with env.factory() as uow:
        with pytest.raises(images.MediaStillPending):
            await images.delete_media(uow, store, user_id=ann.id, media_id=drawing)
        await images.delete_media(uow, store, user_id=ann.id, media_id=left)
    _, page = await env.call(ann, "GET", "/api/media")
    assert [m["id"] for m in page["media"]] == [drawing]


# --- balance -------------------------------------------------------------------------------------


async def test_the_balance_shows_money_free_requests_plans_and_star_packages(env: Env) -> None:
    ann = await env.user(money=12_345)
    status, data = await env.call(ann, "GET", "/api/balance")
    assert status == 200
    assert (data["balance_kopecks"], data["reserved_kopecks"], data["available_kopecks"]) == (
        12_345,
        0,
        12_345,
    )
    assert data["free_tier"]["allowances"] == [
        {"tier": "basic", "limit": 20, "used": 0, "left": 20}
    ]
    assert data["free_tier"]["period"] == "day"
    assert datetime.fromisoformat(data["free_tier"]["next_reset"]) > datetime.now(UTC)
    assert data["plan"] is None
    assert data["plans"] == [
        {"id": "plus", "stars": 250, "discount_percent": 10, "free_tier": {"basic": 200}}
    ]
    assert data["stars"] == {
        "packages": [{"stars": 50, "kopecks": 7_500}, {"stars": 100, "kopecks": 15_000}],
        "purchasable": True,
    }
    assert data["card"] is None


async def test_transactions_page_back_newest_first(env: Env) -> None:
    ann = await env.user(money=10_000)
    async with env.factory() as uow:
        for n in range(4):
            async with uow.transaction():
                await billing.debit(
                    uow,
                    user_id=ann.id,
                    amount=100 + n,
                    category="text",
                    key=secrets.token_hex(8),
                    charge=billing.Charge(
                        # The first by a model the catalogue no longer has.
                        model_id="gpt-4o" if n else "gpt-retired",
                        input_tokens=10,
                        output_tokens=20,
                    ),
                )
    _, first = await env.call(ann, "GET", "/api/transactions?limit=3")
    assert [t["amount_kopecks"] for t in first["transactions"]] == [-103, -102, -101]
    assert first["transactions"][0]["model_id"] == "gpt-4o"
    # Named as people read it; one no longer in the catalogue, by its id.
    assert first["transactions"][0]["model_name"] == "GPT-4o"
    assert first["transactions"][0]["balance_after_kopecks"] == 10_000 - 406
    _, rest = await env.call(ann, "GET", f"/api/transactions?limit=3&before={first['next_before']}")
    assert [t["amount_kopecks"] for t in rest["transactions"]] == [-100, 10_000]
    assert [t["model_name"] for t in rest["transactions"]] == ["gpt-retired", None]
    assert rest["next_before"] is None


async def test_a_stars_invoice_link_is_made_for_the_user_and_package(env: Env) -> None:
    ann = await env.user()
    status, data = await env.call(ann, "POST", "/api/payments/stars", {"stars": 100})
    assert status == 201
    assert data["invoice_link"].startswith("https://t.me/$")
    [invoice] = env.invoices
    assert payments.parse_payload(TERMS, invoice["payload"]) == (ann.id, 100)
    assert invoice["stars"] == 100
    assert invoice["title"] == "NetRoom balance top-up"
    assert invoice["description"] == "₽150.00 on your NetRoom balance, for any model."


async def test_a_stars_invoice_needs_an_offered_package_and_a_telegram_account(env: Env) -> None:
    ann, web = await env.user(), await env.user(telegram=False)
    status, data = await env.call(ann, "POST", "/api/payments/stars", {"stars": 77})
    assert (status, data["error"]) == (400, "payment_refused")
    status, data = await env.call(ann, "POST", "/api/payments/stars", {"stars": "50"})
    assert (status, data["error"]) == (400, "invalid_input")
    status, data = await env.call(web, "POST", "/api/payments/stars", {"stars": 50})
    assert (status, data["error"]) == (404, "not_found")
    _, balance = await env.call(web, "GET", "/api/balance")
    assert balance["stars"]["purchasable"] is False
    assert env.invoices == []


# --- referrals -----------------------------------------------------------------------------------


async def test_referrals_show_the_links_counts_and_earnings(env: Env) -> None:
    ann = await env.user()
    async with env.factory() as uow:
        code = (await accounts.get_user(uow, ann.id)).referral_code
        await register(uow, payload=f"ref_{code}")
        async with uow.transaction():
            await billing.credit(
                uow, user_id=ann.id, amount=3_000, category="referral", key=secrets.token_hex(8)
            )
    status, data = await env.call(ann, "GET", "/api/referrals")
    assert status == 200
    assert data == {
        "code": code,
        "bot_link": f"https://t.me/netroom_test_bot?start=ref_{code}",
        "app_link": f"https://t.me/netroom_test_bot?startapp=ref_{code}",
        "level1": 1,
        "level2": 0,
        "earned_kopecks": 3_000,
        "percents": {"level1": 10, "level2": 3},
    }


# --- settings ------------------------------------------------------------------------------------


async def test_settings_are_read_and_changed_together(env: Env) -> None:
    ann = await env.user()
    status, data = await env.call(ann, "GET", "/api/settings")
    assert (status, data) == (
        200,
        {
            "language": "en",
            "theme": "auto",
            "reasoning": False,
            "web_search": False,
            "history_enabled": True,
            "marketing_opt_in": False,
            "read_aloud": False,
            "image_mode": False,
            "timezone": None,
        },
    )
    change = {
        "language": "ru",
        "theme": "dark",
        "reasoning": True,
        "web_search": True,
        "marketing_opt_in": True,
        "read_aloud": True,
        "image_mode": True,
    }
    status, data = await env.call(ann, "PATCH", "/api/settings", change)
    assert (status, data) == (200, {**change, "history_enabled": True, "timezone": None})
    async with env.factory() as uow:
        prefs = await chat.get_prefs(uow, ann.id)
        assert (prefs.reasoning, prefs.web_search, prefs.read_aloud, prefs.image_mode) == (
            True,
            True,
            True,
            True,
        )


async def test_the_time_zone_is_chosen_by_name_and_shown_with_the_account(env: Env) -> None:
    ann, bob = await env.user(), await env.user()
    status, data = await env.call(ann, "PUT", "/api/settings/timezone", {"timezone": "asia/tokyo"})
    assert (status, data) == (200, {"timezone": "Asia/Tokyo"})
    status, settings = await env.call(ann, "GET", "/api/settings")
    assert settings["timezone"] == "Asia/Tokyo"
    status, me = await env.call(ann, "GET", "/api/me")
    assert me["timezone"] == "Asia/Tokyo"
    # Only Ann's account changed.
    status, others = await env.call(bob, "GET", "/api/settings")
    assert others["timezone"] is None


@pytest.mark.parametrize("body", [{"timezone": "Mars/Olympus_Mons"}, {"timezone": 3}, {}])
async def test_an_unknown_time_zone_is_refused(env: Env, body: dict[str, Any]) -> None:
    ann = await env.user()
    status, data = await env.call(ann, "PUT", "/api/settings/timezone", body)
    assert status == 400
    if body.get("timezone") == "Mars/Olympus_Mons":
        assert data["error"] == "unknown_time_zone"
        assert "Europe/Moscow" in data["message"]
    status, settings = await env.call(ann, "GET", "/api/settings")
    assert settings["timezone"] is None


async def test_turning_history_off_clears_the_stored_chats(env: Env) -> None:
    ann, bob = await env.user(), await env.user()
    now = datetime.now(UTC)
    async with env.factory() as uow:
        for user in (ann, bob):
            conversation = await conversations.current_conversation(
                uow, user.id, title="Hello", model_id="gpt-4o"
            )
            await uow.chats.append_message(
                conversation_id=conversation,
                user_id=user.id,
                role="user",
                content="hi",
                reasoning=None,
                model_id="gpt-4o",
                input_tokens=None,
                output_tokens=None,
                status="complete",
                created_at=now,
                expires_at=now + timedelta(days=14),
            )
            await uow.commit()
    status, data = await env.call(ann, "PATCH", "/api/settings", {"history_enabled": False})
    assert (status, data["history_enabled"]) == (200, False)
    async with env.factory() as uow:
        for model in (ChatMessageRow, Conversation):
            counts = dict(
                (
                    await uow.session.execute(
                        select(model.user_id, func.count())
                        .where(model.user_id.in_([ann.id, bob.id]))
                        .group_by(model.user_id)
                    )
                ).all()
            )
            assert counts == {bob.id: 1}
        user = await uow.session.get(User, ann.id)
        assert user is not None and user.history_enabled is False


@pytest.mark.parametrize(
    "body",
    [
        {"language": "de"},
        {"theme": "sepia"},
        {"reasoning": "yes"},
        {"history_enabled": 1},
        {"model": "gpt-4o"},
        {"theme": "dark", "is_blocked": True},
    ],
)
async def test_unknown_settings_or_values_change_nothing(env: Env, body: dict[str, Any]) -> None:
    ann = await env.user()
    status, data = await env.call(ann, "PATCH", "/api/settings", body)
    assert (status, data["error"]) == (400, "invalid_input")
    _, settings = await env.call(ann, "GET", "/api/settings")
    assert settings["theme"] == "auto" and settings["language"] == "en"
