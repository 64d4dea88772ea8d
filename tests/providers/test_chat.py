"""Each chat adapter against its sandbox fake over HTTP: streaming, usage, reasoning, faults."""

from __future__ import annotations

import logging
import secrets
import socket
import time
import traceback
from contextlib import aclosing

import httpx
import pytest
from pydantic import SecretStr

from core.providers.base import (
    ChatMessage,
    ChatProvider,
    ChatRequest,
    Finished,
    FinishReason,
    ImagePart,
    ReasoningDelta,
    StreamEvent,
    TextDelta,
    TextPart,
    Usage,
    UsageReport,
)
from core.providers.errors import (
    ContentFiltered,
    ProviderAuthFailed,
    ProviderBadRequest,
    ProviderError,
    ProviderNotConfigured,
    ProviderQuotaExceeded,
    ProviderRateLimited,
    ProviderStreamBroken,
    ProviderUnavailable,
)
from core.providers.http import RetryPolicy
from core.providers.openai_compat import OpenAICompatProvider
from core.providers.registry import ProviderRegistry
from core.providers.settings import ProvidersSettings
from tests.providers.conftest import Fake, Sleeps

# (registry provider, the fake serving it, a model id)
CHAT = [
    ("openai", "openai", "gpt-5.4-mini"),
    ("anthropic", "anthropic", "claude-sonnet-5-5"),
    ("google", "gemini", "gemini-3.6-flash"),
    ("mistral", "mistral", "mistral-small-latest"),
    ("deepseek", "compat", "deepseek-chat"),
    ("openrouter", "compat", "meta-llama/llama-4-maverick"),
]
CHAT_IDS = [c[0] for c in CHAT]
REPLY = "Hello there, friend. How are you today? I hope all is well."
# The sandbox counts a word or a punctuation mark as one token.
REPLY_TOKENS = 16
SYSTEM = "Be brief."  # 3 tokens
SAID = "Hi there"  # 2 tokens


def request(model: str, **kwargs: object) -> ChatRequest:
    return ChatRequest(
        model=model,
        messages=(ChatMessage("user", SAID),),
        system=SYSTEM,
        **kwargs,  # type: ignore[arg-type]
    )


async def collect(provider: ChatProvider, req: ChatRequest) -> list[StreamEvent]:
    events: list[StreamEvent] = []
    async with aclosing(provider.stream_chat(req)) as stream:
        async for event in stream:
            events.append(event)
    return events


async def collect_until_error(
    provider: ChatProvider, req: ChatRequest
) -> tuple[list[StreamEvent], ProviderError]:
    events: list[StreamEvent] = []
    with pytest.raises(ProviderError) as caught:
        async with aclosing(provider.stream_chat(req)) as stream:
            async for event in stream:
                events.append(event)
    return events, caught.value


def text_of(events: list[StreamEvent]) -> str:
    return "".join(e.text for e in events if isinstance(e, TextDelta))


def reasoning_of(events: list[StreamEvent]) -> str:
    return "".join(e.text for e in events if isinstance(e, ReasoningDelta))


@pytest.mark.parametrize(("provider", "fake_name", "model"), CHAT, ids=CHAT_IDS)
async def test_stream_assembles_the_reply_and_reports_exact_usage(
    fake: Fake, registry: ProviderRegistry, provider: str, fake_name: str, model: str
) -> None:
    await fake.script(provider=fake_name, reply=REPLY, cached_tokens=2)

    events = await collect(registry.chat(provider), request(model))

    assert text_of(events) == REPLY
    assert sum(isinstance(e, TextDelta) for e in events) > 1
    # Mistral does not report cache hits.
    cached = 0 if provider == "mistral" else 2
    assert events[-2:] == [
        UsageReport(Usage(input_tokens=5, output_tokens=REPLY_TOKENS, cached_input_tokens=cached)),
        Finished(FinishReason.STOP),
    ]


