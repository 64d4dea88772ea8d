"""The outbound HTTP client goes through aiohttp's transport and still honours the proxy an
operator names in the environment (many reach the AI providers only through one)."""

from __future__ import annotations

import httpx
import pytest
from httpx_aiohttp import AiohttpTransport

from netroom.resources import outbound_http


async def test_requests_go_through_aiohttp_and_an_environment_proxy_is_used(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:3128")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    async with outbound_http() as client:
        direct = client._transport_for_url(httpx.URL("http://127.0.0.1/"))
        proxied = client._transport_for_url(httpx.URL("https://api.openai.com/v1/models"))
    assert isinstance(direct, AiohttpTransport) and direct.proxy is None
    assert isinstance(proxied, AiohttpTransport)
    assert proxied.proxy is not None and str(proxied.proxy.url) == "http://127.0.0.1:3128"
