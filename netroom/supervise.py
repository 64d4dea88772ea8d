"""Keeping a process up while its dependencies come and go.

Two supervisors, one per kind of thing that can die under a running process:

- ``supervise(name, run, stop)`` runs one role (the worker, the scheduler, the bot's polling)
  until ``stop`` is set, and starts it again with backoff whenever it fails: a role never takes
  the process down with it. A failure because Postgres or Redis is unreachable is logged once,
  as a warning, when the outage begins, and once more when the role has run steadily again; a
  failure of any other kind is logged once with its traceback. Retries in between are quiet
  unless the kind of failure changes.
- ``ServerWatch`` looks after the embedded Postgres and Redis of ``netroom run`` (and of the
  other commands when nothing is configured): when a server's process has died it is started
  again on the same data and socket, with backoff, from a thread of its own, so the event loop
  never waits for a server to start. Clients keep their URLs and reconnect by themselves.

Only ``stop`` (a signal) ends a supervised role; nothing here ever exits the process.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from core.outages import unreachable

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Backoff:
    """Waits between restarts: ``first``, doubling up to ``longest``."""

    first: float = 0.5
    longest: float = 10.0

    def next(self, current: float | None) -> float:
        return self.first if current is None else min(current * 2, self.longest)


ROLE_BACKOFF = Backoff()
# A role that has run this long without failing has recovered.
STEADY_SECONDS = 3.0


async def _wait_or_stop(stop: asyncio.Event, seconds: float) -> bool:
    """Sleep ``seconds``; True when ``stop`` was set meanwhile."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            await stop.wait()
    return stop.is_set()


async def supervise(
    name: str,
    run: Callable[[], Awaitable[None]],
    stop: asyncio.Event,
    *,
    backoff: Backoff = ROLE_BACKOFF,
    steady: float = STEADY_SECONDS,
) -> None:
    """Run ``run()`` until ``stop`` is set, restarting it whenever it fails or ends early."""
    loop = asyncio.get_running_loop()
    delay: float | None = None
    trouble_since: float | None = None
    last_trouble: str | None = None
    while not stop.is_set():
        task = asyncio.ensure_future(run())
        try:
            done, _ = await asyncio.wait([task], timeout=steady)
            if not done and trouble_since is not None:
                log.info("%s is running again after %.0f s", name, loop.time() - trouble_since)
                trouble_since, delay = None, None
            if not done:
                await asyncio.wait([task])
        except asyncio.CancelledError:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
            raise
        error = None if task.cancelled() else task.exception()
        if error is None and stop.is_set():
            return
        if trouble_since is None:
            trouble_since, last_trouble = loop.time(), None
        dependency = unreachable(error) if error is not None else None
        # Said once per episode, and again only when the kind of trouble changes.
        trouble = dependency or (type(error).__name__ if error is not None else "ended")
        if trouble == last_trouble:
            log.debug("%s: still failing (%r)", name, error)
        elif error is None:
            log.warning("%s ended by itself; starting it again", name)
        elif dependency is not None:
            log.warning(
                "%s stopped: %s is unreachable (%s); starting it again until it is back",
                name,
                dependency,
                type(error).__name__,
            )
        else:
            log.error("%s failed; starting it again", name, exc_info=error)
        last_trouble = trouble
        delay = backoff.next(delay)
        if await _wait_or_stop(stop, delay):
            return


class EmbeddedServer(Protocol):
    def alive(self) -> bool: ...

    def restart(self) -> None: ...


SERVER_BACKOFF = Backoff(first=0.5, longest=10.0)


class ServerWatch:
    """A thread that starts embedded servers again when their process has died."""

    def __init__(
        self,
        servers: dict[str, EmbeddedServer],
        *,
        every: float = 0.5,
        backoff: Backoff = SERVER_BACKOFF,
    ) -> None:
        self.servers = servers
        self.every = every
        self.backoff = backoff
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="embedded-servers", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stop watching (before the servers are stopped on purpose) and wait for a restart in
        progress to finish."""
        self._stop.set()
        self._thread.join(timeout=30)

    def _watch(self) -> None:
        down_since: dict[str, float] = {}
        retry_at: dict[str, float] = {}
        delay: dict[str, float | None] = {}
        while not self._stop.wait(self.every):
            for name, server in self.servers.items():
                if self._stop.is_set():
                    return
                try:
                    alive = server.alive()
                except Exception:
                    log.exception("embedded %s: its state could not be read", name)
                    continue
                now = time.monotonic()
                if alive:
                    if name in down_since:
                        log.info(
                            "embedded %s is back after %.1f s", name, now - down_since.pop(name)
                        )
                        retry_at.pop(name, None)
                        delay.pop(name, None)
                    continue
                if name not in down_since:
                    down_since[name] = now
                    log.warning("embedded %s died; starting it again", name)
                if now < retry_at.get(name, 0.0):
                    continue
                try:
                    server.restart()
                except Exception as exc:
                    first = name not in delay
                    wait = self.backoff.next(delay.get(name))
                    delay[name] = wait
                    retry_at[name] = time.monotonic() + wait
                    # The first refusal says why; the retries after it are quiet.
                    log.log(
                        logging.WARNING if first else logging.DEBUG,
                        "embedded %s did not start yet (%s); trying again with backoff",
                        name,
                        type(exc).__name__,
                    )