@pytest.mark.parametrize(
    ("provider", "model", "reports_reasoning"),
    [
        ("anthropic", "claude-sonnet-5-5", True),
        ("google", "gemini-3.6-flash", True),
        ("deepseek", "deepseek-reasoner", True),
        ("openrouter", "deepseek/deepseek-r1", True),
        ("mistral", "magistral-medium-latest", False),
    ],
)
async def test_reasoning_streams_as_reasoning_deltas_with_its_tokens(
    fake: Fake, registry: ProviderRegistry, provider: str, model: str, reports_reasoning: bool
) -> None:
    thinking = "First, greet back. Then stop."  # 8 tokens
    await fake.script(model=model, reply="Hi!", reasoning=thinking)

    events = await collect(registry.chat(provider), request(model, reasoning=True))

    assert reasoning_of(events) == thinking
    assert text_of(events) == "Hi!"
    report = next(e for e in events if isinstance(e, UsageReport))
    assert report.usage.output_tokens == 2 + 8
    assert report.usage.reasoning_tokens == (8 if reports_reasoning else 0)


async def test_openai_reports_hidden_reasoning_tokens_without_deltas(
    fake: Fake, registry: ProviderRegistry
) -> None:
    await fake.script(provider="openai", reply="Hi!", reasoning="First, greet back. Then stop.")

    events = await collect(registry.chat("openai"), request("gpt-5.5", reasoning=True))

    assert reasoning_of(events) == ""
    assert events[-2] == UsageReport(Usage(input_tokens=5, output_tokens=10, reasoning_tokens=8))
    (sent,) = await fake.requests("openai")
    assert sent["json"]["reasoning_effort"] == "medium"


async def test_unscripted_reply_says_it_comes_from_the_sandbox(registry: ProviderRegistry) -> None:
    events = await collect(registry.chat("openai"), request("gpt-5.4-mini"))

    text = text_of(events)
    assert "This reply comes from the NetRoom sandbox, not from gpt-5.4-mini" in text
    assert "You said: Hi there" in text
    assert "- a **bold** list item" in text
    assert "```python" in text


async def test_openai_request_asks_for_usage_and_sends_images_inline(
    fake: Fake, registry: ProviderRegistry
) -> None:
    photo = ImagePart(b"\x89PNG\r\n\x1a\nfake", "image/png")
    req = ChatRequest(
        model="gpt-5.4-mini",
        messages=(ChatMessage("user", (TextPart("What is this?"), photo)),),
        max_output_tokens=300,
        temperature=0.2,
    )

    events = await collect(registry.chat("openai"), req)

    (sent,) = await fake.requests("openai")
    body = sent["json"]
    assert sent["headers"]["authorization"] == "Bearer sk-sandbox-openai"
    assert body["stream"] is True
    assert body["stream_options"] == {"include_usage": True}
    assert body["max_completion_tokens"] == 300
    assert body["temperature"] == 0.2
    assert body["messages"][0]["content"][1] == {
        "type": "image_url",
        "image_url": {"url": "data:image/png;base64,iVBORw0KGgpmYWtl"},
    }
    # 4 text tokens and the sandbox's flat 85 per image.
    report = next(e for e in events if isinstance(e, UsageReport))
    assert report.usage.input_tokens == 4 + 85


async def test_mistral_request_carries_no_openai_only_fields(
    fake: Fake, registry: ProviderRegistry
) -> None:
    await collect(registry.chat("mistral"), request("mistral-small-latest", max_output_tokens=50))

    (sent,) = await fake.requests("mistral")
    assert "stream_options" not in sent["json"]
    assert sent["json"]["max_tokens"] == 50


async def test_mistral_refuses_unknown_fields_as_a_bad_request(
    fake: Fake, settings: ProvidersSettings, http: httpx.AsyncClient
) -> None:
    wrong_dialect = OpenAICompatProvider(
        http,
        name="mistral",
        base_url=settings.mistral.base_url,
        api_key=settings.mistral.key,
        dialect="openai",
    )

    _, error = await collect_until_error(wrong_dialect, request("mistral-small-latest"))

    assert isinstance(error, ProviderBadRequest)
    assert "extra_forbidden" in error.detail or "422" in error.detail


