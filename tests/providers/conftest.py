"""The sandbox's fake providers on a real port, and the real adapters pointed at them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from aiohttp import web

from core.providers.http import RetryPolicy
from core.providers.registry import ProviderRegistry
from core.providers.settings import ProvidersSettings, sandbox_providers
from netroom.resources import outbound_http
from sandbox.providers import PROVIDERS_STATE, ProvidersOptions, setup_providers


@dataclass
class Fake:
    url: str
    app: web.Application
    http: httpx.AsyncClient

    async def script(self, **script: Any) -> None:
        response = await self.http.post(f"{self.url}/sandbox/api/providers/script", json=script)
        assert response.status_code == 201, response.text

    async def requests(self, provider: str | None = None) -> list[dict[str, Any]]:
        params = {"provider": provider} if provider else {}
        response = await self.http.get(f"{self.url}/sandbox/api/providers/requests", params=params)
        return list(response.json()["requests"])

    def reset(self) -> None:
        state = self.app[PROVIDERS_STATE]
        state.scripts.clear()
        state.requests.clear()


@pytest.fixture(scope="module")
async def fake() -> AsyncIterator[Fake]:
    app = web.Application()
    setup_providers(app, ProvidersOptions(chunk_delay_ms=0, chunk_size=7, video_polls=2))
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    async with httpx.AsyncClient(timeout=10) as http:
        yield Fake(url=f"http://127.0.0.1:{port}", app=app, http=http)
    await runner.cleanup()


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    """The adapters' client as production builds it (netroom.resources)."""
    async with outbound_http() as client:
        yield client


class Sleeps(list[float]):
    """The waits a retry policy asked for, recorded instead of spent."""

    async def __call__(self, seconds: float) -> None:
        self.append(seconds)


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
def settings(fake: Fake) -> ProvidersSettings:
    fake.reset()
    return sandbox_providers(fake.url)


@pytest.fixture
def registry(
    settings: ProvidersSettings, http: httpx.AsyncClient, sleeps: Sleeps
) -> ProviderRegistry:
    return ProviderRegistry(settings, http, retry=RetryPolicy(sleep=sleeps))
