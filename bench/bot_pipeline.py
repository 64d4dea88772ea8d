"""Text messages per second through the whole NetRoom bot (user load, consent check, history,
a zero-latency model from the sandbox, streamed reply, billing) beside a bare aiogram echo bot on
the same sandbox in the same run. The bar: NetRoom at least half the echo bot's rate.

    python -m bench.bot_pipeline [--users 20] [--messages 10] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import secrets
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx
from aiogram import Bot, Dispatcher
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.fsm.storage.base import DefaultKeyBuilder
from aiogram.fsm.storage.redis import RedisStorage
from aiogram.types import Message
from redis.asyncio import Redis

from bench._db import scratch_database
from bot.context import BotContext
from bot.dispatcher import create_dispatcher
from bot.factory import create_bot
from bot.inbox import InboxPolling
from bot.pacing import Limits
from core.deeplinks import parse_start_payload
from core.dto import ClientInfo
from core.media import LocalMediaStore
from core.providers.registry import ProviderRegistry
from core.providers.settings import sandbox_providers
from core.services import accounts
from core.services.chat import ModelMenu, ModelTerms
from core.services.payments import PaymentTerms
from db.engine import UnitOfWorkFactory, create_engine
from netroom.jobs import BrokerQueue, JobDeps, create_broker
from netroom.resources import outbound_http
from sandbox.app import start_sandbox
from sandbox.client import SandboxClient
from sandbox.telegram import TelegramOptions

POLICY = "2026-11-01"
FREE_MODEL = ModelTerms("bench", "openai", "gpt-bench", 16_000, 0, 0)
REDIS_URL = "redis://127.0.0.1:6379/0"


def token() -> str:
    return f"{secrets.randbelow(10**9) + 10**9}:{secrets.token_urlsafe(27)}"


async def drive(
    client: SandboxClient,
    bot_id: int,
    user_ids: list[int],
    messages: int,
    done: Callable[[dict], bool],
) -> float:
    """Each user sends ``messages`` texts to the bot, one after another, waiting for each reply."""

    async def one(user_id: int) -> None:
        for n in range(messages):
            after = await client.last_seq()
            await client.send_text(user_id, f"message {n} from {user_id}", bot_id=bot_id)
            await client.wait_for(done, chat_id=user_id, after=after, wait=60)

    started = time.perf_counter()
    await asyncio.gather(*(one(u) for u in user_ids))
    return len(user_ids) * messages / (time.perf_counter() - started)


def echo_dispatcher() -> Dispatcher:
    dp = Dispatcher()

    @dp.message()
    async def echo(message: Message) -> None:
        await message.answer(message.text or "")

    return dp


def netroom_dispatcher(
    base: str,
    factory: UnitOfWorkFactory,
    redis: Redis,
    http: httpx.AsyncClient,
    model: ModelTerms = FREE_MODEL,
) -> Dispatcher:
    """The NetRoom bot's dispatcher as `netroom bot` builds it, answering with ``model``."""
    storage = RedisStorage(redis, key_builder=DefaultKeyBuilder(with_bot_id=True))
    ctx = BotContext(
        policy_version=POLICY,
        policy_url="http://bench/privacy/",
        web_app_url="http://bench/",
        payment_terms=PaymentTerms.build(
            kopecks_per_star=130,
            star_packages=[50],
            referral_level1_percent=10,
            referral_level2_percent=3,
            signing_secret="bench",
        ),
        models=ModelMenu(models=(model,), default_id=model.id),
        secret="bench",
    )
    return create_dispatcher(
        uow_factory=factory,
        ctx=ctx,
        storage=storage,
        redis=redis,
        providers=ProviderRegistry(sandbox_providers(base), http),
        media_store=LocalMediaStore(Path(tempfile.mkdtemp())),
        jobs=BrokerQueue(
            create_broker(
                REDIS_URL, JobDeps(uow_factory=factory), queue=f"netroom:bench:{token()[:10]}"
            )
        ),
    )


