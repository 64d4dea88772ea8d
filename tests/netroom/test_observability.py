"""Operating NetRoom as its operator does: `netroom web` (bot in webhook mode) and `netroom
worker --scheduler` with LOG_FORMAT=json and their metrics, driven through the sandbox (a chat
turn, a Stars payment, a Mini App sign-in and a token refresh), then every log line parsed and
searched for secrets, and the metrics scraped over HTTP."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from core.providers.settings import sandbox_providers
from sandbox.app import SandboxServer, start_sandbox
from sandbox.client import SandboxClient
from tests.metrics_scrape import grew, parse, total
from tests.netroom.running import Running
from tests.netroom.test_cli import CLEAN_ENV, free_port


def _provider_env(sandbox_url: str) -> dict[str, str]:
    env = {}
    providers = sandbox_providers(sandbox_url)
    for name in type(providers).model_fields:
        settings = providers.get(name)
        assert settings.api_key is not None
        env[f"PROVIDERS__{name.upper()}__API_KEY"] = settings.api_key.get_secret_value()
        env[f"PROVIDERS__{name.upper()}__BASE_URL"] = settings.base_url
    return env


@pytest.fixture
async def sandbox() -> AsyncIterator[SandboxServer]:
    server = await start_sandbox()
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture
async def started() -> AsyncIterator[list[Running]]:
    running: list[Running] = []
    yield running
    for service in running:
        if service.proc.returncode is None:
            service.proc.kill()
            await service.proc.wait()


async def _spawn(args: list[str], env: dict[str, str], cwd: Path, log: Path) -> Running:
    with log.open("wb") as stderr:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "netroom",
            *args,
            cwd=cwd,
            env={**CLEAN_ENV, **env},
            stdout=asyncio.subprocess.PIPE,
            stderr=stderr,
        )
    return Running(proc)


def _log_lines(path: Path) -> list[dict[str, Any]]:
    lines = path.read_text().splitlines()
    assert lines, f"nothing was logged to {path}"
    parsed = []
    for line in lines:
        entry = json.loads(line)
        assert isinstance(entry, dict), line
        assert {"time", "level", "logger", "message"} <= entry.keys(), line
        parsed.append(entry)
    return parsed


async def test_json_logs_hold_no_secret_and_metrics_count_a_turn_and_a_payment(
    tmp_path: Path,
    sandbox: SandboxServer,
    started: list[Running],
    database_url: str,
    redis_url: str,
) -> None:
    web_port, worker_port = free_port(), free_port()
    web_url = f"http://127.0.0.1:{web_port}"
    token = f"{secrets.randbelow(10**9) + 10**9}:{secrets.token_urlsafe(27)}"
    secret_values = {
        "bot token": token,
        "webhook secret": secrets.token_urlsafe(24),
        "jwt secret": secrets.token_urlsafe(48),
        "metrics token": secrets.token_urlsafe(24),
    }
    common = {
        "DATABASE__URL": database_url,
        "REDIS__URL": redis_url,
        "BOT__TOKEN": token,
        "BOT__API_BASE": sandbox.url,
        "WEB__PUBLIC_URL": web_url,
        "WEB__JWT_SECRET": secret_values["jwt secret"],
        "METRICS__TOKEN": secret_values["metrics token"],
        "DATA_DIR": str(tmp_path / "data"),
        "LOG_FORMAT": "json",
        "LOG_LEVEL": "DEBUG",
        **_provider_env(sandbox.url),
    }
    async with SandboxClient(sandbox.url) as client:
        await client.register_bot(token, "netroom_json_bot", "NetRoom")
    web_log, worker_log = tmp_path / "web.log", tmp_path / "worker.log"
    web = await _spawn(
        ["web"],
        {
            **common,
            "BOT__WEBHOOK_URL": web_url,
            "BOT__WEBHOOK_SECRET": secret_values["webhook secret"],
            "WEB__PORT": str(web_port),
        },
        tmp_path,
        web_log,
    )
    started.append(web)
    worker = await _spawn(
        ["worker", "--scheduler"],
        {
            **common,
            "METRICS__PORT": str(worker_port),
            # A periodic job that runs within the test.
            "JOBS__SCHEDULE_OVERRIDES": json.dumps({"files.reap": "2s"}),
        },
        tmp_path,
        worker_log,
    )
    started.append(worker)
    await web.wait_for_line(r"NetRoom is running", wait=120)

    async with SandboxClient(sandbox.url) as client, httpx.AsyncClient(timeout=30) as http:
        before = parse((await http.get(f"{web_url}/metrics")).text)
        user = await client.create_user("Jay", language_code="en")
        after = await client.last_seq()
        await client.send_text(user["id"], "/start")
        consent = await client.wait_for(
            lambda e: e["type"] == "bot_message", chat_id=user["id"], after=after, wait=30
        )
        [accept] = consent["message"]["reply_markup"]["inline_keyboard"][0]
        await client.tap(user["id"], consent["message_id"], accept["callback_data"])
        await client.wait_for(
            lambda e: e["type"] == "bot_message" and "What would you like" in e["message"]["text"],
            chat_id=user["id"],
            after=after,
            wait=30,
        )
        # A chat turn, answered by the sandbox's model.
        after = await client.last_seq()
        await client.send_text(user["id"], "Hello, logged model")
        await client.wait_for(
            lambda e: (
                e["type"] == "bot_message" and "Hello, logged model" in (e["message"]["text"] or "")
            ),
            chat_id=user["id"],
            after=after,
            wait=60,
        )
        # A Stars top-up.
        after = await client.last_seq()
        await client.send_text(user["id"], "/balance")
        view = await client.wait_for(
            lambda e: e["type"] == "bot_message" and "Balance" in (e["message"]["text"] or ""),
            chat_id=user["id"],
            after=after,
            wait=30,
        )
        offer = next(
            b
            for row in view["message"]["reply_markup"]["inline_keyboard"]
            for b in row
            if b["text"].startswith("⭐️ 50 ")
        )
        after = await client.last_seq()
        await client.tap(user["id"], view["message_id"], offer["callback_data"])
        invoice = await client.wait_for(
            lambda e: e["type"] == "bot_message" and "invoice" in e["message"],
            chat_id=user["id"],
            after=after,
            wait=30,
        )
        after = await client.last_seq()
        await client.pay(user["id"], message_id=invoice["message_id"])
        await client.wait_for(
            lambda e: (
                e["type"] == "bot_message" and "Payment received" in (e["message"]["text"] or "")
            ),
            chat_id=user["id"],
            after=after,
            wait=30,
        )
        # The Mini App signs in with its launch data, uses the token, refreshes it; the same
        # launch data a second time is refused.
        launch = (await client.initdata(user["id"]))["init_data"]
        signed_in = await http.post(
            f"{web_url}/api/auth/telegram", headers={"Authorization": f"tma {launch}"}
        )
        assert signed_in.status_code == 200, signed_in.text
        tokens = signed_in.json()
        me = await http.get(
            f"{web_url}/api/me", headers={"Authorization": f"Bearer {tokens['access_token']}"}
        )
        assert me.status_code == 200
        refreshed = await http.post(
            f"{web_url}/api/auth/refresh", json={"refresh_token": tokens["refresh_token"]}
        )
        assert refreshed.status_code == 200, refreshed.text
        replayed = await http.post(
            f"{web_url}/api/auth/telegram", headers={"Authorization": f"tma {launch}"}
        )
        assert replayed.status_code == 401
        bad = await http.get(f"{web_url}/api/me", headers={"Authorization": "Bearer forged.jwt.x"})
        assert bad.status_code == 401

        # The web process's metrics, read as Prometheus would, from this machine.
        async with asyncio.timeout(20):
            while True:
                scraped = await http.get(f"{web_url}/metrics")
                assert scraped.status_code == 200
                now = parse(scraped.text)
                if grew(before, now, "netroom_turns_total") >= 1:
                    break
                await asyncio.sleep(0.2)
        assert grew(before, now, "netroom_turns_total", outcome="complete") == 1
        assert grew(before, now, "netroom_turn_first_text_seconds_count") == 1
        assert (
            grew(before, now, "netroom_payments_total", provider="stars", outcome="credited") == 1
        )
        assert grew(before, now, "netroom_ledger_operations_total", operation="credit") >= 1
        assert grew(before, now, "netroom_provider_calls_total", kind="chat") == 1
        assert grew(before, now, "netroom_updates_total", type="message", result="ok") >= 4
        assert grew(before, now, "netroom_telegram_api_calls_total", method="sendMessage") >= 2
        assert (
            grew(
                before, now, "netroom_web_requests_total", route="/api/auth/telegram", status="401"
            )
            == 1
        )
        assert (
            grew(
                before,
                now,
                "netroom_web_requests_total",
                route=common.get("BOT__WEBHOOK_PATH", "/telegram/webhook"),
                status="200",
            )
            >= 4
        )
        # The queue's depth is read at each scrape.
        assert ("netroom_job_queue_depth", frozenset({("state", "waiting")})) in now

        # The worker's metrics port: the periodic job ran and succeeded.
        worker_url = f"http://127.0.0.1:{worker_port}/metrics"
        async with asyncio.timeout(60):
            while True:
                try:
                    jobs = parse((await http.get(worker_url)).text)
                except httpx.TransportError:
                    jobs = {}
                if total(jobs, "netroom_job_runs_total", job="files.reap", status="ok") >= 1:
                    break
                await asyncio.sleep(0.5)
        assert total(jobs, "netroom_job_last_success_timestamp_seconds", job="files.reap") > 0
        # Through a proxy the port wants the token.
        proxied = {"X-Forwarded-For": "203.0.113.5"}
        assert (await http.get(worker_url, headers=proxied)).status_code == 404
        with_token = {**proxied, "Authorization": f"Bearer {secret_values['metrics token']}"}
        assert (await http.get(worker_url, headers=with_token)).status_code == 200

    assert await web.stop() == 0
    assert await worker.stop() == 0

    secret_values |= {
        "access token": tokens["access_token"],
        "refresh token": tokens["refresh_token"],
        "new refresh token": refreshed.json()["refresh_token"],
        "session id": tokens["refresh_token"].split(".")[0],
        "initData": launch,
        "initData hash": next(
            part.split("=", 1)[1] for part in launch.split("&") if part.startswith("hash=")
        ),
    }
    secret_values |= {name: value for name, value in common.items() if name.endswith("__API_KEY")}
    entries = _log_lines(web_log) + _log_lines(worker_log)
    everything = "\n".join(json.dumps(e, ensure_ascii=False) for e in entries)
    for what, value in secret_values.items():
        assert value not in everything, f"the {what} is in the log"
    # Lines name what they belong to: an update, a request, a job.
    assert any("update_id" in e for e in entries)
    assert any("request_id" in e for e in entries)
    assert any("job_id" in e for e in entries)
    assert {e["level"] for e in entries} >= {"INFO", "DEBUG"}
    assert os.environ.get("LOG_FORMAT") is None  # the subprocesses had it, not this one
