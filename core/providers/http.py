"""What every adapter shares: one httpx client, timeouts, safe retries and error mapping.

Retries happen only while no part of a response body has been handed to the caller: on
connection errors and timeouts before the response head, and on 408, 409, 429 and 5xx answers
(unless the provider says ``x-should-retry: false``). Waits honour ``retry-after-ms`` and
``retry-after`` (seconds or an HTTP date) and otherwise back off exponentially with jitter. A
provider asking to wait longer than ``RetryPolicy.max_retry_after`` gets no retry: the error goes
up with the wait in ``params["retry_after"]``. Once a stream has started nothing is retried,
because the reply would be generated (and billed) twice.
"""

from __future__ import annotations

import asyncio
import email.utils
import json as jsonlib
import logging
import math
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx

from core.providers.errors import (
    ContentFiltered,
    ProviderAuthFailed,
    ProviderBadRequest,
    ProviderError,
    ProviderQuotaExceeded,
    ProviderRateLimited,
    ProviderStreamBroken,
    ProviderUnavailable,
    scrub,
)

log = logging.getLogger("core.providers")

# Generous read timeout: reasoning models may think for a long while before the first byte.
DEFAULT_TIMEOUT = httpx.Timeout(connect=10.0, read=180.0, write=30.0, pool=10.0)
USER_AGENT = "NetRoom"

CONTENT_KINDS = frozenset(
    {"content_policy_violation", "moderation_blocked", "content_moderation", "content_filter"}
)
QUOTA_KINDS = frozenset(
    {"insufficient_quota", "billing_error", "billing_hard_limit_reached", "payment_required"}
)
AUTH_KINDS = frozenset(
    {"authentication_error", "permission_error", "invalid_api_key", "API_KEY_INVALID"}
)
OVERLOADED_KINDS = frozenset({"overloaded_error", "UNAVAILABLE", "server_overloaded"})
RATE_KINDS = frozenset({"rate_limit_error", "rate_limit_exceeded", "RESOURCE_EXHAUSTED"})


@dataclass(frozen=True, slots=True)
class ParsedError:
    """A provider's error body reduced to what mapping needs: its machine code or type, its
    message and any wait it asked for in the body (Gemini's RetryInfo)."""

    kind: str = ""
    message: str = ""
    retry_after: float | None = None


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    max_attempts: int = 3
    base_delay: float = 0.5
    max_delay: float = 8.0
    max_retry_after: float = 20.0
    # Injected so tests can see the waits without spending them.
    sleep: Callable[[float], Awaitable[None]] = field(default=asyncio.sleep)

    def backoff(self, attempt: int) -> float:
        delay = min(self.max_delay, self.base_delay * 2 ** (attempt - 1))
        return delay * random.uniform(0.75, 1.0)  # nosec B311 # retry jitter


