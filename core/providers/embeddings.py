"""Text embeddings over an OpenAI-compatible ``/embeddings`` endpoint (OpenAI, or any server
with the same API), for searching uploaded documents by meaning."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import httpx

from core.providers.errors import ProviderUnavailable
from core.providers.http import DEFAULT_TIMEOUT, RetryPolicy
from core.providers.openai_compat import openai_http

BATCH = 128


@dataclass(frozen=True, slots=True)
class Embeddings:
    vectors: tuple[tuple[float, ...], ...]
    tokens: int


class OpenAIEmbeddings:
    def __init__(
        self,
        client: httpx.AsyncClient,
        *,
        base_url: str,
        api_key: str | None,
        model: str,
        dimensions: int,
        name: str = "openai",
        retry: RetryPolicy | None = None,
        timeout: httpx.Timeout = DEFAULT_TIMEOUT,
    ) -> None:
        self.name = name
        self.model = model
        self.dimensions = dimensions
        self._http = openai_http(
            client, name=name, base_url=base_url, api_key=api_key, retry=retry, timeout=timeout
        )

    async def embed(self, texts: list[str]) -> Embeddings:
        """Unit-length vectors, one per text, in order; the tokens the provider counted."""
        vectors: list[tuple[float, ...]] = []
        tokens = 0
        for start in range(0, len(texts), BATCH):
            batch = texts[start : start + BATCH]
            body: dict[str, Any] = {
                "model": self.model,
                "input": batch,
                "dimensions": self.dimensions,
                "encoding_format": "float",
            }
            data = await self._http.request_json("POST", "/embeddings", json=body)
            try:
                items = sorted(data["data"], key=lambda item: int(item["index"]))
                found = [tuple(float(x) for x in item["embedding"]) for item in items]
                tokens += int((data.get("usage") or {}).get("total_tokens") or 0)
            except (KeyError, TypeError, ValueError) as exc:
                raise ProviderUnavailable(
                    f"{self.name}: unexpected embeddings answer", provider=self.name
                ) from exc
            if len(found) != len(batch):
                raise ProviderUnavailable(
                    f"{self.name}: {len(found)} embeddings for {len(batch)} texts",
                    provider=self.name,
                )
            vectors.extend(_unit(v) for v in found)
        return Embeddings(tuple(vectors), tokens)


def _unit(vector: tuple[float, ...]) -> tuple[float, ...]:
    norm = math.sqrt(sum(x * x for x in vector)) or 1.0
    return tuple(x / norm for x in vector)
