"""Telling a dependency outage from a bug.

An exception raised because Postgres or Redis could not be reached (refused, reset, timed out,
restarting) is an outage: the request did nothing durable and can be made again once the
dependency is back, so transports answer it politely (``ServiceUnavailable``) instead of as an
internal error, and the process supervisor restarts what it stopped instead of exiting.
Anything else is not an outage and keeps its usual handling.

A connection error raised below SQLAlchemy (asyncpg's connect) reaches us as a bare ``OSError``;
it counts as Postgres's only when its traceback runs through asyncpg or SQLAlchemy, so a file
that is missing or a provider that is down is never mistaken for the database.
"""

from __future__ import annotations

import traceback
from collections.abc import Iterator
from typing import Literal

import asyncpg
import redis.exceptions
import sqlalchemy.exc

from core.errors import ServiceUnavailable

Dependency = Literal["postgres", "redis"]

_POSTGRES_ERRORS = (
    asyncpg.exceptions.PostgresConnectionError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.CrashShutdownError,
    asyncpg.exceptions.TooManyConnectionsError,
    asyncpg.exceptions.ConnectionFailureError,
    # The pool had no connection to give within its timeout (all stuck on a dead server).
    sqlalchemy.exc.TimeoutError,
)
_DRIVER_MODULES = ("asyncpg", "sqlalchemy")


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc``, what caused it, and the members of exception groups (task groups raise them)."""
    seen: set[int] = set()
    pending: list[BaseException] = [exc]
    while pending:
        current = pending.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        if isinstance(current, BaseExceptionGroup):
            pending.extend(current.exceptions)
        cause = current.__cause__ or current.__context__
        if cause is not None:
            pending.append(cause)


def _raised_in_driver(exc: BaseException) -> bool:
    for frame, _ in traceback.walk_tb(exc.__traceback__):
        module = str(frame.f_globals.get("__name__", ""))
        if module.split(".", 1)[0] in _DRIVER_MODULES:
            return True
    return False


def unreachable(exc: BaseException) -> Dependency | None:
    """The dependency whose outage raised ``exc`` (or what caused it), or None."""
    for error in _chain(exc):
        if isinstance(error, ServiceUnavailable):
            return "redis" if error.detail == "redis" else "postgres"
        if isinstance(error, redis.exceptions.ConnectionError | redis.exceptions.TimeoutError):
            # BusyLoadingError (a restarted server still loading its data) is one of these.
            return "redis"
        if isinstance(error, sqlalchemy.exc.DBAPIError) and error.connection_invalidated:
            return "postgres"
        if isinstance(error, _POSTGRES_ERRORS):
            return "postgres"
        if isinstance(error, OSError | TimeoutError) and _raised_in_driver(error):
            return "postgres"
    return None


def as_unavailable(exc: BaseException) -> ServiceUnavailable | None:
    """The polite domain error for an outage, or None when ``exc`` is not one."""
    if isinstance(exc, ServiceUnavailable):
        return exc
    dependency = unreachable(exc)
    return ServiceUnavailable(dependency) if dependency is not None else None
