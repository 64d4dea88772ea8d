"""`netroom check` as an operator runs it before going live: a good configuration passes every
item; a broken one fails each broken item with how to fix it, and exits non-zero.

The good configuration is a whole production set-up on this machine: a Postgres with pgvector
(the embedded server ships it) migrated to head, a Redis of its own with an append-only log, and
the sandbox standing in for Telegram and every model provider, reached over real HTTP.
"""

from __future__ import annotations

import asyncio
import re
import secrets
import sys
import tempfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from core.providers.settings import sandbox_providers
from db.migrate import upgrade
from netroom.embedded import EmbeddedPostgres
from sandbox.app import SandboxServer, start_sandbox
from sandbox.client import SandboxClient
from tests.netroom.own_redis import OwnRedis, free_port
from tests.netroom.test_cli import CLEAN_ENV

PUBLIC = "https://netroom.example.test"
ITEM = re.compile(r"^  ([✓✗]) ([^:]+): (.*)$")


@dataclass
class Report:
    code: int
    output: str
    items: dict[str, tuple[str, str, str]]  # name -> (mark, detail, fix)

    def marks(self) -> dict[str, str]:
        return {name: mark for name, (mark, _, _) in self.items.items()}


async def run_check(env: dict[str, str], cwd: Path) -> Report:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "netroom",
        "check",
        cwd=cwd,
        env={
            **{k: v for k, v in CLEAN_ENV.items() if not k.startswith(("PROVIDERS__", "ENV"))},
            **env,
        },
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 120)
    text = out.decode()
    items: dict[str, tuple[str, str, str]] = {}
    lines = text.splitlines()
    for i, line in enumerate(lines):
        match = ITEM.match(line)
        if match:
            following = lines[i + 1] if i + 1 < len(lines) else ""
            fix = following.strip().removeprefix("fix: ") if "fix:" in following else ""
            items[match.group(2)] = (match.group(1), match.group(3), fix)
    assert proc.returncode is not None
    return Report(proc.returncode, text, items)


@pytest.fixture(scope="module")
def vector_database() -> Iterator[str]:
    # Outside pytest's temporary root: run as root, the server runs as a user of its own that
    # must pass through every parent, and other pytest runs close that root (0700) at their
    # start.
    with tempfile.TemporaryDirectory(prefix="netroom-check-") as directory:
        server = EmbeddedPostgres(Path(directory), database="netroom_check")
        url = server.start()
        try:
            upgrade(url)
            yield url
        finally:
            server.stop()


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[OwnRedis]:
    server = OwnRedis(tmp_path / "redis")
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
async def sandbox() -> AsyncIterator[SandboxServer]:
    server = await start_sandbox()
    yield server
    await server.stop()


def provider_env(sandbox_url: str) -> dict[str, str]:
    providers = sandbox_providers(sandbox_url)
    env = {}
    for name in type(providers).model_fields:
        settings = providers.get(name)
        assert settings.key is not None
        env[f"PROVIDERS__{name.upper()}__API_KEY"] = settings.key
        env[f"PROVIDERS__{name.upper()}__BASE_URL"] = settings.base_url
    return env


async def registered_token(sandbox: SandboxServer) -> str:
    token = f"{secrets.randbelow(9 * 10**9) + 10**9}:{secrets.token_urlsafe(27)}"
    async with SandboxClient(sandbox.url) as client:
        await client.register_bot(token, "netroom_check_bot", "NetRoom")
    return token


async def test_check_passes_every_item_of_a_good_production_configuration(
    tmp_path: Path, vector_database: str, own_redis: OwnRedis, sandbox: SandboxServer
) -> None:
    token = await registered_token(sandbox)
    env = {
        "ENV": "production",
        "DATA_DIR": str(tmp_path / "data"),
        "DATABASE__URL": vector_database,
        "REDIS__URL": own_redis.url,
        "BOT__TOKEN": token,
        "BOT__API_BASE": sandbox.url,
        "BOT__WEBHOOK_URL": PUBLIC,
        "BOT__WEBHOOK_SECRET": secrets.token_urlsafe(24),
        "WEB__PUBLIC_URL": PUBLIC,
        "WEB__JWT_SECRET": secrets.token_urlsafe(48),
        **provider_env(sandbox.url),
    }
    report = await run_check(env, tmp_path)
    assert report.code == 0, report.output
    expected = {
        "ENV",
        "WEB__JWT_SECRET",
        "WEB__PUBLIC_URL",
        "BOT__TOKEN",
        "BOT__WEBHOOK_URL",
        "BOT__WEBHOOK_SECRET",
        "Postgres",
        "pgvector",
        "migrations",
        "Redis",
        "Redis persistence",
        "Bot API",
        "webhook",
        *(f"provider {name}" for name in type(sandbox_providers(sandbox.url)).model_fields),
        "DATA_DIR",
    }
    assert set(report.items) == expected, report.output
    assert set(report.marks().values()) == {"✓"}, report.output
    assert "✗" not in report.output
    assert "@netroom_check_bot" in report.items["Bot API"][1]
    assert "at head" in report.items["migrations"][1]
    # The calls were really made: each provider's fake saw its key check.
    async with httpx.AsyncClient() as http:
        seen = (await http.get(f"{sandbox.url}/sandbox/api/providers/requests")).json()
    paths = {r["path"] for r in seen["requests"]}
    assert {
        "/openai/v1/models",
        "/anthropic/v1/models",
        "/gemini/v1beta/models",
        "/mistral/v1/models",
        "/compat/v1/models",
        "/compat/v1/key",
        "/stability/v1/user/balance",
    } <= paths
    for secret in (token, env["WEB__JWT_SECRET"], env["BOT__WEBHOOK_SECRET"]):
        assert secret not in report.output


