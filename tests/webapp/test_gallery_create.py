"""Pictures and videos made from the web app, through the real app, the sandbox's providers over
HTTP, Postgres, Redis and a real worker: the shape asked for reaches the provider, variations are
held together and charged for those made, a refusal for money holds nothing, a video is watched
by the worker until it plays, and image mode is the bot's one switch.

The stage here (``creative_stage``) is shared with the browser tests of the same features."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.dispatcher import create_i18n
from bot.notifier import BotNotifier
from core.dto import ClientInfo
from core.providers.registry import ProviderRegistry
from core.providers.settings import sandbox_providers
from core.services import accounts, billing, chat
from core.services.images import ImageTerms
from core.services.videos import VideoTerms
from db.models import Media
from netroom.jobs import BrokerQueue, JobDeps, create_broker, run_worker
from tests.sandbox_web.stage import PageServer
from tests.webapp.conftest import web_access_token
from tests.webapp.test_browser_pages import SECRET, Account, Stage, running_stage

GPT = "gpt-image-2"
STABLE = "stable-image-core"


def image_models(tag: str) -> tuple[ImageTerms, ...]:
    """A GPT image model (sizes) and a Stability one (aspect ratios); the GPT one's provider
    model is unique to the stage, so sandbox scripts never reach another module's requests."""
    return (
        ImageTerms(GPT, "openai", f"gpt-image-{tag}", image_price=700, markup_percent=20,
                   name="GPT Image 2"),
        ImageTerms(STABLE, "stability", "stable-image-core", image_price=300, markup_percent=20,
                   name="Stable Image Core"),
    )  # fmt: skip


def video_models(tag: str) -> tuple[VideoTerms, ...]:
    return (VideoTerms("sora-2", "video", f"sora-{tag}", second_price=100, seconds=4,
                       name="Sora 2"),)  # fmt: skip


class LateQueue:
    """The job queue handed to the web app before the worker's broker (which needs the stage's
    bot as its notifier) exists."""

    def __init__(self) -> None:
        self.queue: BrokerQueue | None = None

    async def enqueue(self, task_name: str, **kwargs: object) -> None:
        assert self.queue is not None
        await self.queue.enqueue(task_name, **kwargs)


@dataclass
class CreativeStage(Stage):
    # The provider's names of this stage's GPT image and video models.
    gpt_model: str = ""
    video_model: str = ""


@contextlib.asynccontextmanager
async def creative_stage(
    engine: AsyncEngine, redis: Redis, redis_url: str, sandbox: PageServer, media_dir: Path
) -> AsyncIterator[CreativeStage]:
    """The web app with image and video models, and a real worker on a queue of its own
    watching the videos (the bot its notifier, as in production)."""
    tag = secrets.token_hex(4)
    jobs = LateQueue()
    async with running_stage(
        engine,
        redis,
        sandbox,
        media_dir,
        image_models=image_models(tag),
        video_models=video_models(tag),
        jobs=jobs,
    ) as stage:
        broker = create_broker(
            redis_url,
            JobDeps(
                uow_factory=stage.factory,
                providers=ProviderRegistry(sandbox_providers(sandbox.url), stage.http),
                media_store=stage.store,
                notifier=BotNotifier(stage.bot, create_i18n()),
                video_poll_seconds=0.2,
                redis=redis,
            ),
            queue=f"netroom:test:{tag}",
        )
        jobs.queue = BrokerQueue(broker)
        stop = asyncio.Event()
        worker = asyncio.create_task(run_worker(broker, stop))
        try:
            yield CreativeStage(
                **vars(stage), gpt_model=f"gpt-image-{tag}", video_model=f"sora-{tag}"
            )
        finally:
            stop.set()
            await asyncio.wait_for(worker, 20)


@pytest.fixture
async def stage(
    engine: AsyncEngine, redis: Redis, redis_url: str, page_server: PageServer, tmp_path: Path
) -> AsyncIterator[CreativeStage]:
    async with creative_stage(engine, redis, redis_url, page_server, tmp_path / "media") as s:
        yield s


async def _auth(stage: Stage, account: Account) -> dict[str, str]:
    async with stage.factory() as uow:
        token = await web_access_token(uow, account.user_id, secret=SECRET)
    return {"Authorization": f"Bearer {token}"}


