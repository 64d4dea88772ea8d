"""The service's log: plain text for people or one JSON object per line for machines, never a
secret in either.

- ``LOG_FORMAT=json``: each record is one line ``{"time", "level", "logger", "message"}``, plus
  ``update_id`` / ``request_id`` / ``job_id`` when the record was written while handling one
  (the transports' middlewares set them in ``context``), plus ``exc_info`` with the traceback.
- Redaction happens in the formatter, the last step before a line is written, so it covers every
  logger, ours and the libraries', messages and tracebacks alike: the configured secret values
  (``secrets``), anything shaped like a bot token (also inside Bot API URLs), Bearer tokens, JWTs,
  the ``hash=`` and ``signature=`` of Mini App initData, refresh tokens, and session ids, which
  become the short tag ``session_tag`` gives (so lines about one session still match up).
"""

from __future__ import annotations

import contextlib
import contextvars
import hashlib
import json
import logging
import re
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from typing import Literal, TypeVar

LogFormat = Literal["text", "json"]
T = TypeVar("T")

update_id: contextvars.ContextVar[int | None] = contextvars.ContextVar("update_id", default=None)
request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)
job_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("job_id", default=None)
_CONTEXT = (("update_id", update_id), ("request_id", request_id), ("job_id", job_id))


@contextlib.contextmanager
def bound(var: contextvars.ContextVar[T], value: T) -> Iterator[None]:
    """``var`` is ``value`` for what runs inside (and for tasks it starts meanwhile)."""
    token = var.set(value)
    try:
        yield
    finally:
        var.reset(token)


def _session_tag(match: re.Match[str]) -> str:
    # The same short hash core.security.tokens.session_tag gives, so both kinds of line agree.
    digest = hashlib.sha256(f"netroom:session:{match.group(2)}".encode()).hexdigest()[:10]
    return f"{match.group(1)}{digest}"


_PATTERNS: tuple[tuple[re.Pattern[str], str | object], ...] = (
    # A refresh token: "<session id>.<secret>".
    (re.compile(r"\b[0-9a-f]{32}\.[A-Za-z0-9_-]{20,}"), "[refresh-token]"),
    # Also inside a Bot API URL (".../bot<token>/sendMessage").
    (re.compile(r"(?<!\d)\d{5,20}:[A-Za-z0-9_-]{30,64}"), "[bot-token]"),
    (re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]+"), r"\1[redacted]"),
    (re.compile(r"\beyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*"), "[jwt]"),
    (re.compile(r"(?i)\b(hash|signature)(=|%3D)[A-Za-z0-9_%+/=-]+"), r"\1\2[redacted]"),
)
# A session id (32 hex digits) where a line names it as one: "session 0f3a...", "sid=...",
# '"sid": "..."'. Other 32-digit hex values (job ids, file hashes) are not secrets.
_SESSION_ID = re.compile(
    r"(?i)((?:session|sid)[\s_\-:='\"]{0,4}(?:id)?[\s:='\"]{0,4})([0-9a-f]{32})\b"
)


class Redactor:
    """Takes secrets out of a line: the given values and every secret-shaped string."""

    def __init__(self, secrets: Iterable[str | None] = ()) -> None:
        # Short values would match ordinary text; real secrets are longer.
        values = sorted({s for s in secrets if s and len(s) >= 8}, key=len, reverse=True)
        self._values = re.compile("|".join(map(re.escape, values))) if values else None

    def __call__(self, text: str) -> str:
        if self._values is not None:
            text = self._values.sub("[secret]", text)
        for pattern, replacement in _PATTERNS:
            text = pattern.sub(replacement, text)  # type: ignore[arg-type]
        return _SESSION_ID.sub(_session_tag, text)


class TextFormatter(logging.Formatter):
    def __init__(self, redact: Redactor) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")
        self.redact = redact

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        context = " ".join(f"{name}={value}" for name, var in _CONTEXT if (value := var.get()))
        return self.redact(f"{line} [{context}]" if context else line)


class JsonFormatter(logging.Formatter):
    def __init__(self, redact: Redactor) -> None:
        super().__init__()
        self.redact = redact

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": self.redact(record.getMessage()),
        }
        for name, var in _CONTEXT:
            value = var.get()
            if value is not None:
                entry[name] = value
        if record.exc_info:
            entry["exc_info"] = self.redact(self.formatException(record.exc_info))
        elif record.exc_text:
            entry["exc_info"] = self.redact(record.exc_text)
        if record.stack_info:
            entry["stack_info"] = self.redact(self.formatStack(record.stack_info))
        return json.dumps(entry, ensure_ascii=False, default=str)


def configure(level: str, fmt: LogFormat = "text", secrets: Iterable[str | None] = ()) -> None:
    """The root logger writes to stderr in ``fmt``, redacted; replaces the handler an earlier
    call installed."""
    redact = Redactor(secrets)
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter(redact) if fmt == "json" else TextFormatter(redact))
    root = logging.getLogger()
    for old in root.handlers[:]:
        if isinstance(old.formatter, TextFormatter | JsonFormatter):
            root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    # Request lines carry URLs; keep them out of the default log.
    for noisy in ("httpx", "httpcore", "aiohttp.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # Their debug lines trace parsing and fonts, nothing an operator looks for.
    for chatty in ("markdown_it", "matplotlib"):
        logging.getLogger(chatty).setLevel(max(logging.INFO, root.level))
