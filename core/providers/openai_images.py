"""OpenAI image generation (``POST /images/generations``).

GPT image models always answer with ``b64_json`` and report token usage; DALL·E models answer
with a URL unless asked for ``b64_json``, which we always do, so the image never has to be fetched
from a third host.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

import httpx

from core.providers.base import ImageRequest, ImageResult, Usage
from core.providers.errors import ProviderUnavailable
from core.providers.http import DEFAULT_TIMEOUT, RetryPolicy
from core.providers.imageinfo import image_size, sniff_mime
from core.providers.openai_compat import openai_http

_FORMATS = {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp"}


def _usage(raw: Any) -> Usage | None:
    if not isinstance(raw, dict):
        return None
    details = raw.get("input_tokens_details") or {}
    return Usage(
        input_tokens=int(raw.get("input_tokens") or 0),
        output_tokens=int(raw.get("output_tokens") or 0),
        cached_input_tokens=int(details.get("cached_tokens") or 0),
    )


class OpenAIImageProvider:
    def __init__(
        self,
        client: httpx.AsyncClient,
        *,
        base_url: str,
        api_key: str | None,
        name: str = "openai",
        retry: RetryPolicy | None = None,
        timeout: httpx.Timeout = DEFAULT_TIMEOUT,
    ) -> None:
        self.name = name
        self._http = openai_http(
            client, name=name, base_url=base_url, api_key=api_key, retry=retry, timeout=timeout
        )

    def build_body(self, request: ImageRequest) -> dict[str, Any]:
        body: dict[str, Any] = {"model": request.model, "prompt": request.prompt, "n": 1}
        if request.size:
            body["size"] = request.size
        if request.quality:
            body["quality"] = request.quality
        if request.model.startswith("dall-e"):
            body["response_format"] = "b64_json"
        return body

    async def generate_image(self, request: ImageRequest) -> ImageResult:
        answer = await self._http.request_json(
            "POST", "images/generations", json=self.build_body(request)
        )
        items = answer.get("data") if isinstance(answer, dict) else None
        if not items or not isinstance(items[0], dict):
            raise ProviderUnavailable(f"{self.name}: no image in the answer", provider=self.name)
        item = items[0]
        if item.get("b64_json"):
            try:
                data = base64.b64decode(item["b64_json"], validate=True)
            except (binascii.Error, ValueError) as exc:
                raise ProviderUnavailable(
                    f"{self.name}: the image is not valid base64", provider=self.name
                ) from exc
        else:
            raise ProviderUnavailable(f"{self.name}: no image in the answer", provider=self.name)
        mime = sniff_mime(data) or _FORMATS.get(str(answer.get("output_format")), "image/png")
        size = image_size(data)
        provider_data = {
            key: answer[key]
            for key in ("created", "size", "quality", "output_format", "background")
            if answer.get(key) is not None
        }
        if item.get("revised_prompt"):
            provider_data["revised_prompt"] = item["revised_prompt"]
        return ImageResult(
            data=data,
            mime=mime,
            width=size[0] if size else None,
            height=size[1] if size else None,
            usage=_usage(answer.get("usage")),
            provider_data=provider_data,
        )