async def _web_only(stage: Stage, money: int) -> Account:
    """An account made on the web, with no Telegram."""
    async with stage.factory() as uow:
        user = await accounts.register_web_user(
            uow,
            identity=accounts.NewIdentity("email", f"{secrets.token_hex(5)}@example.com"),
            language="en",
            profile_name="Wendy",
            policy_version="2026-11-01",
            client=ClientInfo(platform="web"),
        )
        async with uow.transaction():
            await billing.credit(
                uow, user_id=user.id, amount=money, category="topup", key=secrets.token_hex(8)
            )
    return Account(user.id, 0, {})


async def _requests(stage: Stage, provider: str) -> list[dict[str, Any]]:
    response = await stage.http.get(
        f"{stage.sandbox.url}/sandbox/api/providers/requests", params={"provider": provider}
    )
    return list(response.json()["requests"])


async def _script(stage: Stage, provider: str, model: str, **script: Any) -> None:
    response = await stage.http.post(
        f"{stage.sandbox.url}/sandbox/api/providers/script",
        json={"provider": provider, "model": model, **script},
    )
    assert response.status_code == 201, response.text


async def _money(stage: Stage, account: Account) -> tuple[int, int, bool]:
    """Balance, money held, and whether the balance equals the sum of the ledger's entries."""
    async with stage.factory() as uow:
        balance = await billing.get_balance(uow, account.user_id)
        consistent = await billing.check_consistency(uow, account.user_id)
    return balance.balance, balance.reserved, consistent


async def _media_count(stage: Stage, account: Account) -> int:
    async with stage.factory() as uow, uow.reading():
        found = await uow.session.scalar(
            select(func.count()).select_from(Media).where(Media.user_id == account.user_id)
        )
    return int(found or 0)


# --- pictures ------------------------------------------------------------------------------------

PRICE = 840  # 700 kopecks and 20 % markup, no discount


async def test_variations_of_a_shape_reach_the_provider_and_are_charged_each(
    stage: CreativeStage,
) -> None:
    ana = await stage.account("Ana", money=10_000)
    auth = await _auth(stage, ana)
    response = await stage.http.post(
        f"{stage.url}/api/media/images",
        json={"prompt": "A red kite over a lake", "model_id": GPT, "aspect": "3:2", "count": 2},
        headers=auth,
    )
    assert response.status_code == 201, response.text
    made = response.json()
    assert made["failed"] == 0
    assert made["charged_kopecks"] == 2 * PRICE
    assert made["balance_kopecks"] == 10_000 - 2 * PRICE
    assert [(m["width"], m["height"], m["aspect"]) for m in made["media"]] == [
        (1536, 1024, "3:2"),
        (1536, 1024, "3:2"),
    ]
    asked = [
        r
        for r in await _requests(stage, "openai")
        if (r["json"] or {}).get("model") == stage.gpt_model
    ]
    assert [r["json"]["size"] for r in asked] == ["1536x1024", "1536x1024"]
    # Each is in the gallery and its file is the picture drawn.
    listed = (await stage.http.get(f"{stage.url}/api/media", headers=auth)).json()["media"]
    assert {m["id"] for m in listed} == {m["id"] for m in made["media"]}
    picture = await stage.http.get(stage.url + made["media"][0]["url"])
    assert picture.content.startswith(b"\x89PNG")
    assert await _money(stage, ana) == (10_000 - 2 * PRICE, 0, True)


async def test_a_stability_picture_is_drawn_in_the_aspect_ratio_asked_for(
    stage: CreativeStage,
) -> None:
    bo = await stage.account("Bo", money=10_000)
    auth = await _auth(stage, bo)
    response = await stage.http.post(
        f"{stage.url}/api/media/images",
        json={"prompt": "A tall lighthouse", "model_id": STABLE, "aspect": "9:16", "count": 1},
        headers=auth,
    )
    assert response.status_code == 201, response.text
    [picture] = response.json()["media"]
    assert (picture["width"], picture["height"]) == (768, 1344)
    sent = (await _requests(stage, "stability"))[-1]
    assert sent["form"]["aspect_ratio"] == "9:16"
    assert sent["form"]["prompt"] == "A tall lighthouse"
    # 300 kopecks and 20 % markup.
    assert await _money(stage, bo) == (10_000 - 360, 0, True)