async def test_anthropic_current_models_get_adaptive_summarised_thinking(
    fake: Fake, registry: ProviderRegistry
) -> None:
    await collect(registry.chat("anthropic"), request("claude-sonnet-5-5", reasoning=True))

    (sent,) = await fake.requests("anthropic")
    assert sent["headers"]["x-api-key"] == "sk-ant-sandbox"
    assert sent["headers"]["anthropic-version"] == "2023-06-01"
    assert "authorization" not in sent["headers"]
    assert sent["json"]["thinking"] == {"type": "adaptive", "display": "summarized"}
    assert sent["json"]["system"] == SYSTEM
    assert sent["json"]["max_tokens"] == 8192


async def test_anthropic_older_models_get_a_thinking_budget_below_max_tokens(
    fake: Fake, registry: ProviderRegistry
) -> None:
    req = request("claude-haiku-4-5", reasoning=True, max_output_tokens=1500)

    events = await collect(registry.chat("anthropic"), req)

    (sent,) = await fake.requests("anthropic")
    assert sent["json"]["thinking"] == {"type": "enabled", "budget_tokens": 1024}
    assert sent["json"]["max_tokens"] > 1024
    assert isinstance(events[-1], Finished)


async def test_gemini_key_travels_in_a_header_never_in_the_url(
    fake: Fake, registry: ProviderRegistry
) -> None:
    await collect(registry.chat("google"), request("gemini-3.6-flash", web_search=True))

    (sent,) = await fake.requests("gemini")
    assert sent["headers"]["x-goog-api-key"] == "AIza-sandbox"
    assert sent["query"] == {"alt": "sse"}
    assert "AIza-sandbox" not in sent["path"]
    assert sent["path"].endswith("/models/gemini-3.6-flash:streamGenerateContent")
    assert sent["json"]["systemInstruction"] == {"parts": [{"text": SYSTEM}]}
    assert sent["json"]["tools"] == [{"googleSearch": {}}]


async def test_web_search_where_the_provider_has_none_is_refused_before_sending(
    fake: Fake, registry: ProviderRegistry
) -> None:
    _, error = await collect_until_error(
        registry.chat("deepseek"), request("deepseek-chat", web_search=True)
    )

    assert isinstance(error, ProviderBadRequest)
    assert await fake.requests() == []


@pytest.mark.parametrize(("provider", "fake_name", "model"), CHAT, ids=CHAT_IDS)
async def test_rate_limit_before_the_stream_is_waited_out_and_retried(
    fake: Fake,
    registry: ProviderRegistry,
    sleeps: Sleeps,
    provider: str,
    fake_name: str,
    model: str,
) -> None:
    await fake.script(provider=fake_name, fault={"kind": "429", "retry_after": 3})
    await fake.script(provider=fake_name, reply=REPLY)

    events = await collect(registry.chat(provider), request(model))

    assert text_of(events) == REPLY
    assert sleeps == [3.0]
    assert len(await fake.requests(fake_name)) == 2


@pytest.mark.parametrize(("provider", "fake_name", "model"), CHAT, ids=CHAT_IDS)
async def test_rate_limit_that_persists_raises_rate_limited_with_the_wait(
    fake: Fake,
    registry: ProviderRegistry,
    sleeps: Sleeps,
    provider: str,
    fake_name: str,
    model: str,
) -> None:
    await fake.script(provider=fake_name, fault={"kind": "429", "retry_after": 2}, times=5)

    events, error = await collect_until_error(registry.chat(provider), request(model))

    assert events == []
    assert isinstance(error, ProviderRateLimited)
    assert error.params["retry_after"] == 2
    assert sleeps == [2.0, 2.0]
    assert len(await fake.requests(fake_name)) == 3


