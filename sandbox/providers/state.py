"""The fake providers' memory: scripted replies, the requests received, video jobs."""

from __future__ import annotations

import re
import secrets
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

PROVIDERS = ("openai", "anthropic", "gemini", "mistral", "compat", "stability")
FAULTS = ("429", "500", "cut", "in_stream_error", "content_filtered", "auth")
# Rough count of what one image costs in prompt tokens, as providers bill vision input.
IMAGE_TOKENS = 85
_TOKEN = re.compile(r"\w+|[^\w\s]")


def count_tokens(text: str) -> int:
    """The sandbox's tokenizer: a word or a punctuation mark is one token. Deterministic, so
    tests can predict usage exactly."""
    return len(_TOKEN.findall(text))


def chunks(text: str, size: int) -> list[str]:
    size = max(1, size)
    return [text[i : i + size] for i in range(0, len(text), size)]


@dataclass
class ProvidersOptions:
    # Pacing of streamed replies; a script may override both.
    chunk_delay_ms: int = 25
    chunk_size: int = 12
    # Polls of GET /videos/{id} until a job completes.
    video_polls: int = 3
    max_recorded: int = 200


@dataclass(frozen=True)
class Fault:
    kind: str
    # Content chunks delivered before a stream is cut, errs or gets filtered.
    after_chunks: int = 2
    retry_after: int | None = None
    # The provider's error type or code to use instead of the default one.
    error_type: str | None = None


@dataclass
class Script:
    provider: str | None = None
    model: str | None = None
    reply: str | None = None
    reasoning: str | None = None
    chunk_delay_ms: int | None = None
    chunk_size: int | None = None
    cached_tokens: int = 0
    fault: Fault | None = None
    times: int = 1
    video_polls: int | None = None

    def matches(self, provider: str, model: str) -> bool:
        return self.provider in (None, provider) and self.model in (None, model)

    @classmethod
    def from_json(cls, data: Any) -> Script:
        if not isinstance(data, dict):
            raise ValueError("a script is a JSON object")
        known = {
            "provider",
            "model",
            "reply",
            "reasoning",
            "chunk_delay_ms",
            "chunk_size",
            "cached_tokens",
            "fault",
            "times",
            "video_polls",
        }
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown script fields: {', '.join(sorted(unknown))}")
        provider = data.get("provider")
        if provider is not None and provider not in PROVIDERS:
            raise ValueError(f"provider must be one of {', '.join(PROVIDERS)}")
        fault = None
        if data.get("fault") is not None:
            raw = data["fault"]
            if not isinstance(raw, dict) or str(raw.get("kind")) not in FAULTS:
                raise ValueError(f"fault.kind must be one of {', '.join(FAULTS)}")
            fault = Fault(
                kind=str(raw["kind"]),
                after_chunks=_int(raw.get("after_chunks", 2), "fault.after_chunks", 0),
                retry_after=(
                    None
                    if raw.get("retry_after") is None
                    else _int(raw["retry_after"], "fault.retry_after", 0)
                ),
                error_type=None if raw.get("error_type") is None else str(raw["error_type"]),
            )
        return cls(
            provider=provider,
            model=None if data.get("model") is None else str(data["model"]),
            reply=None if data.get("reply") is None else str(data["reply"]),
            reasoning=None if data.get("reasoning") is None else str(data["reasoning"]),
            chunk_delay_ms=_optional_int(data.get("chunk_delay_ms"), "chunk_delay_ms", 0),
            chunk_size=_optional_int(data.get("chunk_size"), "chunk_size", 1),
            cached_tokens=_int(data.get("cached_tokens", 0), "cached_tokens", 0),
            fault=fault,
            times=_int(data.get("times", 1), "times", 1),
            video_polls=_optional_int(data.get("video_polls"), "video_polls", 1),
        )

    def to_json(self) -> dict[str, Any]:
        out = {k: v for k, v in self.__dict__.items() if k != "fault"}
        out["fault"] = None if self.fault is None else dict(self.fault.__dict__)
        return out


def _int(value: Any, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}")
    return value


def _optional_int(value: Any, name: str, minimum: int) -> int | None:
    return None if value is None else _int(value, name, minimum)


@dataclass
class VideoJob:
    id: str
    model: str
    prompt: str
    seconds: str
    size: str
    polls_needed: int
    fail: dict[str, str] | None = None
    polls: int = 0
    created_at: int = field(default_factory=lambda: int(time.time()))
    completed_at: int | None = None

    @property
    def status(self) -> str:
        if self.polls == 0:
            return "queued"
        if self.polls < self.polls_needed:
            return "in_progress"
        return "failed" if self.fail else "completed"

    def to_json(self) -> dict[str, Any]:
        status = self.status
        if status in ("completed", "failed") and self.completed_at is None:
            self.completed_at = int(time.time())
        progress = min(100, self.polls * 100 // self.polls_needed)
        return {
            "id": self.id,
            "object": "video",
            "model": self.model,
            "status": status,
            "progress": 100 if status == "completed" else progress,
            "created_at": self.created_at,
            "completed_at": self.completed_at,
            "expires_at": None if self.completed_at is None else self.completed_at + 3600,
            "prompt": self.prompt,
            "seconds": self.seconds,
            "size": self.size,
            "remixed_from_video_id": None,
            "error": self.fail if status == "failed" else None,
        }


class ProvidersState:
    def __init__(self, options: ProvidersOptions | None = None) -> None:
        self.options = options or ProvidersOptions()
        self.scripts: list[Script] = []
        self.requests: deque[dict[str, Any]] = deque(maxlen=self.options.max_recorded)
        self.videos: dict[str, VideoJob] = {}
        self.files: dict[str, bytes] = {}

    def take_script(self, provider: str, model: str) -> Script | None:
        """The first queued script for this provider and model, used up after ``times``."""
        for i, script in enumerate(self.scripts):
            if script.matches(provider, model):
                script.times -= 1
                if script.times <= 0:
                    del self.scripts[i]
                return script
        return None

    def record(self, entry: dict[str, Any]) -> None:
        self.requests.append(entry)

    def new_id(self, prefix: str) -> str:
        return f"{prefix}{secrets.token_hex(12)}"