async def test_a_shape_the_model_cannot_draw_is_refused_with_nothing_held(
    stage: CreativeStage,
) -> None:
    cy = await stage.account("Cy", money=10_000)
    response = await stage.http.post(
        f"{stage.url}/api/media/images",
        json={"prompt": "A wide valley", "model_id": GPT, "aspect": "16:9"},
        headers=await _auth(stage, cy),
    )
    assert response.status_code == 400
    assert response.json()["error"] == "aspect_not_offered"
    assert await _money(stage, cy) == (10_000, 0, True)
    assert await _media_count(stage, cy) == 0


async def test_a_picture_the_provider_fails_among_variations_costs_nothing(
    stage: CreativeStage,
) -> None:
    di = await stage.account("Di", money=10_000)
    await _script(stage, "openai", stage.gpt_model, fault={"kind": "content_filtered"})
    response = await stage.http.post(
        f"{stage.url}/api/media/images",
        json={"prompt": "Three paper boats", "model_id": GPT, "count": 3},
        headers=await _auth(stage, di),
    )
    assert response.status_code == 201, response.text
    made = response.json()
    assert (len(made["media"]), made["failed"]) == (2, 1)
    assert made["charged_kopecks"] == 2 * PRICE
    assert await _money(stage, di) == (10_000 - 2 * PRICE, 0, True)
    async with stage.factory() as uow, uow.reading():
        statuses = sorted(
            await uow.session.scalars(select(Media.status).where(Media.user_id == di.user_id))
        )
    assert statuses == ["failed", "ready", "ready"]


async def test_pictures_that_all_fail_are_an_error_and_cost_nothing(
    stage: CreativeStage,
) -> None:
    ed = await stage.account("Ed", money=10_000)
    await _script(stage, "openai", stage.gpt_model, fault={"kind": "content_filtered"}, times=2)
    response = await stage.http.post(
        f"{stage.url}/api/media/images",
        json={"prompt": "Something refused", "model_id": GPT, "count": 2},
        headers=await _auth(stage, ed),
    )
    assert response.status_code == 400
    assert response.json()["error"] == "content_filtered"
    assert await _money(stage, ed) == (10_000, 0, True)


async def test_pictures_beyond_the_balance_are_refused_with_nothing_held(
    stage: CreativeStage,
) -> None:
    flo = await stage.account("Flo", money=PRICE * 2 - 1)
    before = len(await _requests(stage, "openai"))
    response = await stage.http.post(
        f"{stage.url}/api/media/images",
        json={"prompt": "Two moons", "model_id": GPT, "count": 2},
        headers=await _auth(stage, flo),
    )
    assert response.status_code == 402
    assert response.json()["error"] == "insufficient_funds"
    assert "Top up" in response.json()["message"]
    assert await _money(stage, flo) == (PRICE * 2 - 1, 0, True)
    assert await _media_count(stage, flo) == 0
    assert len(await _requests(stage, "openai")) == before


async def test_more_like_a_picture_draws_its_prompt_model_and_shape_again(
    stage: CreativeStage,
) -> None:
    gus = await stage.account("Gus", money=10_000)
    auth = await _auth(stage, gus)
    first = await stage.http.post(
        f"{stage.url}/api/media/images",
        json={"prompt": "A narrow tower", "model_id": GPT, "aspect": "2:3"},
        headers=auth,
    )
    [source] = first.json()["media"]
    response = await stage.http.post(
        f"{stage.url}/api/media/{source['id']}/more", json={"count": 2}, headers=auth
    )
    assert response.status_code == 201, response.text
    more = response.json()["media"]
    assert [(m["prompt"], m["model_id"], m["aspect"], m["width"]) for m in more] == [
        ("A narrow tower", GPT, "2:3", 1024)
    ] * 2
    assert {m["id"] for m in more}.isdisjoint({source["id"]})
    asked = [
        r
        for r in await _requests(stage, "openai")
        if (r["json"] or {}).get("model") == stage.gpt_model
    ]
    assert [r["json"]["size"] for r in asked[-2:]] == ["1024x1536"] * 2
    assert await _money(stage, gus) == (10_000 - 3 * PRICE, 0, True)