async def test_rate_limit_asking_for_a_long_wait_is_not_retried(
    fake: Fake, registry: ProviderRegistry, sleeps: Sleeps
) -> None:
    await fake.script(provider="openai", fault={"kind": "429", "retry_after": 60}, times=5)

    _, error = await collect_until_error(registry.chat("openai"), request("gpt-5.4-mini"))

    assert isinstance(error, ProviderRateLimited)
    assert error.params["retry_after"] == 60
    assert sleeps == []
    assert len(await fake.requests("openai")) == 1


async def test_exhausted_quota_is_reported_and_not_retried(
    fake: Fake, registry: ProviderRegistry, sleeps: Sleeps
) -> None:
    await fake.script(
        provider="openai", fault={"kind": "429", "error_type": "insufficient_quota"}, times=5
    )

    _, error = await collect_until_error(registry.chat("openai"), request("gpt-5.4-mini"))

    assert isinstance(error, ProviderQuotaExceeded)
    assert sleeps == []
    assert len(await fake.requests("openai")) == 1


@pytest.mark.parametrize(("provider", "fake_name", "model"), CHAT, ids=CHAT_IDS)
async def test_server_error_is_retried_with_backoff_then_reported_unavailable(
    fake: Fake,
    registry: ProviderRegistry,
    sleeps: Sleeps,
    provider: str,
    fake_name: str,
    model: str,
) -> None:
    await fake.script(provider=fake_name, fault={"kind": "500"}, times=5)

    events, error = await collect_until_error(registry.chat(provider), request(model))

    assert events == []
    assert isinstance(error, ProviderUnavailable)
    assert len(await fake.requests(fake_name)) == 3
    assert len(sleeps) == 2
    assert 0 < sleeps[0] <= 0.5 and 0 < sleeps[1] <= 1.0


async def test_one_server_error_is_absorbed_by_a_retry(
    fake: Fake, registry: ProviderRegistry, sleeps: Sleeps
) -> None:
    await fake.script(provider="anthropic", fault={"kind": "500"})
    await fake.script(provider="anthropic", reply=REPLY)

    events = await collect(registry.chat("anthropic"), request("claude-sonnet-5-5"))

    assert text_of(events) == REPLY
    assert len(sleeps) == 1


@pytest.mark.parametrize(("provider", "fake_name", "model"), CHAT, ids=CHAT_IDS)
async def test_cut_in_the_middle_breaks_the_stream_keeps_the_delivered_text_and_never_retries(
    fake: Fake,
    registry: ProviderRegistry,
    sleeps: Sleeps,
    provider: str,
    fake_name: str,
    model: str,
) -> None:
    await fake.script(provider=fake_name, reply=REPLY, fault={"kind": "cut", "after_chunks": 2})

    events, error = await collect_until_error(registry.chat(provider), request(model))

    assert isinstance(error, ProviderStreamBroken)
    assert text_of(events) == REPLY[:14]
    assert not any(isinstance(e, UsageReport | Finished) for e in events)
    assert len(await fake.requests(fake_name)) == 1
    assert sleeps == []


@pytest.mark.parametrize(
    ("provider", "fake_name", "model", "error_type", "expected"),
    [
        ("openai", "openai", "gpt-5.4-mini", None, ProviderStreamBroken),
        ("mistral", "mistral", "mistral-small-latest", None, ProviderStreamBroken),
        ("deepseek", "compat", "deepseek-chat", None, ProviderStreamBroken),
        ("anthropic", "anthropic", "claude-sonnet-5-5", None, ProviderUnavailable),
        ("anthropic", "anthropic", "claude-sonnet-5-5", "api_error", ProviderStreamBroken),
        ("google", "gemini", "gemini-3.6-flash", None, ProviderStreamBroken),
        ("google", "gemini", "gemini-3.6-flash", "UNAVAILABLE", ProviderUnavailable),
    ],
)
async def test_error_inside_the_stream_is_mapped_after_the_delivered_text(
    fake: Fake,
    registry: ProviderRegistry,
    provider: str,
    fake_name: str,
    model: str,
    error_type: str | None,
    expected: type[ProviderError],
) -> None:
    fault = {"kind": "in_stream_error", "after_chunks": 1, "error_type": error_type}
    await fake.script(provider=fake_name, reply=REPLY, fault=fault)

    events, error = await collect_until_error(registry.chat(provider), request(model))

    assert type(error) is expected
    assert text_of(events) == REPLY[:7]
    assert len(await fake.requests(fake_name)) == 1


