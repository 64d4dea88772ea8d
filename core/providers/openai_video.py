"""Video generation with OpenAI's Videos API shape: ``POST /videos`` submits a job,
``GET /videos/{id}`` reports its status (queued, in_progress, completed, failed) and progress,
``GET /videos/{id}/content`` downloads the MP4. Any provider serving this shape works through the
``video`` base URL.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import httpx

from core.providers.base import VideoContent, VideoJob, VideoRequest, VideoStatus
from core.providers.errors import (
    ContentFiltered,
    ProviderError,
    ProviderUnavailable,
)
from core.providers.http import DEFAULT_TIMEOUT, RetryPolicy
from core.providers.openai_compat import openai_http

MODERATION_CODES = frozenset(
    {"moderation_blocked", "content_policy_violation", "input_moderation", "output_moderation"}
)


class OpenAIVideoProvider:
    def __init__(
        self,
        client: httpx.AsyncClient,
        *,
        base_url: str,
        api_key: str | None,
        name: str = "video",
        retry: RetryPolicy | None = None,
        timeout: httpx.Timeout = DEFAULT_TIMEOUT,
    ) -> None:
        self.name = name
        self._http = openai_http(
            client, name=name, base_url=base_url, api_key=api_key, retry=retry, timeout=timeout
        )

    async def submit_video(self, request: VideoRequest) -> VideoJob:
        body: dict[str, Any] = {"model": request.model, "prompt": request.prompt}
        if request.seconds is not None:
            body["seconds"] = str(request.seconds)
        if request.size:
            body["size"] = request.size
        return self._job(await self._http.request_json("POST", "videos", json=body))

    async def poll_video(self, job_id: str) -> VideoJob:
        return self._job(await self._http.request_json("GET", f"videos/{quote(job_id, safe='')}"))

    async def download_video(self, job_id: str) -> VideoContent:
        async with self._http.open(
            "GET", f"videos/{quote(job_id, safe='')}/content", params={"variant": "video"}
        ) as response:
            data = await self._http.read(response)
            mime = response.headers.get("content-type", "video/mp4").split(";")[0].strip()
        return VideoContent(data=data, mime=mime or "video/mp4")

    def _job(self, raw: Any) -> VideoJob:
        if not isinstance(raw, dict) or not raw.get("id") or not raw.get("status"):
            raise ProviderUnavailable(f"{self.name}: not a video job", provider=self.name)
        try:
            status = VideoStatus(str(raw["status"]))
        except ValueError as exc:
            raise ProviderUnavailable(
                f"{self.name}: unknown job status {raw['status']!r}", provider=self.name
            ) from exc
        error: ProviderError | None = None
        if status is VideoStatus.FAILED:
            failure = raw.get("error")
            if not isinstance(failure, dict):
                failure = {}
            code = str(failure.get("code") or "")
            detail = self._http.scrub(f"{self.name}: job failed {code}: {failure.get('message')}")
            if code in MODERATION_CODES:
                error = ContentFiltered(detail, provider=self.name)
            else:
                error = ProviderError(detail, provider=self.name)
        seconds = str(raw.get("seconds") or "")
        return VideoJob(
            id=str(raw["id"]),
            model=str(raw.get("model") or ""),
            status=status,
            progress=int(raw.get("progress") or 0),
            seconds=int(seconds) if seconds.isdigit() else None,
            size=raw.get("size"),
            error=error,
            provider_data={
                key: raw[key]
                for key in ("created_at", "completed_at", "expires_at")
                if raw.get(key) is not None
            },
        )