async def test_options_show_each_models_price_with_the_discount_and_its_shapes(
    stage: CreativeStage,
) -> None:
    hal = await stage.account("Hal", money=5_000)
    response = await stage.http.get(
        f"{stage.url}/api/media/options", headers=await _auth(stage, hal)
    )
    assert response.status_code == 200
    options = response.json()
    assert [(m["id"], m["price_kopecks"], m["aspects"]) for m in options["images"]] == [
        (GPT, PRICE, ["1:1", "3:2", "2:3"]),
        (STABLE, 360, ["1:1", "3:2", "2:3", "16:9", "9:16"]),
    ]
    # 4 seconds at 100 kopecks and no markup.
    assert [(m["id"], m["price_kopecks"], m["aspects"]) for m in options["videos"]] == [
        ("sora-2", 400, ["16:9", "9:16"])
    ]
    assert (options["max_count"], options["available_kopecks"]) == (4, 5_000)


# --- videos --------------------------------------------------------------------------------------


async def test_a_web_only_users_video_is_made_by_the_worker_and_turns_ready(
    stage: CreativeStage,
) -> None:
    wendy = await _web_only(stage, 5_000)
    auth = await _auth(stage, wendy)
    response = await stage.http.post(
        f"{stage.url}/api/media/videos",
        json={"prompt": "Rain on a window", "aspect": "9:16"},
        headers=auth,
    )
    assert response.status_code == 201, response.text
    video = response.json()
    assert (video["kind"], video["status"], video["aspect"]) == ("video", "pending", "9:16")
    sent = [r for r in await _requests(stage, "openai") if r["path"].endswith("/videos")][-1]
    assert (sent.get("json") or sent.get("form"))["size"] == "720x1280"
    # Held while it is made.
    assert await _money(stage, wendy) == (5_000, 400, True)
    async with asyncio.timeout(20):
        while video["status"] == "pending":
            await asyncio.sleep(0.2)
            polled = await stage.http.get(f"{stage.url}/api/media/{video['id']}", headers=auth)
            video = polled.json()
    assert video["status"] == "ready"
    played = await stage.http.get(stage.url + video["url"])
    assert played.headers["content-type"] == "video/mp4"
    assert await _money(stage, wendy) == (5_000 - 400, 0, True)


async def test_a_video_the_provider_refuses_costs_nothing(stage: CreativeStage) -> None:
    ivy = await _web_only(stage, 5_000)
    auth = await _auth(stage, ivy)
    await _script(
        stage, "openai", stage.video_model, fault={"kind": "content_filtered"}, video_polls=1
    )
    response = await stage.http.post(
        f"{stage.url}/api/media/videos", json={"prompt": "Something refused"}, headers=auth
    )
    video = response.json()
    async with asyncio.timeout(20):
        while video["status"] == "pending":
            await asyncio.sleep(0.2)
            video = (
                await stage.http.get(f"{stage.url}/api/media/{video['id']}", headers=auth)
            ).json()
    assert video["status"] == "failed"
    assert await _money(stage, ivy) == (5_000, 0, True)


# --- image mode ----------------------------------------------------------------------------------


async def test_image_mode_set_on_the_web_is_the_bots_switch(stage: CreativeStage) -> None:
    jo = await stage.account("Jo")
    auth = await _auth(stage, jo)
    assert (await stage.http.get(f"{stage.url}/api/settings", headers=auth)).json()[
        "image_mode"
    ] is False
    changed = await stage.http.patch(
        f"{stage.url}/api/settings", json={"image_mode": True}, headers=auth
    )
    assert changed.json()["image_mode"] is True
    async with stage.factory() as uow:
        assert (await chat.get_prefs(uow, jo.user_id)).image_mode is True
        # And the bot's switch is the web's.
        await chat.set_prefs(uow, jo.user_id, image_mode=False)
    assert (await stage.http.get(f"{stage.url}/api/settings", headers=auth)).json()[
        "image_mode"
    ] is False
