"""Supervision of roles and the telling of outages from bugs, with real refused connections:
Postgres and Redis at ports nothing listens on, and the suite's live Redis for recovery."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest
from redis.asyncio import Redis
from sqlalchemy import text

from core.errors import ServiceUnavailable
from core.outages import as_unavailable, unreachable
from db.engine import create_engine
from netroom.supervise import Backoff, supervise

DEAD_REDIS = "redis://127.0.0.1:1/0"
DEAD_POSTGRES = "postgresql://postgres@127.0.0.1:1/netroom"
QUICK = Backoff(first=0.05, longest=0.2)


async def _redis_error() -> Exception:
    client = Redis.from_url(DEAD_REDIS, socket_connect_timeout=1, retry=None)
    try:
        await client.ping()
    except Exception as exc:
        return exc
    finally:
        await client.aclose()
    raise AssertionError("nothing listens there")


async def _postgres_error() -> Exception:
    engine = create_engine(DEAD_POSTGRES, pool_size=1)
    try:
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
    except Exception as exc:
        return exc
    finally:
        await engine.dispose()
    raise AssertionError("nothing listens there")


async def test_refused_connections_to_redis_and_postgres_are_outages() -> None:
    assert unreachable(await _redis_error()) == "redis"
    postgres = await _postgres_error()
    # asyncpg's refusal reaches us as a bare OSError, told apart by where it was raised.
    assert isinstance(postgres, OSError)
    assert unreachable(postgres) == "postgres"
    outage = as_unavailable(postgres)
    assert isinstance(outage, ServiceUnavailable) and outage.code == "unavailable"


async def test_an_outage_inside_a_task_group_or_a_wrapper_is_still_an_outage() -> None:
    group = ExceptionGroup("task group", [await _redis_error()])
    assert unreachable(group) == "redis"
    try:
        try:
            raise await _postgres_error()
        except OSError as exc:
            raise RuntimeError("the job failed") from exc
    except RuntimeError as wrapped:
        assert unreachable(wrapped) == "postgres"


async def test_other_errors_are_not_outages(tmp_path: Path) -> None:
    try:
        (tmp_path / "missing").read_bytes()
    except OSError as exc:
        # A missing file is no database outage, though it is an OSError too.
        assert unreachable(exc) is None
    assert unreachable(ValueError("a bug")) is None
    assert as_unavailable(ValueError("a bug")) is None


async def test_a_role_failing_on_redis_is_restarted_until_it_is_back_and_logged_once(
    redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="netroom.supervise")
    stop = asyncio.Event()
    runs = 0
    served = asyncio.Event()

    async def role() -> None:
        nonlocal runs
        runs += 1
        # Down for the first four starts, then back.
        client = Redis.from_url(DEAD_REDIS if runs <= 4 else redis_url, retry=None)
        try:
            await client.ping()
            served.set()
            await stop.wait()
        finally:
            await client.aclose()

    supervisor = asyncio.create_task(supervise("role", role, stop, backoff=QUICK, steady=0.3))
    async with asyncio.timeout(10):
        await served.wait()
    # Steady for longer than ``steady``: recovered.
    await asyncio.sleep(0.6)
    assert "role is running again" in caplog.text
    stop.set()
    async with asyncio.timeout(5):
        await supervisor
    assert runs == 5
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert [r.getMessage() for r in warnings] == [
        "role stopped: redis is unreachable (ConnectionError); starting it again until it is back"
    ]


async def test_a_role_that_crashes_is_restarted_and_stop_ends_supervision_during_backoff(
    caplog: pytest.LogCaptureFixture,
) -> None:
    stop = asyncio.Event()
    third = asyncio.Event()
    runs = 0

    async def role() -> None:
        nonlocal runs
        runs += 1
        if runs == 3:
            third.set()
        raise ValueError("a bug")

    supervisor = asyncio.create_task(
        supervise("role", role, stop, backoff=Backoff(first=0.05, longest=30.0))
    )
    async with asyncio.timeout(10):
        await third.wait()
    # Backing off for seconds now; a stop ends it at once.
    await asyncio.sleep(0.3)
    stop.set()
    async with asyncio.timeout(1):
        await supervisor
    # The traceback is logged once, not on every restart.
    assert len([r for r in caplog.records if r.levelno == logging.ERROR]) == 1


async def test_a_new_kind_of_failure_during_an_outage_is_logged_too(
    caplog: pytest.LogCaptureFixture,
) -> None:
    stop = asyncio.Event()
    fifth = asyncio.Event()
    runs = 0
    outage = await _redis_error()

    async def role() -> None:
        nonlocal runs
        runs += 1
        if runs == 5:
            fifth.set()
            await stop.wait()
            return
        raise outage if runs <= 2 else ValueError("a bug")

    supervisor = asyncio.create_task(supervise("role", role, stop, backoff=QUICK))
    async with asyncio.timeout(10):
        await fifth.wait()
    stop.set()
    async with asyncio.timeout(5):
        await supervisor
    said = [(r.levelno, r.getMessage()) for r in caplog.records if r.levelno >= logging.WARNING]
    assert said == [
        (
            logging.WARNING,
            "role stopped: redis is unreachable (ConnectionError); starting it again until it "
            "is back",
        ),
        (logging.ERROR, "role failed; starting it again"),
    ]
