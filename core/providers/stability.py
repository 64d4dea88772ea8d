"""Stability AI v2beta image generation (``POST /stable-image/generate/{ultra,core,sd3}``).

The body is multipart even without a file; with ``accept: image/*`` the answer is the raw image
and its metadata comes in headers (``finish-reason``, ``seed``). A filtered image comes back as
200 with ``finish-reason: CONTENT_FILTERED``; a refused prompt as 403 ``content_moderation``.
"""

from __future__ import annotations

import json
from typing import Any

import httpx

from core.providers.base import ImageRequest, ImageResult
from core.providers.errors import ContentFiltered, ProviderUnavailable
from core.providers.http import DEFAULT_TIMEOUT, ParsedError, ProviderHTTP, RetryPolicy
from core.providers.imageinfo import image_size, sniff_mime

# Catalogue model ids and the endpoint that serves them; sd3 takes the model as a form field.
_ENDPOINTS = {
    "stable-image-ultra": "ultra",
    "ultra": "ultra",
    "stable-image-core": "core",
    "core": "core",
}


def parse_stability_error(body: bytes) -> ParsedError:
    """``{"id", "name", "errors": [...]}``."""
    try:
        data = json.loads(body)
    except ValueError:
        return ParsedError(message=body[:300].decode("utf-8", "replace"))
    if not isinstance(data, dict):
        return ParsedError(message=str(data)[:300])
    errors = data.get("errors")
    message = "; ".join(str(e) for e in errors) if isinstance(errors, list) else ""
    return ParsedError(kind=str(data.get("name") or ""), message=message or str(data)[:300])


def endpoint_for(model: str) -> tuple[str, str | None]:
    """The endpoint path segment and the ``model`` form field for a model id."""
    if model in _ENDPOINTS:
        return _ENDPOINTS[model], None
    return "sd3", model


class StabilityProvider:
    def __init__(
        self,
        client: httpx.AsyncClient,
        *,
        base_url: str,
        api_key: str | None,
        name: str = "stability",
        retry: RetryPolicy | None = None,
        timeout: httpx.Timeout = DEFAULT_TIMEOUT,
    ) -> None:
        self.name = name
        headers = {"accept": "image/*"}
        if api_key:
            headers["authorization"] = f"Bearer {api_key}"
        self._http = ProviderHTTP(
            client,
            provider=name,
            base_url=base_url,
            headers=headers,
            secret=api_key,
            parse_error=parse_stability_error,
            retry=retry,
            timeout=timeout,
        )

    def build_form(self, request: ImageRequest) -> dict[str, str]:
        _, model = endpoint_for(request.model)
        form: dict[str, Any] = {
            "prompt": request.prompt,
            "output_format": "png",
            "aspect_ratio": request.aspect_ratio or "1:1",
        }
        if model:
            form["model"] = model
        if request.negative_prompt:
            form["negative_prompt"] = request.negative_prompt
        if request.seed is not None:
            form["seed"] = request.seed
        return {key: str(value) for key, value in form.items()}

    async def generate_image(self, request: ImageRequest) -> ImageResult:
        endpoint, _ = endpoint_for(request.model)
        # An empty file part makes the body multipart, as the API requires.
        async with self._http.open(
            "POST",
            f"stable-image/generate/{endpoint}",
            data=self.build_form(request),
            files={"none": ("", b"")},
        ) as response:
            data = await self._http.read(response)
            headers = response.headers
        finish = headers.get("finish-reason", "SUCCESS")
        if finish == "CONTENT_FILTERED":
            raise ContentFiltered(
                f"{self.name}: finish-reason CONTENT_FILTERED", provider=self.name
            )
        mime = sniff_mime(data)
        if mime is None:
            raise ProviderUnavailable(
                f"{self.name}: the answer is not an image ({headers.get('content-type')})",
                provider=self.name,
            )
        size = image_size(data)
        seed = headers.get("seed")
        provider_data = {"finish_reason": finish}
        if headers.get("x-request-id"):
            provider_data["request_id"] = headers["x-request-id"]
        return ImageResult(
            data=data,
            mime=mime,
            width=size[0] if size else None,
            height=size[1] if size else None,
            seed=int(seed) if seed and seed.isdigit() else None,
            provider_data=provider_data,
        )