async def test_check_fails_each_broken_item_with_its_fix_and_exits_non_zero(
    tmp_path: Path, database_url: str, sandbox: SandboxServer
) -> None:
    async with httpx.AsyncClient() as http:
        # The provider refuses this key.
        script = {"provider": "openai", "fault": {"kind": "auth"}}
        response = await http.post(f"{sandbox.url}/sandbox/api/providers/script", json=script)
        assert response.status_code == 201
    # The bot's token was revoked in @BotFather: its id with an old secret.
    token = await registered_token(sandbox)
    revoked = f"{token.split(':')[0]}:{secrets.token_urlsafe(27)}"
    env = {
        "ENV": "production",
        "DATA_DIR": str(tmp_path / "data"),
        "DATABASE__URL": database_url,
        # Nothing listens there.
        "REDIS__URL": f"redis://127.0.0.1:{free_port()}/0",
        "BOT__TOKEN": revoked,
        "BOT__API_BASE": sandbox.url,
        "BOT__WEBHOOK_URL": PUBLIC,
        "WEB__PUBLIC_URL": "http://netroom.example.test",
        "WEB__JWT_SECRET": "change-me",
        "PROVIDERS__OPENAI__API_KEY": "sk-revoked-key-0123456789",
        "PROVIDERS__OPENAI__BASE_URL": f"{sandbox.url}/openai/v1",
    }
    report = await run_check(env, tmp_path)
    assert report.code == 1, report.output
    marks = report.marks()
    for name in (
        "WEB__JWT_SECRET",
        "WEB__PUBLIC_URL",
        "BOT__WEBHOOK_SECRET",
        "Redis",
        "Bot API",
        "provider openai",
    ):
        assert marks.get(name) == "✗", (name, report.output)
        assert report.items[name][2], f"{name} has no fix:\n{report.output}"
    assert "token_urlsafe" in report.items["WEB__JWT_SECRET"][2]
    assert "BOT__WEBHOOK_SECRET" in report.items["BOT__WEBHOOK_SECRET"][2]
    assert "HTTPS" in report.items["WEB__PUBLIC_URL"][2]
    assert "cannot connect" in report.items["Redis"][1]
    assert "REDIS__URL" in report.items["Redis"][2]
    assert "refused the token" in report.items["Bot API"][1]
    assert "@BotFather" in report.items["Bot API"][2]
    assert "refused the key" in report.items["provider openai"][1]
    assert "PROVIDERS__OPENAI__API_KEY" in report.items["provider openai"][2]
    # What is right is still said to be right, and checked despite the rest.
    assert marks["ENV"] == marks["Postgres"] == marks["migrations"] == marks["DATA_DIR"] == "✓"
    assert f"{sum(m == '✗' for m in marks.values())} problems: fix each" in report.output
    for secret in (revoked, "sk-revoked-key-0123456789"):
        assert secret not in report.output


async def test_check_names_variables_that_do_not_load_and_exits_non_zero(tmp_path: Path) -> None:
    report = await run_check(
        {"BOT__TOKEN": "not-a-token", "DATA_DIR": str(tmp_path / "data")}, tmp_path
    )
    assert report.code == 1, report.output
    assert report.marks() == {"BOT__TOKEN": "✗"}, report.output
    assert "does not look like a Telegram bot token" in report.items["BOT__TOKEN"][1]
    assert "1 problem: the configuration does not load" in report.output
    assert "not-a-token" not in report.output


async def test_check_fails_the_webhook_when_telegram_could_not_deliver_to_it(
    tmp_path: Path, vector_database: str, own_redis: OwnRedis, sandbox: SandboxServer
) -> None:
    token = await registered_token(sandbox)
    # Nothing answers at the webhook's address: Telegram's deliveries fail.
    hook = f"http://127.0.0.1:{free_port()}"
    async with httpx.AsyncClient(base_url=f"{sandbox.url}/bot{token}") as bot_api:
        answer = await bot_api.post("/setWebhook", json={"url": f"{hook}/telegram/webhook"})
        assert answer.json()["ok"], answer.text
        async with SandboxClient(sandbox.url) as client:
            user = await client.create_user("Waiting", language_code="en")
            await client.send_text(user["id"], "/start")
        async with asyncio.timeout(20):
            while True:
                info = (await bot_api.post("/getWebhookInfo")).json()["result"]
                if "last_error_message" in info:
                    break
                await asyncio.sleep(0.1)
    env = {
        "ENV": "production",
        "DATA_DIR": str(tmp_path / "data"),
        "DATABASE__URL": vector_database,
        "REDIS__URL": own_redis.url,
        "BOT__TOKEN": token,
        "BOT__API_BASE": sandbox.url,
        "BOT__WEBHOOK_URL": hook,
        "BOT__WEBHOOK_SECRET": secrets.token_urlsafe(24),
        "WEB__PUBLIC_URL": PUBLIC,
        "WEB__JWT_SECRET": secrets.token_urlsafe(48),
        **provider_env(sandbox.url),
    }
    report = await run_check(env, tmp_path)
    assert report.code == 1, report.output
    mark, detail, fix = report.items["webhook"]
    assert mark == "✗", report.output
    assert f"could not deliver to {hook}/telegram/webhook" in detail
    assert "reachable from the internet" in fix
    # A loopback http address is no webhook address for Telegram either.
    assert report.marks()["BOT__WEBHOOK_URL"] == "✗"
    assert report.marks()["Bot API"] == "✓"
