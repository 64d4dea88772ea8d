"""Does a provider's key work? One cheap authenticated call that generates nothing and costs
nothing: the model list (OpenAI, Mistral, DeepSeek, the video provider, Anthropic, Gemini),
OpenRouter's key information (its model list answers without a key) and Stability's balance.

Failures are the adapters' own domain errors (``ProviderAuthFailed`` for a refused key,
``ProviderUnavailable`` when the provider cannot be reached), with any key scrubbed out.
"""

from __future__ import annotations

from collections.abc import Callable

import httpx

from core.providers.anthropic import API_VERSION, parse_anthropic_error
from core.providers.errors import ProviderNotConfigured
from core.providers.gemini import parse_gemini_error
from core.providers.http import ParsedError, ProviderHTTP, RetryPolicy
from core.providers.openai_compat import parse_openai_error
from core.providers.settings import ProviderSettings
from core.providers.stability import parse_stability_error

# One retry at most: a preflight says what it found rather than waiting a provider out.
CHECK_RETRY = RetryPolicy(max_attempts=2, max_retry_after=2.0)
CHECK_TIMEOUT = httpx.Timeout(10.0)


def _request(
    name: str, settings: ProviderSettings, key: str
) -> tuple[str, str, dict[str, str], Callable[[bytes], ParsedError]]:
    """Base URL, path, auth headers and error parser of ``name``'s key check."""
    base = settings.base_url
    bearer = {"authorization": f"Bearer {key}"}
    if name == "anthropic":
        headers = {"x-api-key": key, "anthropic-version": API_VERSION}
        return base, "models", headers, parse_anthropic_error
    if name == "google":
        return base, "models", {"x-goog-api-key": key}, parse_gemini_error
    if name == "stability":
        # The balance lives in the v1 API beside the v2beta generation endpoints.
        root = base.rsplit("/", 1)[0] if base.endswith("/v2beta") else base
        headers = {**bearer, "accept": "application/json"}
        return root, "v1/user/balance", headers, parse_stability_error
    if name == "openrouter":
        return base, "key", bearer, parse_openai_error
    return base, "models", bearer, parse_openai_error


async def check_key(client: httpx.AsyncClient, name: str, settings: ProviderSettings) -> None:
    """Raises a ``ProviderError`` unless the provider accepts the configured key."""
    key = settings.key
    if key is None:
        raise ProviderNotConfigured(f"{name} has no API key", provider=name)
    base, path, headers, parse_error = _request(name, settings, key)
    http = ProviderHTTP(
        client,
        provider=name,
        base_url=base,
        headers=headers,
        secret=key,
        parse_error=parse_error,
        retry=CHECK_RETRY,
        timeout=CHECK_TIMEOUT,
    )
    await http.request_json("GET", path)
