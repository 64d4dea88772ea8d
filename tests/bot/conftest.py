"""The real bot (aiogram Bot + dispatcher, polling) against the sandbox over HTTP, on the test
database and Redis. Each test acts as fresh Telegram users, so tests never see each other."""

from __future__ import annotations

import asyncio
import dataclasses
import secrets
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import pytest
from aiogram import Bot, Dispatcher
from aiogram.fsm.storage.base import DefaultKeyBuilder
from aiogram.fsm.storage.redis import RedisStorage
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.context import BotContext
from bot.dispatcher import create_dispatcher, create_i18n
from bot.factory import create_bot
from bot.inbox import InboxPolling
from bot.notifier import BotNotifier
from bot.stars import TelegramStars
from core.media import LocalMediaStore
from core.payments.yookassa import YooKassaClient
from core.providers.registry import ProviderRegistry
from core.providers.settings import sandbox_providers
from core.services.chat import ModelMenu, ModelTerms
from core.services.images import ImageTerms
from core.services.payments import PaymentTerms
from core.services.tariffs import Plan, Tariffs
from core.services.videos import VideoTerms
from core.services.voice import SpeechTerms, TranscriptionTerms
from db.engine import UnitOfWorkFactory
from netroom.jobs import BrokerQueue, JobDeps, create_broker, run_worker
from netroom.resources import outbound_http
from sandbox.app import SandboxServer, start_sandbox
from sandbox.client import Event, SandboxClient

POLICY_VERSION = "2026-11-01"
WEB_APP_URL = "http://netroom.test/"
BOT_USERNAME = "netroom_test_bot"
MODELS = ModelMenu(
    models=(
        ModelTerms(
            id="sandbox-gpt",
            provider="openai",
            provider_model="gpt-sandbox",
            context_window=16_000,
            input_per_1k=10,
            output_per_1k=30,
            reasoning=True,
            vision=True,
        ),
        ModelTerms(
            id="sandbox-claude",
            provider="anthropic",
            provider_model="claude-sandbox",
            context_window=32_000,
            input_per_1k=20,
            output_per_1k=60,
            markup_percent=10,
        ),
        ModelTerms(
            id="sandbox-mini",
            provider="openai",
            provider_model="gpt-mini-sandbox",
            context_window=16_000,
            input_per_1k=2,
            output_per_1k=6,
            free_tier="basic",
            name="Sandbox Mini",
        ),
        # Streams its reasoning (DeepSeek's reasoning_content), unlike OpenAI's chat API.
        ModelTerms(
            id="sandbox-thinker",
            provider="deepseek",
            provider_model="deepseek-reasoner",
            context_window=16_000,
            input_per_1k=5,
            output_per_1k=20,
            reasoning=True,
            name="Sandbox Thinker",
        ),
    ),
    default_id="sandbox-gpt",
)
# Voice: 100 kopecks per started minute heard, 1 000 kopecks per 1 000 characters read aloud.
TRANSCRIPTION = TranscriptionTerms(
    "sandbox-transcribe", "openai", "whisper-sandbox", minute_price=100, markup_percent=0
)
SPEECH = SpeechTerms(
    "sandbox-tts", "openai", "tts-sandbox", voice="alloy", chars_price_1k=1000, markup_percent=0
)
# Display names, as the catalogue gives them (Catalogue.names); the text models keep their ids.
MODEL_NAMES = {m.id: m.title for m in MODELS.models} | {
    "sandbox-image": "Sandbox Picture",
    "sandbox-video": "Sandbox Motion",
}
PLUS = Plan("plus", stars=100, free_tier={"basic": 3}, discount_percent=10)
TARIFFS = Tariffs(free_limits={"basic": 1}, timezone="Europe/Moscow", plans=(PLUS,))
YOOKASSA_SHOP = ("bot-test-shop", "bot-test-shop-secret")
PAYMENT_TERMS = PaymentTerms.build(
    kopecks_per_star=130,
    star_packages=[50, 100],
    referral_level1_percent=10,
    referral_level2_percent=3,
    signing_secret="bot-test-secret",
)


@dataclass
class BotHarness:
    sandbox: SandboxServer
    client: SandboxClient
    bot: Bot
    dp: Dispatcher
    uow_factory: UnitOfWorkFactory


