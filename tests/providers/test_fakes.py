"""The sandbox's provider fakes speak each provider's wire format, read back raw over HTTP."""

from __future__ import annotations

import base64
import json
import struct
import zlib
from typing import Any

import pytest

from core.providers.base import ChatMessage, ChatRequest, TextDelta
from core.providers.registry import ProviderRegistry
from sandbox.providers.png import make_png
from tests.providers.conftest import Fake

CHAT_BODY = {
    "model": "m",
    "messages": [{"role": "user", "content": "Hi there"}],
    "stream": True,
}


def data_lines(text: str) -> list[str]:
    return [line[len("data: ") :] for line in text.splitlines() if line.startswith("data: ")]


async def test_openai_stream_ends_with_a_usage_only_chunk_and_done(fake: Fake) -> None:
    await fake.script(provider="openai", reply="Hello, you.", cached_tokens=1)
    body = {**CHAT_BODY, "stream_options": {"include_usage": True}}

    response = await fake.http.post(
        f"{fake.url}/openai/v1/chat/completions",
        json=body,
        headers={"Authorization": "Bearer sk-x"},
    )

    assert response.headers["content-type"].startswith("text/event-stream")
    lines = data_lines(response.text)
    assert lines[-1] == "[DONE]"
    chunks = [json.loads(line) for line in lines[:-1]]
    assert {c["id"] for c in chunks} == {chunks[0]["id"]}
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert all(c["object"] == "chat.completion.chunk" and "obfuscation" in c for c in chunks)
    assert all(c["usage"] is None for c in chunks[:-1])
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"]["prompt_tokens"] == 2
    assert chunks[-1]["usage"]["completion_tokens"] == 4
    assert chunks[-1]["usage"]["total_tokens"] == 6
    assert chunks[-1]["usage"]["prompt_tokens_details"]["cached_tokens"] == 1


async def test_openai_stream_without_include_usage_reports_no_usage(fake: Fake) -> None:
    response = await fake.http.post(
        f"{fake.url}/openai/v1/chat/completions",
        json=CHAT_BODY,
        headers={"Authorization": "Bearer sk-x"},
    )

    chunks = [json.loads(line) for line in data_lines(response.text)[:-1]]
    assert all("usage" not in c for c in chunks)


