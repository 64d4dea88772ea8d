"""What every model adapter takes and gives: requests, stream events, results and the protocols.

Adapters speak each provider's wire format; everything above them sees only these types.

A chat stream is a sequence of ``TextDelta`` and ``ReasoningDelta`` events, then at most one
``UsageReport`` (missing only when an OpenAI-compatible server reports no usage), then exactly one
``Finished``. A stream that ends any other way raises a ``ProviderError`` instead; whatever was
yielded before stays delivered. ``stream_chat`` returns an async generator: consumers that stop
early (a Stop button) close it, ``async with contextlib.aclosing(provider.stream_chat(...))``, so
the provider connection is released at once.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal, Protocol

from core.providers.errors import ProviderError


@dataclass(frozen=True, slots=True)
class TextPart:
    text: str


@dataclass(frozen=True, slots=True)
class ImagePart:
    data: bytes
    mime: str

    def __repr__(self) -> str:
        # Image bytes would flood logs and tracebacks.
        return f"ImagePart(mime={self.mime!r}, size={len(self.data)})"


ContentPart = TextPart | ImagePart
Role = Literal["user", "assistant"]


@dataclass(frozen=True, slots=True)
class ChatMessage:
    role: Role
    content: str | tuple[ContentPart, ...]

    @property
    def parts(self) -> tuple[ContentPart, ...]:
        if isinstance(self.content, str):
            return (TextPart(self.content),)
        return self.content

    @property
    def text(self) -> str:
        """The message's text parts joined, without its images."""
        return "\n".join(p.text for p in self.parts if isinstance(p, TextPart))


@dataclass(frozen=True, slots=True)
class ChatRequest:
    """One model call. ``system`` is sent the way each provider expects a system prompt;
    ``messages`` alternate user and assistant turns and end with the user's."""

    model: str
    messages: tuple[ChatMessage, ...]
    system: str | None = None
    # None: the provider's default (Anthropic, which requires one, gets 8192).
    max_output_tokens: int | None = None
    temperature: float | None = None
    # Ask the model to think first and stream its reasoning where the provider returns it.
    reasoning: bool = False
    # Let the model search the web where the provider offers it.
    web_search: bool = False


@dataclass(frozen=True, slots=True)
class Usage:
    """Token counts as the provider reported them, in one meaning for every provider.

    ``input_tokens`` counts every prompt token, cached ones included; ``cached_input_tokens`` is
    the part of it read from the provider's prompt cache. ``output_tokens`` counts every generated
    token the provider bills, reasoning included; ``reasoning_tokens`` is the part of it spent on
    reasoning (0 where the provider does not break it out).
    """

    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int = 0
    reasoning_tokens: int = 0


class FinishReason(StrEnum):
    STOP = "stop"
    # The reply hit max_output_tokens or the context window.
    LENGTH = "length"
    OTHER = "other"


@dataclass(frozen=True, slots=True)
class TextDelta:
    text: str


@dataclass(frozen=True, slots=True)
class ReasoningDelta:
    text: str


@dataclass(frozen=True, slots=True)
class UsageReport:
    usage: Usage


@dataclass(frozen=True, slots=True)
class Finished:
    reason: FinishReason


StreamEvent = TextDelta | ReasoningDelta | UsageReport | Finished


class ChatProvider(Protocol):
    name: str

    def stream_chat(self, request: ChatRequest) -> AsyncGenerator[StreamEvent, None]: ...


@dataclass(frozen=True, slots=True)
class ImageRequest:
    model: str
    prompt: str
    negative_prompt: str | None = None
    # "1024x1024" for providers that take a size, e.g. OpenAI.
    size: str | None = None
    # "16:9" for providers that take an aspect ratio, e.g. Stability.
    aspect_ratio: str | None = None
    seed: int | None = None
    quality: str | None = None


@dataclass(frozen=True, slots=True)
class ImageResult:
    data: bytes
    mime: str
    width: int | None = None
    height: int | None = None
    seed: int | None = None
    usage: Usage | None = None
    # What the provider said about the image (revised prompt, request id, finish reason).
    provider_data: Mapping[str, Any] = field(default_factory=dict)

    def __repr__(self) -> str:
        return (
            f"ImageResult(mime={self.mime!r}, size={len(self.data)}, "
            f"width={self.width}, height={self.height}, seed={self.seed})"
        )


class ImageProvider(Protocol):
    name: str

    async def generate_image(self, request: ImageRequest) -> ImageResult: ...


class VideoStatus(StrEnum):
    QUEUED = "queued"
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class VideoRequest:
    model: str
    prompt: str
    # Whole seconds; providers accept only some lengths (OpenAI: 4, 8, 12).
    seconds: int | None = None
    size: str | None = None


@dataclass(frozen=True, slots=True)
class VideoJob:
    id: str
    model: str
    status: VideoStatus
    progress: int = 0
    seconds: int | None = None
    size: str | None = None
    # Why the job failed, as the domain error a user would be shown.
    error: ProviderError | None = field(default=None, compare=False)
    provider_data: Mapping[str, Any] = field(default_factory=dict, compare=False)

    @property
    def done(self) -> bool:
        return self.status in (VideoStatus.COMPLETED, VideoStatus.FAILED)


@dataclass(frozen=True, slots=True)
class VideoContent:
    data: bytes
    mime: str

    def __repr__(self) -> str:
        return f"VideoContent(mime={self.mime!r}, size={len(self.data)})"


class VideoProvider(Protocol):
    name: str

    async def submit_video(self, request: VideoRequest) -> VideoJob: ...

    async def poll_video(self, job_id: str) -> VideoJob: ...

    async def download_video(self, job_id: str) -> VideoContent: ...


@dataclass(frozen=True, slots=True)
class TranscriptionRequest:
    model: str
    data: bytes
    mime: str
    filename: str = "voice.ogg"
    # An ISO-639-1 hint; None lets the model tell.
    language: str | None = None

    def __repr__(self) -> str:
        # Audio bytes would flood logs and tracebacks.
        return (
            f"TranscriptionRequest(model={self.model!r}, mime={self.mime!r}, size={len(self.data)})"
        )


@dataclass(frozen=True, slots=True)
class Transcript:
    text: str
    # The audio's length as the provider billed it, when it says.
    seconds: int | None = None


class TranscriptionProvider(Protocol):
    name: str

    async def transcribe(self, request: TranscriptionRequest) -> Transcript: ...


@dataclass(frozen=True, slots=True)
class SpeechRequest:
    model: str
    text: str
    voice: str


@dataclass(frozen=True, slots=True)
class Speech:
    data: bytes
    mime: str

    def __repr__(self) -> str:
        return f"Speech(mime={self.mime!r}, size={len(self.data)})"


class SpeechProvider(Protocol):
    name: str

    async def speak(self, request: SpeechRequest) -> Speech: ...