@pytest.mark.parametrize(("provider", "fake_name", "model"), CHAT, ids=CHAT_IDS)
async def test_content_filter_raises_content_filtered(
    fake: Fake, registry: ProviderRegistry, provider: str, fake_name: str, model: str
) -> None:
    fault = {"kind": "content_filtered", "after_chunks": 1}
    await fake.script(provider=fake_name, reply=REPLY, fault=fault)

    events, error = await collect_until_error(registry.chat(provider), request(model))

    assert isinstance(error, ContentFiltered)
    assert text_of(events) == REPLY[:7]


@pytest.mark.parametrize(("provider", "fake_name", "model"), CHAT, ids=CHAT_IDS)
async def test_refused_key_raises_auth_failed_and_never_shows_the_key(
    fake: Fake,
    settings: ProvidersSettings,
    http: httpx.AsyncClient,
    sleeps: Sleeps,
    caplog: pytest.LogCaptureFixture,
    provider: str,
    fake_name: str,
    model: str,
) -> None:
    key = f"sk-live-{secrets.token_hex(20)}"
    settings.get(provider).api_key = SecretStr(key)
    registry = ProviderRegistry(settings, http, retry=RetryPolicy(sleep=sleeps))
    await fake.script(provider=fake_name, fault={"kind": "auth"})
    caplog.set_level(logging.DEBUG)

    _, error = await collect_until_error(registry.chat(provider), request(model))

    assert isinstance(error, ProviderAuthFailed)
    assert len(await fake.requests(fake_name)) == 1
    shown = [
        str(error),
        repr(error),
        error.detail,
        repr(error.params),
        "".join(traceback.format_exception(error)),
        caplog.text,
    ]
    for text in shown:
        assert key not in text
        # Nor the ends of it, as providers echo a masked key back.
        assert key[-4:] not in text


async def test_openai_missing_key_is_refused_by_the_provider(
    fake: Fake, http: httpx.AsyncClient, settings: ProvidersSettings
) -> None:
    keyless = OpenAICompatProvider(
        http, name="openai", base_url=settings.openai.base_url, api_key=None
    )

    _, error = await collect_until_error(keyless, request("gpt-5.4-mini"))

    assert isinstance(error, ProviderAuthFailed)


def test_provider_without_a_key_is_not_configured(
    settings: ProvidersSettings, http: httpx.AsyncClient
) -> None:
    settings.mistral.api_key = None
    registry = ProviderRegistry(settings, http)

    assert not registry.configured("mistral")
    with pytest.raises(ProviderNotConfigured):
        registry.chat("mistral")


async def test_unreachable_provider_is_retried_then_unavailable(
    settings: ProvidersSettings, http: httpx.AsyncClient, sleeps: Sleeps
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings.openai.base_url = f"http://127.0.0.1:{port}/v1"
    registry = ProviderRegistry(settings, http, retry=RetryPolicy(sleep=sleeps))

    _, error = await collect_until_error(registry.chat("openai"), request("gpt-5.4-mini"))

    assert isinstance(error, ProviderUnavailable)
    assert len(sleeps) == 2


async def test_stopping_early_releases_the_stream_at_once(
    fake: Fake, registry: ProviderRegistry
) -> None:
    await fake.script(provider="openai", reply=REPLY * 4, chunk_delay_ms=50)
    started = time.monotonic()

    async with aclosing(registry.chat("openai").stream_chat(request("gpt-5.4-mini"))) as stream:
        async for event in stream:
            if isinstance(event, TextDelta) and event.text:
                break

    # The whole reply would take 35 chunks x 50 ms.
    assert time.monotonic() - started < 1.0
    events = await collect(registry.chat("openai"), request("gpt-5.4-mini"))
    assert isinstance(events[-1], Finished)
