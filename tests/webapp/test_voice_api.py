"""The chat's microphone route through create_app() over real HTTP, on real Postgres and Redis,
with the sandbox's transcription fake: a recording comes back as text and is billed per started
minute, once per Idempotency-Key; a recording over the limit, one that is not audio, or one the
balance cannot pay for is refused and costs nothing; where voice is not offered the route is 404
and the page offers no microphone."""

from __future__ import annotations

import io
import json
import secrets
from dataclasses import dataclass

import aiohttp
import httpx
from aiohttp.test_utils import TestClient
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine

from core.providers.registry import ProviderRegistry
from core.providers.settings import sandbox_providers
from core.services import billing, voice
from db.engine import UnitOfWorkFactory
from sandbox.app import SandboxServer
from tests.factories import register
from tests.webapp.conftest import ClientMaker, make_context, web_access_token
from webapp.app import create_app

SECRET = "voice-api-secret-of-at-least-32-bytes!!"
TERMS = voice.TranscriptionTerms(
    "web-transcribe", "openai", f"whisper-web-{secrets.token_hex(3)}", minute_price=50
)


@dataclass
class Person:
    id: int
    headers: dict[str, str]


async def _person(factory: UnitOfWorkFactory, money: int = 0) -> Person:
    async with factory() as uow:
        user = (await register(uow)).user
        if money:
            async with uow.transaction():
                await billing.credit(
                    uow, user_id=user.id, amount=money, category="topup", key=secrets.token_hex(8)
                )
        token = await web_access_token(uow, user.id, secret=SECRET)
    return Person(user.id, {"Authorization": f"Bearer {token}"})


async def _client(
    aiohttp_client: ClientMaker,
    engine: AsyncEngine,
    redis: Redis,
    sandbox: SandboxServer,
    http: httpx.AsyncClient,
    *,
    offered: bool = True,
) -> TestClient:  # type: ignore[type-arg]
    context = make_context(
        engine,
        redis,
        jwt_secret=SECRET,
        providers=ProviderRegistry(sandbox_providers(sandbox.url), http),
        transcription=TERMS if offered else None,
    )
    return await aiohttp_client(create_app(context))


def _recording(
    data: bytes, *, duration: int | None = 12, mime: str = "audio/webm;codecs=opus"
) -> aiohttp.FormData:
    form = aiohttp.FormData()
    # A stream, as a browser's upload is: aiohttp warns about large raw byte bodies.
    form.add_field("file", io.BytesIO(data), filename="voice.webm", content_type=mime)
    if duration is not None:
        form.add_field("duration", str(duration))
    return form


async def _money(factory: UnitOfWorkFactory, user_id: int) -> tuple[int, int]:
    async with factory() as uow:
        balance = await billing.get_balance(uow, user_id)
        assert await billing.check_consistency(uow, user_id)
        return balance.balance, balance.reserved


async def _uploads(http: httpx.AsyncClient, sandbox: SandboxServer) -> list[dict[str, str]]:
    found = await http.get(f"{sandbox.url}/sandbox/api/providers/requests")
    return [
        r["form"]
        for r in found.json()["requests"]
        if r["path"] == "/openai/v1/audio/transcriptions"
        and (r["form"] or {}).get("model") == TERMS.provider_model
    ]


async def test_a_recording_comes_back_as_text_and_is_charged_once_per_key(
    aiohttp_client: ClientMaker,
    engine: AsyncEngine,
    redis: Redis,
    sandbox: SandboxServer,
    http: httpx.AsyncClient,
) -> None:
    client = await _client(aiohttp_client, engine, redis, sandbox, http)
    factory = UnitOfWorkFactory.for_engine(engine)
    pia = await _person(factory, money=1_000)
    key = {"Idempotency-Key": secrets.token_hex(8)}
    for _ in range(2):
        answer = await client.post(
            "/api/transcriptions",
            data=_recording(b"Remind me to call Ben", duration=75),
            headers={**pia.headers, **key},
        )
        assert answer.status == 200, await answer.text()
        body = await answer.json()
        assert (body["text"], body["minutes"]) == ("Remind me to call Ben", 2)
    # Two started minutes at 50 kopecks, charged by the first upload only.
    assert await _money(factory, pia.id) == (900, 0)
    uploads = await _uploads(http, sandbox)
    assert len(uploads) == 2 and uploads[0]["filename"] == "voice.webm"


async def test_refused_recordings_cost_nothing(
    aiohttp_client: ClientMaker,
    engine: AsyncEngine,
    redis: Redis,
    sandbox: SandboxServer,
    http: httpx.AsyncClient,
) -> None:
    client = await _client(aiohttp_client, engine, redis, sandbox, http)
    factory = UnitOfWorkFactory.for_engine(engine)
    rich = await _person(factory, money=1_000)
    before = len(await _uploads(http, sandbox))

    too_big = await client.post(
        "/api/transcriptions",
        data=_recording(b"\x00" * (voice.MAX_AUDIO_BYTES + 1)),
        headers=rich.headers,
    )
    assert too_big.status == 400
    assert (await too_big.json())["message"] == (
        "This recording is too large. Please send one under 20 MB."
    )
    not_audio = await client.post(
        "/api/transcriptions",
        data=_recording(b"%PDF-1.7", mime="application/pdf"),
        headers=rich.headers,
    )
    assert not_audio.status == 415
    no_file = await client.post(
        "/api/transcriptions",
        data=json.dumps({"duration": 3}),
        headers={**rich.headers, "Content-Type": "application/json"},
    )
    assert no_file.status == 415
    assert await _money(factory, rich.id) == (1_000, 0)

    poor = await _person(factory)
    refused = await client.post(
        "/api/transcriptions", data=_recording(b"hello"), headers=poor.headers
    )
    assert refused.status == 402
    assert (await refused.json())["error"] == "insufficient_funds"
    assert len(await _uploads(http, sandbox)) == before

    anonymous = await client.post("/api/transcriptions", data=_recording(b"hello"))
    assert anonymous.status == 401


async def test_without_a_transcription_model_there_is_no_microphone(
    aiohttp_client: ClientMaker,
    engine: AsyncEngine,
    redis: Redis,
    sandbox: SandboxServer,
    http: httpx.AsyncClient,
) -> None:
    client = await _client(aiohttp_client, engine, redis, sandbox, http, offered=False)
    factory = UnitOfWorkFactory.for_engine(engine)
    ida = await _person(factory, money=1_000)
    answer = await client.post("/api/transcriptions", data=_recording(b"hi"), headers=ida.headers)
    assert answer.status == 404
    page = await (await client.get("/app")).text()
    assert '"voice_limit_mb": null' in page

    offered = await _client(aiohttp_client, engine, redis, sandbox, http)
    page = await (await offered.get("/app")).text()
    assert '"voice_limit_mb": 20' in page


async def test_read_aloud_is_a_setting_of_the_account(
    aiohttp_client: ClientMaker,
    engine: AsyncEngine,
    redis: Redis,
    sandbox: SandboxServer,
    http: httpx.AsyncClient,
) -> None:
    client = await _client(aiohttp_client, engine, redis, sandbox, http)
    factory = UnitOfWorkFactory.for_engine(engine)
    ola = await _person(factory)
    shown = await (await client.get("/api/settings", headers=ola.headers)).json()
    assert shown["read_aloud"] is False
    changed = await client.patch("/api/settings", json={"read_aloud": True}, headers=ola.headers)
    assert (await changed.json())["read_aloud"] is True
    async with factory() as uow:
        user = await uow.users.get(ola.id)
        assert user is not None and user.features["read_aloud"] is True
