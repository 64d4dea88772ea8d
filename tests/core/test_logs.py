"""The log's formats and its redaction (core/logs.py), through the standard logging module."""

from __future__ import annotations

import io
import json
import logging
import secrets
from collections.abc import Iterator

import pytest

from core import logs
from core.security.tokens import new_refresh_token, new_session_id, session_tag


@pytest.fixture
def capture() -> Iterator[tuple[logging.Logger, io.StringIO, logs.Redactor]]:
    stream = io.StringIO()
    redact = logs.Redactor(["configured-secret-value"])
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logs.JsonFormatter(redact))
    logger = logging.getLogger(f"netroom.test.{secrets.token_hex(4)}")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    yield logger, stream, redact
    logger.removeHandler(handler)


def _entries(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_each_record_is_one_json_line_with_the_ids_it_belongs_to(
    capture: tuple[logging.Logger, io.StringIO, logs.Redactor],
) -> None:
    logger, stream, _ = capture
    logger.info("outside")
    with logs.bound(logs.update_id, 42), logs.bound(logs.request_id, "req-1234"):
        logger.warning("inside %s", "both")
    try:
        raise ValueError("multi\nline")
    except ValueError:
        logger.exception("failed")
    first, second, third = _entries(stream)
    assert first.keys() == {"time", "level", "logger", "message"}
    assert (second["message"], second["update_id"], second["request_id"]) == (
        "inside both",
        42,
        "req-1234",
    )
    assert second["level"] == "WARNING" and second["logger"] == logger.name
    assert "ValueError: multi\nline" in str(third["exc_info"])
    assert "update_id" not in third


def test_secrets_are_taken_out_of_messages_and_tracebacks(
    capture: tuple[logging.Logger, io.StringIO, logs.Redactor],
) -> None:
    logger, stream, _ = capture
    token = f"{secrets.randbelow(10**9) + 10**9}:{secrets.token_urlsafe(27)}"
    session_id = new_session_id()
    refresh = new_refresh_token(session_id)
    init_hash = secrets.token_hex(32)
    bearer = secrets.token_urlsafe(30)
    jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIiwic2lkIjoiYSJ9.c2lnbmF0dXJlLXZhbHVl"
    logger.error("POST https://api.telegram.org/bot%s/sendMessage failed", token)
    logger.info("Authorization: Bearer %s", bearer)
    logger.info("initData query_id=AA&user=%%7B%%7D&auth_date=1&hash=%s", init_hash)
    logger.info("session %s ended; refresh %s", session_id, refresh)
    logger.info("access token %s and the configured-secret-value", jwt)
    try:
        raise RuntimeError(f"token {token} refused")
    except RuntimeError:
        logger.exception("call failed")
    text = stream.getvalue()
    for value in (token, session_id, refresh, init_hash, bearer, jwt, "configured-secret-value"):
        assert value not in text
    # A session is still told apart from others: by the tag the rest of the code logs.
    assert f"session {session_tag(session_id)} ended" in text
    assert "/bot[bot-token]/sendMessage" in text
    assert "hash=[redacted]" in text


def test_the_text_format_is_redacted_too_and_names_the_job() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logs.TextFormatter(logs.Redactor()))
    logger = logging.getLogger(f"netroom.test.{secrets.token_hex(4)}")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        with logs.bound(logs.job_id, "job-77"):
            logger.warning("Bearer %s", secrets.token_urlsafe(20))
    finally:
        logger.removeHandler(handler)
    line = stream.getvalue().strip()
    assert line.endswith("Bearer [redacted] [job_id=job-77]")
