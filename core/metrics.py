"""Prometheus metrics: every metric of the service, defined once, on the default registry.

Each NetRoom process (``netroom run``, ``web``, ``bot``, ``worker``) is one Python process
serving its own metrics: the web app at ``/metrics``, ``bot`` and ``worker`` on
``METRICS__PORT``. No two processes share a port (``netroom run`` runs every role in one
process), so prometheus_client's single-process mode is the right one and Prometheus scrapes
each process as its own target (its ``instance`` label tells them apart).

The metrics are counted at the boundaries: the bot's update middleware, the Bot API session
middleware, the web app's request middleware, the provider registry's adapters, where a turn
ends, the ledger's steps, where a payment is credited, the job middleware. Labels hold only
bounded values (update types, route patterns, provider and model ids from the catalogue, job
names), never user ids or free text.

Scrapes are answered by ``exposition``, which first runs the process's refreshers (the queue
depth is read from Redis then, not polled in the background). Access: a request from this
machine that did not come through a proxy, or one bearing ``METRICS__TOKEN`` (``authorized``).
"""

from __future__ import annotations

import hmac
import logging
import time
from collections.abc import Awaitable, Callable, Iterable

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

log = logging.getLogger(__name__)

# Seconds: from a few milliseconds (a button press) to the length of a long reply.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
TURN_BUCKETS = (0.1, 0.25, 0.5, 1, 2, 3, 5, 8, 13, 20, 30, 60, 120, 300)

UPDATES = Counter(
    "netroom_updates_total",
    "Telegram updates handled by the bot, by update type and result (ok, error).",
    ["type", "result"],
)
UPDATE_SECONDS = Histogram(
    "netroom_update_duration_seconds",
    "Time to handle one Telegram update, by update type.",
    ["type"],
    buckets=LATENCY_BUCKETS,
)

TURNS = Counter(
    "netroom_turns_total",
    "Chat turns by how they ended (complete, stopped, cut, failed, undelivered) and provider.",
    ["outcome", "provider"],
)
TURN_FIRST_TEXT_SECONDS = Histogram(
    "netroom_turn_first_text_seconds",
    "From the start of a turn to the model's first text, by provider.",
    ["provider"],
    buckets=TURN_BUCKETS,
)
TURN_FINAL_SECONDS = Histogram(
    "netroom_turn_final_seconds",
    "From the start of a turn to its final message (settled and told), by provider.",
    ["provider"],
    buckets=TURN_BUCKETS,
)

PROVIDER_CALLS = Counter(
    "netroom_provider_calls_total",
    "Calls to model providers, by provider, model and kind (chat, image, video).",
    ["provider", "model", "kind"],
)
PROVIDER_ERRORS = Counter(
    "netroom_provider_errors_total",
    "Failed calls to model providers, by provider, model and error code.",
    ["provider", "model", "code"],
)
PROVIDER_TOKENS = Counter(
    "netroom_provider_tokens_total",
    "Tokens the providers reported, by provider, model and direction (input, output).",
    ["provider", "model", "direction"],
)

LEDGER_OPERATIONS = Counter(
    "netroom_ledger_operations_total",
    "Ledger steps (credit, debit, reserve, settle, release) by result (applied, replayed, "
    "refused).",
    ["operation", "result"],
)
PAYMENTS = Counter(
    "netroom_payments_total",
    "Payments by provider (stars, yookassa) and outcome (credited, duplicate, refused, refunded).",
    ["provider", "outcome"],
)

TELEGRAM_CALLS = Counter(
    "netroom_telegram_api_calls_total",
    "Bot API requests by method and result (ok, 429, error).",
    ["method", "result"],
)

JOB_QUEUE_DEPTH = Gauge(
    "netroom_job_queue_depth",
    "Jobs in the queue: waiting (not yet taken), pending (taken, not acknowledged), dead.",
    ["state"],
)
JOB_RUNS = Counter(
    "netroom_job_runs_total",
    "Background job runs by job and status (ok, error).",
    ["job", "status"],
)
JOB_SECONDS = Histogram(
    "netroom_job_duration_seconds",
    "Time a background job ran, by job.",
    ["job"],
    buckets=LATENCY_BUCKETS,
)
JOB_LAST_SUCCESS = Gauge(
    "netroom_job_last_success_timestamp_seconds",
    "When each job last succeeded in this process (Unix time).",
    ["job"],
)

WEB_REQUESTS = Counter(
    "netroom_web_requests_total",
    "Web app requests by method, route pattern and status code.",
    ["method", "route", "status"],
)
WEB_SECONDS = Histogram(
    "netroom_web_request_duration_seconds",
    "Time to answer a web request (a stream: until it ended), by method and route pattern.",
    ["method", "route"],
    buckets=LATENCY_BUCKETS,
)

NAMES = frozenset(
    m._name
    for m in (
        UPDATES,
        UPDATE_SECONDS,
        TURNS,
        TURN_FIRST_TEXT_SECONDS,
        TURN_FINAL_SECONDS,
        PROVIDER_CALLS,
        PROVIDER_ERRORS,
        PROVIDER_TOKENS,
        LEDGER_OPERATIONS,
        PAYMENTS,
        TELEGRAM_CALLS,
        JOB_QUEUE_DEPTH,
        JOB_RUNS,
        JOB_SECONDS,
        JOB_LAST_SUCCESS,
        WEB_REQUESTS,
        WEB_SECONDS,
    )
)

Refresher = Callable[[], Awaitable[None]]


def ledger(operation: str, result: str) -> None:
    LEDGER_OPERATIONS.labels(operation, result).inc()


def payment(provider: str, outcome: str) -> None:
    PAYMENTS.labels(provider, outcome).inc()


def job_finished(job: str, *, ok: bool, seconds: float) -> None:
    JOB_RUNS.labels(job, "ok" if ok else "error").inc()
    JOB_SECONDS.labels(job).observe(seconds)
    if ok:
        JOB_LAST_SUCCESS.labels(job).set(time.time())


def authorized(token: str | None, authorization: str | None, *, local: bool) -> bool:
    """Whether a scrape may read the metrics: a local request that came through no proxy, or
    one with ``Authorization: Bearer <METRICS__TOKEN>`` (compared in constant time)."""
    if token and authorization:
        scheme, _, given = authorization.partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(given.strip(), token):
            return True
    return local


async def exposition(
    refreshers: Iterable[Refresher] = (), registry: CollectorRegistry = REGISTRY
) -> tuple[bytes, str]:
    """The text a scrape gets, and its content type, after the refreshers ran (one that fails
    leaves its gauges as they were and is logged, never failing the scrape)."""
    for refresh in refreshers:
        try:
            await refresh()
        except Exception as exc:
            log.debug("metrics: a refresher failed: %s", type(exc).__name__)
    return generate_latest(registry), CONTENT_TYPE_LATEST
