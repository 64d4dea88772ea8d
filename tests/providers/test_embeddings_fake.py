"""The sandbox's OpenAI embeddings endpoint, called raw over HTTP."""

from __future__ import annotations

import base64
import math
import struct
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from sandbox.app import SandboxServer, start_sandbox

AUTH = {"Authorization": "Bearer sk-test"}


@pytest.fixture(scope="module")
async def sandbox() -> AsyncIterator[SandboxServer]:
    server = await start_sandbox()
    yield server
    await server.stop()


@pytest.fixture
async def http(sandbox: SandboxServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=f"{sandbox.url}/openai/v1/", timeout=10) as client:
        yield client


async def embed(http: httpx.AsyncClient, **body: Any) -> httpx.Response:
    return await http.post(
        "embeddings", json={"model": "text-embedding-3-small", **body}, headers=AUTH
    )


async def vectors(http: httpx.AsyncClient, texts: list[str]) -> list[list[float]]:
    response = await embed(http, input=texts)
    assert response.status_code == 200, response.text
    return [item["embedding"] for item in response.json()["data"]]


def cosine(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True))


async def test_embeddings_answer_in_openai_shape(http: httpx.AsyncClient) -> None:
    response = await embed(http, input=["Hello, world!", "second text"])

    body = response.json()
    assert response.status_code == 200
    assert body["object"] == "list"
    assert body["model"] == "text-embedding-3-small"
    assert [(d["object"], d["index"]) for d in body["data"]] == [("embedding", 0), ("embedding", 1)]
    assert all(len(d["embedding"]) == 256 for d in body["data"])
    assert body["usage"] == {"prompt_tokens": 6, "total_tokens": 6}


async def test_embeddings_of_a_single_string(http: httpx.AsyncClient) -> None:
    response = await embed(http, input="just one")

    assert [d["index"] for d in response.json()["data"]] == [0]


async def test_embeddings_are_unit_vectors_of_the_requested_size(http: httpx.AsyncClient) -> None:
    response = await embed(http, input="size me", dimensions=64)

    vector = response.json()["data"][0]["embedding"]
    assert len(vector) == 64
    assert math.isclose(math.sqrt(sum(v * v for v in vector)), 1.0)


async def test_embeddings_are_deterministic(http: httpx.AsyncClient) -> None:
    first = await vectors(http, ["The cat sat on the mat."])
    second = await vectors(http, ["The cat sat on the mat."])

    assert first == second


async def test_embeddings_of_texts_sharing_words_are_closer(http: httpx.AsyncClient) -> None:
    query, similar, unrelated = await vectors(
        http,
        [
            "how to install the server on linux",
            "Install the server on Linux with the package manager.",
            "Bananas are a good source of potassium.",
        ],
    )

    assert cosine(query, similar) > 0.5
    assert cosine(query, similar) > cosine(query, unrelated) + 0.3


async def test_embeddings_in_base64_decode_to_the_float_vector(http: httpx.AsyncClient) -> None:
    [floats] = await vectors(http, ["encode me"])
    response = await embed(http, input="encode me", encoding_format="base64")

    raw = base64.b64decode(response.json()["data"][0]["embedding"])
    decoded = struct.unpack(f"<{len(raw) // 4}f", raw)
    assert all(math.isclose(a, b, abs_tol=1e-6) for a, b in zip(decoded, floats, strict=True))


@pytest.mark.parametrize(
    "body",
    [
        {"input": []},
        {"input": ["ok", 3]},
        {"input": [[1, 2, 3]]},
        {"input": ["x"] * 2049},
        {"input": ""},
        {"input": "ok", "dimensions": 0},
        {"input": "ok", "encoding_format": "int8"},
        {"input": "ok", "model": ""},
    ],
    ids=[
        "empty-list",
        "non-string",
        "token-arrays",
        "too-many",
        "empty-string",
        "zero-dimensions",
        "bad-format",
        "no-model",
    ],
)
async def test_embeddings_refuse_invalid_requests(
    http: httpx.AsyncClient, body: dict[str, Any]
) -> None:
    response = await embed(http, **body)

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert error["message"]


async def test_embeddings_without_a_key_are_unauthorised(http: httpx.AsyncClient) -> None:
    response = await http.post("embeddings", json={"model": "m", "input": "hi"})

    assert response.status_code == 401
    assert response.json()["error"]["type"] == "invalid_request_error"


async def test_embeddings_answer_a_scripted_fault(
    http: httpx.AsyncClient, sandbox: SandboxServer
) -> None:
    script = {
        "provider": "openai",
        "model": "embed-faulty",
        "fault": {"kind": "429", "retry_after": 2},
    }
    async with httpx.AsyncClient() as control:
        posted = await control.post(f"{sandbox.url}/sandbox/api/providers/script", json=script)
        assert posted.status_code == 201

    response = await embed(http, input="hi", model="embed-faulty")

    assert response.status_code == 429
    assert response.headers["retry-after"] == "2"
    assert response.json()["error"]["code"] == "rate_limit_exceeded"
