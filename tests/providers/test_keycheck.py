"""Each provider's key check (core.providers.keycheck) against the sandbox's fakes over HTTP: a
working key passes with a call that generates nothing, a refused key is ProviderAuthFailed in
every provider's own error shape, and the key never shows in the error."""

from __future__ import annotations

import httpx
import pytest
from pydantic import SecretStr

from core.providers.errors import ProviderAuthFailed, ProviderNotConfigured
from core.providers.keycheck import check_key
from core.providers.settings import sandbox_providers
from tests.providers.conftest import Fake

# The provider's name, the fake that answers for it, and the path of its key check.
PROVIDERS = [
    ("openai", "openai", "/openai/v1/models"),
    ("anthropic", "anthropic", "/anthropic/v1/models"),
    ("google", "gemini", "/gemini/v1beta/models"),
    ("mistral", "mistral", "/mistral/v1/models"),
    ("deepseek", "compat", "/compat/v1/models"),
    ("openrouter", "compat", "/compat/v1/key"),
    ("stability", "stability", "/stability/v1/user/balance"),
    ("video", "openai", "/openai/v1/models"),
]


@pytest.mark.parametrize(("name", "fake_name", "path"), PROVIDERS)
async def test_key_check_passes_with_a_working_key_and_generates_nothing(
    fake: Fake, http: httpx.AsyncClient, name: str, fake_name: str, path: str
) -> None:
    fake.reset()
    await check_key(http, name, sandbox_providers(fake.url).get(name))
    [seen] = await fake.requests(fake_name)
    assert (seen["method"], seen["path"]) == ("GET", path)


@pytest.mark.parametrize(("name", "fake_name", "path"), PROVIDERS)
async def test_key_check_fails_as_auth_failed_when_the_provider_refuses_the_key(
    fake: Fake, http: httpx.AsyncClient, name: str, fake_name: str, path: str
) -> None:
    fake.reset()
    await fake.script(provider=fake_name, fault={"kind": "auth"})
    settings = sandbox_providers(fake.url).get(name)
    key = "sk-refused-0123456789abcdef"
    settings = settings.model_copy(update={"api_key": SecretStr(key)})
    with pytest.raises(ProviderAuthFailed) as caught:
        await check_key(http, name, settings)
    assert caught.value.params["provider"] == name
    assert key not in caught.value.detail


async def test_key_check_of_a_provider_without_a_key_says_it_is_not_configured(
    fake: Fake, http: httpx.AsyncClient
) -> None:
    settings = sandbox_providers(fake.url).openai.model_copy(update={"api_key": None})
    with pytest.raises(ProviderNotConfigured):
        await check_key(http, "openai", settings)