async def test_anthropic_stream_follows_the_documented_event_order(fake: Fake) -> None:
    await fake.script(provider="anthropic", reply="Hi!", reasoning="Hmm.")
    body = {**CHAT_BODY, "max_tokens": 2048, "thinking": {"type": "enabled", "budget_tokens": 1024}}

    response = await fake.http.post(
        f"{fake.url}/anthropic/v1/messages",
        json=body,
        headers={"x-api-key": "sk-ant-x", "anthropic-version": "2023-06-01"},
    )

    events = [
        line[len("event: ") :] for line in response.text.splitlines() if line.startswith("event: ")
    ]
    datas = [json.loads(line) for line in data_lines(response.text)]
    assert [d["type"] for d in datas] == events
    assert events[:2] == ["message_start", "ping"]
    assert events[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    deltas = [d["delta"]["type"] for d in datas if d["type"] == "content_block_delta"]
    assert deltas == ["thinking_delta", "signature_delta", "text_delta"]
    assert datas[0]["message"]["usage"]["input_tokens"] == 2
    final = next(d for d in datas if d["type"] == "message_delta")
    assert final["usage"]["output_tokens"] == 4
    assert final["delta"]["stop_reason"] == "end_turn"


async def test_gemini_sse_uses_crlf_running_usage_and_no_terminator(fake: Fake) -> None:
    await fake.script(provider="gemini", reply="One two three four five six.")
    body = {"contents": [{"role": "user", "parts": [{"text": "Hi there"}]}]}

    response = await fake.http.post(
        f"{fake.url}/gemini/v1beta/models/gemini-x:streamGenerateContent",
        params={"alt": "sse"},
        json=body,
        headers={"x-goog-api-key": "AIza-x"},
    )

    assert "\r\n\r\n" in response.text
    assert "[DONE]" not in response.text
    chunks = [json.loads(line) for line in data_lines(response.text)]
    totals = [c["usageMetadata"]["candidatesTokenCount"] for c in chunks]
    assert totals == sorted(totals) and totals[-1] == 7
    assert chunks[-1]["candidates"][0]["finishReason"] == "STOP"
    assert all("finishReason" not in c["candidates"][0] for c in chunks[:-1])


async def test_gemini_without_alt_sse_answers_one_json_array(fake: Fake) -> None:
    body = {"contents": [{"parts": [{"text": "Hi"}]}]}

    response = await fake.http.post(
        f"{fake.url}/gemini/v1beta/models/gemini-x:streamGenerateContent",
        json=body,
        params={"key": "AIza-x"},
    )

    chunks = response.json()
    assert isinstance(chunks, list)
    assert chunks[-1]["candidates"][0]["finishReason"] == "STOP"


@pytest.mark.parametrize(
    ("path", "status", "shape"),
    [
        ("/openai/v1/chat/completions", 401, {"error": ["message", "type", "param", "code"]}),
        ("/compat/v1/chat/completions", 401, {"error": ["message", "type", "param", "code"]}),
        ("/mistral/v1/chat/completions", 401, {"object": [], "message": [], "type": []}),
        ("/anthropic/v1/messages", 401, {"type": [], "error": ["type", "message"]}),
        (
            "/gemini/v1beta/models/gemini-x:streamGenerateContent",
            403,
            {"error": ["code", "message", "status"]},
        ),
    ],
)
async def test_missing_credentials_get_the_provider_s_own_error(
    fake: Fake, path: str, status: int, shape: dict[str, list[str]]
) -> None:
    response = await fake.http.post(f"{fake.url}{path}", json=CHAT_BODY)

    assert response.status_code == status
    body = response.json()
    for key, inner in shape.items():
        assert key in body
        for name in inner:
            assert name in body[key]


async def test_stability_without_a_key_gets_its_own_401(fake: Fake) -> None:
    response = await fake.http.post(
        f"{fake.url}/stability/v2beta/stable-image/generate/core",
        data={"prompt": "a hill"},
        files={"none": ("", b"")},
    )

    assert response.status_code == 401
    assert response.json()["name"] == "unauthorized"


async def test_stability_refuses_a_request_that_is_not_multipart(fake: Fake) -> None:
    response = await fake.http.post(
        f"{fake.url}/stability/v2beta/stable-image/generate/core",
        json={"prompt": "x"},
        headers={"Authorization": "Bearer sk-x"},
    )

    assert response.status_code == 400
    assert set(response.json()) == {"id", "name", "errors"}


async def test_stability_json_answer_carries_base64_and_the_same_metadata(fake: Fake) -> None:
    response = await fake.http.post(
        f"{fake.url}/stability/v2beta/stable-image/generate/ultra",
        data={"prompt": "a hill", "seed": "7", "aspect_ratio": "1:1"},
        files={"none": ("", b"")},
        headers={"Authorization": "Bearer sk-x", "Accept": "application/json"},
    )

    assert response.headers["content-type"] == "application/json; type=image/png"
    body = response.json()
    assert (body["finish_reason"], body["seed"]) == ("SUCCESS", 7)
    assert response.headers["finish-reason"] == "SUCCESS"
    assert base64.b64decode(body["image"]).startswith(b"\x89PNG")


async def test_dalle_without_response_format_answers_with_a_url_to_the_png(fake: Fake) -> None:
    response = await fake.http.post(
        f"{fake.url}/openai/v1/images/generations",
        json={"model": "dall-e-3", "prompt": "a boat", "size": "64x64"},
        headers={"Authorization": "Bearer sk-x"},
    )

    url = response.json()["data"][0]["url"]
    image = await fake.http.get(url)
    assert image.headers["content-type"] == "image/png"
    assert image.content.startswith(b"\x89PNG")


async def test_scripts_are_matched_by_provider_and_model_in_order_and_used_up(
    fake: Fake, registry: ProviderRegistry
) -> None:
    await fake.script(provider="anthropic", reply="for anthropic")
    await fake.script(provider="openai", model="gpt-a", reply="for gpt-a", times=2)
    await fake.script(reply="for anyone")

    async def reply(model: str) -> str:
        request = ChatRequest(model=model, messages=(ChatMessage("user", "Hi"),))
        texts = [
            e.text
            async for e in registry.chat("openai").stream_chat(request)
            if isinstance(e, TextDelta)
        ]
        return "".join(texts)

    assert await reply("gpt-b") == "for anyone"
    assert await reply("gpt-a") == "for gpt-a"
    assert await reply("gpt-a") == "for gpt-a"
    assert (await reply("gpt-a")).startswith("This reply comes from the NetRoom sandbox")
    left = (await fake.http.get(f"{fake.url}/sandbox/api/providers/script")).json()["scripts"]
    assert [s["reply"] for s in left] == ["for anthropic"]


@pytest.mark.parametrize(
    ("script", "reason"),
    [
        ({"fault": {"kind": "boom"}}, "fault.kind"),
        ({"provider": "nobody"}, "provider"),
        ({"times": 0}, "times"),
        ({"replay": "typo"}, "unknown script fields: replay"),
    ],
)
async def test_invalid_script_is_refused_with_the_reason(
    fake: Fake, script: dict[str, Any], reason: str
) -> None:
    response = await fake.http.post(f"{fake.url}/sandbox/api/providers/script", json=script)

    assert response.status_code == 400
    assert reason in response.json()["error"]


async def test_deleting_scripts_and_requests_empties_both(fake: Fake) -> None:
    await fake.script(reply="x")
    await fake.http.post(f"{fake.url}/openai/v1/chat/completions", json=CHAT_BODY)

    await fake.http.delete(f"{fake.url}/sandbox/api/providers/script")
    await fake.http.delete(f"{fake.url}/sandbox/api/providers/requests")

    assert (await fake.http.get(f"{fake.url}/sandbox/api/providers/script")).json() == {
        "scripts": []
    }
    assert await fake.requests() == []


def test_generated_png_is_well_formed() -> None:
    png = make_png(37, 21, seed=5)

    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    offset, chunks = 8, {}
    while offset < len(png):
        (length,) = struct.unpack(">I", png[offset : offset + 4])
        kind = png[offset + 4 : offset + 8]
        data = png[offset + 8 : offset + 8 + length]
        (crc,) = struct.unpack(">I", png[offset + 8 + length : offset + 12 + length])
        assert zlib.crc32(kind + data) == crc
        chunks[kind] = data
        offset += 12 + length
    assert struct.unpack(">II", chunks[b"IHDR"][:8]) == (37, 21)
    assert len(zlib.decompress(chunks[b"IDAT"])) == 21 * (1 + 3 * 37)
    assert b"IEND" in chunks


async def test_fake_video_content_is_refused_without_a_key(fake: Fake) -> None:
    response = await fake.http.get(f"{fake.url}/openai/v1/videos/video_x/content")

    assert response.status_code == 401