async def main_async(url: str, users: int, messages: int, rounds: int) -> None:
    # Flood limits off: this measures the bots, not Telegram's throttling.
    options = TelegramOptions(
        private_burst=1e9,
        private_rate=1e9,
        global_burst=1e9,
        global_rate=1e9,
        draft_burst=1e9,
        draft_rate=1e9,
    )
    sandbox = await start_sandbox(options=options)
    engine = create_engine(url, pool_size=20, max_overflow=10)
    factory = UnitOfWorkFactory.for_engine(engine)
    client = SandboxClient(sandbox.url)
    redis = Redis.from_url(REDIS_URL)
    # The production client (netroom.resources).
    http = outbound_http()
    # The echo bot as plain aiogram: its stock session, no middleware (the sandbox's flood
    # limits are off, so there is no 429 to retry); NetRoom's as `netroom bot` builds it, with
    # its send pacer, whose budgets are lifted as the sandbox's flood limits are.
    echo_bot = Bot(token(), session=AiohttpSession(api=TelegramAPIServer.from_base(sandbox.url)))
    netroom_bot = create_bot(token(), sandbox.url, limits=Limits.unlimited())
    echo_dp = echo_dispatcher()
    netroom_dp = netroom_dispatcher(sandbox.url, factory, redis, http)
    await client.register_bot(echo_bot.token, "bench_echo_bot")
    await client.register_bot(netroom_bot.token, "bench_netroom_bot")
    # The echo bot polls as aiogram does; NetRoom as `netroom bot` does, through the inbox
    # (each batch recorded before it is confirmed, each row deleted once handled).
    inbox = InboxPolling(netroom_dp, netroom_bot, factory, polling_timeout=1)
    polls = [
        asyncio.create_task(
            echo_dp.start_polling(echo_bot, handle_signals=False, polling_timeout=1)
        ),
        asyncio.create_task(inbox.run()),
    ]
    echo_rates: list[float] = []
    netroom_rates: list[float] = []
    try:
        for _ in range(rounds):
            people = [(await client.create_user(f"U{n}"))["id"] for n in range(users)]
            for person in people:
                async with factory() as uow:
                    await accounts.register_telegram_user(
                        uow,
                        telegram_id=person,
                        username=None,
                        first_name="U",
                        last_name=None,
                        language_code="en",
                        payload=parse_start_payload(None),
                        policy_version=POLICY,
                        client=ClientInfo(platform="telegram"),
                    )
                # Both bots may answer only users who wrote to them.
                for bot in (echo_bot, netroom_bot):
                    await client.send_text(person, "/privacy", bot_id=bot.id)
            await asyncio.sleep(1.0)
            # A zero-latency model: the whole reply at once, no pacing.
            await client._call(
                "POST",
                "/providers/script",
                json={
                    "provider": "openai",
                    "reply": "A short reply from the sandbox.",
                    "chunk_delay_ms": 0,
                    "chunk_size": 1000,
                    "times": users * messages,
                },
            )
            echo_rates.append(
                await drive(
                    client,
                    echo_bot.id,
                    people,
                    messages,
                    lambda e: (
                        e["type"] == "bot_message"
                        and (e["message"]["text"] or "").startswith("message")
                    ),
                )
            )
            netroom_rates.append(
                await drive(
                    client,
                    netroom_bot.id,
                    people,
                    messages,
                    lambda e: (
                        e["type"] == "bot_message" and "sandbox" in (e["message"]["text"] or "")
                    ),
                )
            )
    finally:
        with contextlib.suppress(RuntimeError):
            await echo_dp.stop_polling()
        inbox.stop()
        await asyncio.gather(*polls, return_exceptions=True)
        for bot in (echo_bot, netroom_bot):
            await bot.session.close()
        await http.aclose()
        await redis.aclose()
        await client.aclose()
        await engine.dispose()
        await sandbox.stop()
    echo, netroom = statistics.median(echo_rates), statistics.median(netroom_rates)
    print(f"users={users} messages/user={messages} rounds={rounds}")
    print(f"bare aiogram echo bot: median {echo:,.1f} messages/s")
    print(f"NetRoom bot (full pipeline, zero-latency model): median {netroom:,.1f} messages/s")
    ratio = netroom / echo
    print(f"ratio NetRoom / echo: {ratio:.2f}; bar 0.50: {'met' if ratio >= 0.5 else 'NOT met'}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--messages", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with scratch_database() as url:
        asyncio.run(main_async(url, args.users, args.messages, args.rounds))


if __name__ == "__main__":
    main()