@pytest.fixture(scope="session")
async def harness(
    engine: AsyncEngine, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[BotHarness]:
    sandbox = await start_sandbox()
    token = f"{secrets.randbelow(10**9) + 10**9}:{secrets.token_urlsafe(27)}"
    client = SandboxClient(sandbox.url)
    await client.register_bot(token, BOT_USERNAME, "NetRoom")
    redis = Redis.from_url(redis_url)
    storage = RedisStorage(redis, key_builder=DefaultKeyBuilder(with_bot_id=True))
    uow_factory = UnitOfWorkFactory.for_engine(engine)
    ctx = BotContext(
        policy_version=POLICY_VERSION,
        policy_url="http://netroom.test/privacy/",
        web_app_url=WEB_APP_URL,
        payment_terms=PAYMENT_TERMS,
        models=MODELS,
        video_models=(VideoTerms("sandbox-video", "video", "sora-2", second_price=100),),
        image_models=(ImageTerms("sandbox-image", "openai", "gpt-image-sandbox", image_price=500),),
        transcription=TRANSCRIPTION,
        speech=SPEECH,
        secret="bot-test-secret",
        tariffs=TARIFFS,
        yookassa=None,
        yookassa_packages=(100, 500),
        model_names=MODEL_NAMES,
    )
    # The production client (netroom.resources).
    http = outbound_http()
    await http.post(
        f"{sandbox.url}/sandbox/api/yookassa/shops",
        json={"shop_id": YOOKASSA_SHOP[0], "secret_key": YOOKASSA_SHOP[1]},
    )
    ctx = dataclasses.replace(
        ctx,
        yookassa=YooKassaClient(http, *YOOKASSA_SHOP, api_base=f"{sandbox.url}/yookassa/v3"),
    )
    providers = ProviderRegistry(sandbox_providers(sandbox.url), http)
    media_store = LocalMediaStore(tmp_path_factory.mktemp("media"))
    bot = create_bot(token, sandbox.url)
    # A real worker on its own queue, for what finishes in the background (videos).
    broker = create_broker(
        redis_url,
        JobDeps(
            uow_factory=uow_factory,
            providers=providers,
            media_store=media_store,
            notifier=BotNotifier(bot, create_i18n(), MODEL_NAMES),
            video_poll_seconds=0.2,
            tariffs=TARIFFS,
            stars_source=TelegramStars(bot),
            redis=redis,
            broadcast_rate=200.0,
        ),
        queue=f"netroom:test:{secrets.token_hex(4)}",
    )
    worker_stop = asyncio.Event()
    worker = asyncio.create_task(run_worker(broker, worker_stop))
    dp = create_dispatcher(
        uow_factory=uow_factory,
        ctx=ctx,
        storage=storage,
        redis=redis,
        providers=providers,
        media_store=media_store,
        jobs=BrokerQueue(broker),
    )
    # As `netroom bot` polls: each batch recorded in the inbox before it is confirmed.
    poller = InboxPolling(dp, bot, uow_factory, polling_timeout=1)
    polling = asyncio.create_task(poller.run())
    try:
        # Start-up (commands, menu button) is done once both command lists are set.
        started = 0
        after = 0
        while started < 2:
            if polling.done():
                polling.result()
            events, after = await client.events(after=after, wait=1)
            started += sum(1 for e in events if e["type"] == "commands_set")
        yield BotHarness(sandbox, client, bot, dp, uow_factory)
    finally:
        poller.stop()
        await asyncio.wait_for(polling, 40)
        worker_stop.set()
        await asyncio.wait_for(worker, 10)
        await bot.session.close()
        await http.aclose()
        await storage.close()
        await client.aclose()
        await sandbox.stop()


def is_bot_message(event: Event) -> bool:
    return event["type"] == "bot_message"


def text_of(event: Event) -> str:
    return str(event.get("message", {}).get("text") or "")


class Person:
    """A Telegram user chatting with the bot in the sandbox."""

    def __init__(self, client: SandboxClient, user: dict[str, Any]) -> None:
        self.client = client
        self.user = user
        self.id: int = user["id"]

    async def say(self, text: str, *, replies: int = 1, wait: float = 10) -> list[Event]:
        """Send a text and return the bot's next ``replies`` messages."""
        after = await self.client.last_seq()
        await self.client.send_text(self.id, text)
        return await self.replies(after, replies, wait=wait)

    async def tap(
        self, message: Event | dict[str, Any], data: str, *, replies: int = 1
    ) -> list[Event]:
        after = await self.client.last_seq()
        message_id = message["message_id"]
        await self.client.tap(self.id, message_id, data)
        return await self.replies(after, replies)

    async def replies(self, after: int, count: int, *, wait: float = 10) -> list[Event]:
        found: list[Event] = []
        while len(found) < count:
            event = await self.client.wait_for(
                is_bot_message, chat_id=self.id, after=after, wait=wait
            )
            found.append(event)
            after = event["seq"]
        return found

    async def accept(self, consent: Event) -> list[Event]:
        """Tap Accept under the consent message; the welcome and the main menu follow."""
        accept = [b for b in buttons(consent) if "callback_data" in b]
        assert len(accept) == 1, "the consent message has exactly one button"
        return await self.tap(consent, accept[0]["callback_data"], replies=2)


def buttons(event: Event) -> list[dict[str, Any]]:
    markup = event["message"].get("reply_markup") or {}
    return [b for row in markup.get("inline_keyboard", []) for b in row]


def button_data(event: Event, label: str) -> str:
    for button in buttons(event):
        if label in button["text"] and "callback_data" in button:
            return str(button["callback_data"])
    raise AssertionError(f"no button {label!r} in {[b['text'] for b in buttons(event)]}")


PersonFactory = Callable[..., Any]


@pytest.fixture
def person(harness: BotHarness) -> PersonFactory:
    async def make(
        first_name: str = "Alice", language_code: str | None = "en", **kw: Any
    ) -> Person:
        user = await harness.client.create_user(first_name, language_code=language_code, **kw)
        return Person(harness.client, user)

    return make
