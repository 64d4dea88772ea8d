"""The `netroom` command as an operator runs it: `run` on a bare machine, `web` in webhook mode."""

from __future__ import annotations

import asyncio
import os
import re
import secrets
import signal
import socket
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from sandbox.app import start_sandbox
from sandbox.client import SandboxClient

CLEAN_ENV = {
    k: v
    for k, v in os.environ.items()
    if not k.startswith(("BOT__", "DATABASE__", "REDIS__", "WEB__", "SANDBOX__", "DATA_DIR"))
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Service:
    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.output: list[str] = []

    async def wait_for_line(self, pattern: str, wait: float = 120) -> re.Match[str]:
        assert self.proc.stdout is not None
        regex = re.compile(pattern)
        async with asyncio.timeout(wait):
            while True:
                raw = await self.proc.stdout.readline()
                if not raw:
                    raise AssertionError("exited early:\n" + "".join(self.output[-40:]))
                line = raw.decode(errors="replace")
                self.output.append(line)
                match = regex.search(line)
                if match:
                    return match

    async def stop(self, wait: float = 30) -> int:
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
        assert self.proc.stdout is not None
        async with asyncio.timeout(wait):
            rest = await self.proc.stdout.read()
            self.output.append(rest.decode(errors="replace"))
            return await self.proc.wait()


@pytest.fixture
async def spawn() -> AsyncIterator[object]:
    started: list[Service] = []

    async def run(args: list[str], env: dict[str, str], cwd: Path) -> Service:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "netroom",
            *args,
            cwd=cwd,
            env={**CLEAN_ENV, **env},
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        service = Service(proc)
        started.append(service)
        return service

    yield run
    for service in started:
        if service.proc.returncode is None:
            service.proc.kill()
            await service.proc.wait()


async def test_run_on_a_bare_machine_starts_everything_and_stops_on_sigterm(
    tmp_path: Path, spawn: object
) -> None:
    web_port, sandbox_port = free_port(), free_port()
    service = await spawn(  # type: ignore[operator]
        ["run"],
        {
            "DATA_DIR": str(tmp_path / "data"),
            "WEB__PORT": str(web_port),
            "WEB__PUBLIC_URL": f"http://127.0.0.1:{web_port}",
            "SANDBOX__PORT": str(sandbox_port),
        },
        tmp_path,
    )
    match = await service.wait_for_line(r"Telegram sandbox: (http://\S+)")
    sandbox_url = match.group(1).rstrip("/")
    assert sandbox_url == f"http://127.0.0.1:{sandbox_port}"
    async with httpx.AsyncClient() as http:
        health = await http.get(f"http://127.0.0.1:{web_port}/healthz")
        assert health.json() == {"status": "ok", "postgres": "ok", "redis": "ok"}
    async with SandboxClient(sandbox_url) as client:
        user = await client.create_user("Newcomer", language_code="en")
        after = await client.last_seq()
        await client.send_text(user["id"], "/start")
        consent = await client.wait_for(
            lambda e: e["type"] == "bot_message", chat_id=user["id"], after=after, wait=20
        )
        assert "privacy policy" in consent["message"]["text"]
        [accept] = consent["message"]["reply_markup"]["inline_keyboard"][0]
        await client.tap(user["id"], consent["message_id"], accept["callback_data"])
        await client.wait_for(
            lambda e: e["type"] == "bot_message" and "What would you like" in e["message"]["text"],
            chat_id=user["id"],
            after=after,
            wait=20,
        )
        # Offline, the models answer from the sandbox and say so; the demo needs no balance.
        after = await client.last_seq()
        await client.send_text(user["id"], "Hello, model")
        reply = await client.wait_for(
            lambda e: e["type"] == "bot_message" and "sandbox" in (e["message"]["text"] or ""),
            chat_id=user["id"],
            after=after,
            wait=30,
        )
        assert "Hello, model" in reply["message"]["text"]
        # A voice note is transcribed by the catalogue's transcription model and answered.
        after = await client.last_seq()
        await client.send_voice(user["id"], b"Hello by voice", duration=2)
        heard = await client.wait_for(
            lambda e: e["type"] == "bot_message" and "🎙" in (e["message"]["text"] or ""),
            chat_id=user["id"],
            after=after,
            wait=30,
        )
        assert heard["message"]["text"] == "🎙 Hello by voice"
        # Support works out of the box: the demo's operator and its forum get the question.
        after = await client.last_seq()
        await client.send_text(user["id"], "/support")
        await client.wait_for(
            lambda e: e["type"] == "bot_message" and "Write your question" in e["message"]["text"],
            chat_id=user["id"],
            after=after,
            wait=20,
        )
        await client.send_text(user["id"], "Where is my invoice?")
        [desk] = [g for g in await client.groups() if g["title"] == "NetRoom support"]
        operator = next(u for u in await client.users() if u["username"] == "netroom_operator")
        assert desk["is_forum"] and operator["id"] in desk["member_ids"]
        await client.wait_for(
            lambda e: (
                e["type"] == "bot_message"
                and "Where is my invoice?" in (e["message"].get("text") or "")
            ),
            chat_id=desk["id"],
            after=after,
            wait=20,
        )
    async with httpx.AsyncClient() as http:
        # The demo's web sign-up mails its confirmation link to the sandbox's mailbox, and
        # Google sign-in goes to the sandbox's Google.
        email = "demo.user@example.test"
        registered = await http.post(
            f"http://127.0.0.1:{web_port}/api/auth/register",
            json={"email": email, "password": "a long demo phrase", "accept_policy": True},
        )
        assert registered.status_code == 202, registered.text
        mails = (await http.get(f"{sandbox_url}/sandbox/api/mail", params={"to": email})).json()
        assert "/app#confirm=" in str(mails)
        start = await http.get(
            f"http://127.0.0.1:{web_port}/api/auth/google/start?accept_policy=1",
            follow_redirects=False,
        )
        assert start.status_code == 302
        assert start.headers["location"].startswith(f"{sandbox_url}/oauth/google/authorize")
    assert await service.stop() == 0
    assert "stopped" in "".join(service.output)
    # Everything under DATA_DIR (databases, the Redis dump, tokens) is the service user's only.
    data = tmp_path / "data"
    # Run as root, the embedded Postgres runs as a user of its own and opens DATA_DIR (not what
    # is in it) for that user to pass through to its own 0700 directory.
    root = os.geteuid() == 0
    assert data.stat().st_mode & 0o777 == (0o755 if root else 0o700)
    opened = [
        (str(p.relative_to(data)), oct(p.stat().st_mode & 0o777))
        for p in data.rglob("*")
        # Sockets are guarded by their directory.
        if not p.is_symlink() and p.exists() and not p.is_socket() and p.stat().st_mode & 0o077
    ]
    assert not opened
    assert any(data.rglob("*.rdb")) and (data / "sandbox-bot-token").exists()

    # Started again: the sandbox remembers its people, as NetRoom remembers their accounts.
    again = await spawn(  # type: ignore[operator]
        ["run"],
        {
            "DATA_DIR": str(tmp_path / "data"),
            "WEB__PORT": str(web_port),
            "WEB__PUBLIC_URL": f"http://127.0.0.1:{web_port}",
            "SANDBOX__PORT": str(sandbox_port),
        },
        tmp_path,
    )
    await again.wait_for_line(r"Telegram sandbox: (http://\S+)")
    async with SandboxClient(sandbox_url) as client:
        assert user["id"] in {u["id"] for u in await client.users()}
        assert [g["title"] for g in await client.groups()] == ["NetRoom support"]
        after = await client.last_seq()
        await client.send_text(user["id"], "/balance")
        balance = await client.wait_for(
            lambda e: e["type"] == "bot_message", chat_id=user["id"], after=after, wait=20
        )
        # A known account: no consent asked again.
        assert "privacy policy" not in balance["message"]["text"]
    assert await again.stop() == 0


async def test_web_in_webhook_mode_receives_updates_with_the_secret_only(
    tmp_path: Path, spawn: object, database_url: str, redis_url: str
) -> None:
    sandbox = await start_sandbox()
    web_port = free_port()
    token = f"{secrets.randbelow(10**9) + 10**9}:{secrets.token_urlsafe(27)}"
    secret = secrets.token_urlsafe(24)
    try:
        service = await spawn(  # type: ignore[operator]
            ["web"],
            {
                "DATABASE__URL": database_url,
                "REDIS__URL": redis_url,
                "BOT__TOKEN": token,
                "BOT__API_BASE": sandbox.url,
                "BOT__WEBHOOK_URL": f"http://127.0.0.1:{web_port}",
                "BOT__WEBHOOK_SECRET": secret,
                "WEB__PORT": str(web_port),
                "DATA_DIR": str(tmp_path / "data"),
            },
            tmp_path,
        )
        await service.wait_for_line(r"NetRoom is running")
        async with SandboxClient(sandbox.url) as client:
            [bot] = await client.bots()
            assert bot["webhook"]["url"] == f"http://127.0.0.1:{web_port}/telegram/webhook"
            user = await client.create_user("Hooked", language_code="en")
            after = await client.last_seq()
            await client.send_text(user["id"], "/start")
            reply = await client.wait_for(
                lambda e: e["type"] == "bot_message", chat_id=user["id"], after=after, wait=20
            )
            assert "privacy policy" in reply["message"]["text"]
        async with httpx.AsyncClient() as http:
            forged = {
                "update_id": 1,
                "message": {
                    "message_id": 1,
                    "date": 0,
                    "chat": {"id": 1, "type": "private", "first_name": "X"},
                    "from": {"id": 1, "is_bot": False, "first_name": "X"},
                    "text": "/start",
                },
            }
            url = f"http://127.0.0.1:{web_port}/telegram/webhook"
            without = await http.post(url, json=forged)
            wrong = await http.post(
                url, json=forged, headers={"X-Telegram-Bot-Api-Secret-Token": "nope"}
            )
            assert (without.status_code, wrong.status_code) == (401, 401)
        assert await service.stop() == 0
    finally:
        await sandbox.stop()


async def test_retention_command_applies_the_periods_once(
    tmp_path: Path, spawn: object, database_url: str
) -> None:
    service = await spawn(  # type: ignore[operator]
        ["retention"], {"DATABASE__URL": database_url, "DATA_DIR": str(tmp_path)}, tmp_path
    )
    await service.wait_for_line(r"removed \d+ messages and \d+ conversations")
    assert await asyncio.wait_for(service.proc.wait(), 30) == 0