def retry_after_seconds(headers: httpx.Headers) -> float | None:
    """The wait a provider asked for in its headers, in seconds."""
    millis = headers.get("retry-after-ms")
    if millis:
        try:
            return max(0.0, float(millis) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def error_for_status(
    provider: str,
    status: int,
    parsed: ParsedError,
    *,
    retry_after: float | None,
    secrets: Iterable[str | None] = (),
) -> ProviderError:
    """The domain error for a provider's non-2xx answer."""
    detail = scrub(f"{provider} HTTP {status} {parsed.kind}: {parsed.message}", secrets)
    if parsed.kind in CONTENT_KINDS:
        return ContentFiltered(detail, provider=provider)
    if parsed.kind in AUTH_KINDS or status in (401, 403):
        return ProviderAuthFailed(detail, provider=provider)
    if parsed.kind in QUOTA_KINDS or status == 402:
        return ProviderQuotaExceeded(detail, provider=provider)
    if status == 429:
        wait = retry_after if retry_after is not None else parsed.retry_after
        seconds = math.ceil(wait) if wait is not None else None
        return ProviderRateLimited(detail, provider=provider, retry_after=seconds)
    if status >= 500 or status == 408:
        return ProviderUnavailable(detail, provider=provider)
    return ProviderBadRequest(detail, provider=provider)


def error_in_stream(
    provider: str, parsed: ParsedError, *, secrets: Iterable[str | None] = ()
) -> ProviderError:
    """The domain error for an error a provider sent inside a stream it had started."""
    detail = scrub(f"{provider} in-stream error {parsed.kind}: {parsed.message}", secrets)
    if parsed.kind in CONTENT_KINDS:
        return ContentFiltered(detail, provider=provider)
    if parsed.kind in OVERLOADED_KINDS:
        return ProviderUnavailable(detail, provider=provider)
    if parsed.kind in RATE_KINDS:
        return ProviderRateLimited(detail, provider=provider, retry_after=None)
    return ProviderStreamBroken(detail, provider=provider)


def _should_retry(status: int, error: ProviderError, headers: httpx.Headers) -> bool:
    hint = headers.get("x-should-retry")
    if hint == "true":
        return True
    if hint == "false" or isinstance(error, ProviderQuotaExceeded | ContentFiltered):
        return False
    return status in (408, 409, 429) or status >= 500


class ProviderHTTP:
    """Requests to one provider's base URL with its auth headers."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        *,
        provider: str,
        base_url: str,
        headers: Mapping[str, str],
        secret: str | None,
        parse_error: Callable[[bytes], ParsedError],
        retry: RetryPolicy | None = None,
        timeout: httpx.Timeout = DEFAULT_TIMEOUT,
    ) -> None:
        self.client = client
        self.provider = provider
        self.base_url = base_url.rstrip("/")
        self._headers = {"user-agent": USER_AGENT, **headers}
        self._secret = secret
        self._parse_error = parse_error
        self.retry = retry or RetryPolicy()
        self.timeout = timeout

    def scrub(self, text: str) -> str:
        return scrub(text, [self._secret])

    def in_stream_error(self, parsed: ParsedError) -> ProviderError:
        return error_in_stream(self.provider, parsed, secrets=[self._secret])

    def broken(self, what: str) -> ProviderStreamBroken:
        return ProviderStreamBroken(self.scrub(f"{self.provider}: {what}"), provider=self.provider)

    @asynccontextmanager
    async def open(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        data: Mapping[str, Any] | None = None,
        files: Any = None,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> AsyncIterator[httpx.Response]:
        """A 2xx response whose body has not been read yet, after any safe retries."""
        url = f"{self.base_url}/{path.lstrip('/')}"
        attempt = 0
        while True:
            attempt += 1
            request = self.client.build_request(
                method,
                url,
                json=json,
                data=data,
                files=files,
                params=params,
                headers={**self._headers, **(headers or {})},
                timeout=self.timeout,
            )
            try:
                response = await self.client.send(request, stream=True)
            except httpx.TransportError as exc:
                error: ProviderError = ProviderUnavailable(
                    self.scrub(f"{self.provider}: {type(exc).__name__}: {exc}"),
                    provider=self.provider,
                )
                if attempt >= self.retry.max_attempts:
                    raise error from exc
                delay = self.retry.backoff(attempt)
                log.warning(
                    "%s unreachable (%s); retrying in %.1fs (attempt %d of %d)",
                    self.provider,
                    type(exc).__name__,
                    delay,
                    attempt,
                    self.retry.max_attempts,
                )
                await self.retry.sleep(delay)
                continue
            if response.is_success:
                try:
                    yield response
                finally:
                    await response.aclose()
                return
            try:
                body = await response.aread()
            except httpx.TransportError:
                body = b""
            finally:
                await response.aclose()
            header_wait = retry_after_seconds(response.headers)
            parsed = self._parse_error(body)
            error = error_for_status(
                self.provider,
                response.status_code,
                parsed,
                retry_after=header_wait,
                secrets=[self._secret],
            )
            wait = header_wait if header_wait is not None else parsed.retry_after
            if (
                attempt >= self.retry.max_attempts
                or not _should_retry(response.status_code, error, response.headers)
                or (wait is not None and wait > self.retry.max_retry_after)
            ):
                log.warning("%s failed: %s", self.provider, error.detail)
                raise error
            delay = wait if wait is not None else self.retry.backoff(attempt)
            log.warning(
                "%s answered HTTP %d; retrying in %.1fs (attempt %d of %d)",
                self.provider,
                response.status_code,
                delay,
                attempt,
                self.retry.max_attempts,
            )
            await self.retry.sleep(delay)

    async def request_json(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Mapping[str, str] | None = None,
    ) -> Any:
        """A whole JSON answer (non-streaming endpoints)."""
        async with self.open(method, path, json=json, params=params) as response:
            body = await self.read(response)
        try:
            return jsonlib.loads(body)
        except ValueError as exc:
            raise ProviderUnavailable(
                f"{self.provider}: the answer is not JSON", provider=self.provider
            ) from exc

    async def read(self, response: httpx.Response) -> bytes:
        try:
            return await response.aread()
        except httpx.TransportError as exc:
            raise ProviderUnavailable(
                self.scrub(f"{self.provider}: {type(exc).__name__} reading the answer"),
                provider=self.provider,
            ) from exc
