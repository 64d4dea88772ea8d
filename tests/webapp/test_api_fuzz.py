"""Schemathesis against the real app: ``create_app()`` served on a real port over real Postgres
and Redis, the sandbox standing in for the model providers and mail, a signed-in user's bearer
token on every request, a fixed seed and a deterministic generation. Every documented operation
gets valid and invalid input; the run fails on any 5xx (``not_a_server_error``), any status,
content type or body the document does not describe (``status_code_conformance``,
``content_type_conformance``, ``response_schema_conformance``).

The user's own objects (a conversation, a message, a preset, a share link, a document) are made
first and named in the run's configuration, so valid requests reach them; deletions get a second
set. The operations that end the session or the account (signing out, ending sessions, erasure)
run last, in runs of their own, each with an account of its own, so every one of them meets a
live session and the main run keeps its token.

Findings are fixed in the code, never by loosening the document. The run's summary is printed
(``pytest -s`` shows it); the JUnit report lands in the test's temporary folder.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import sys
from ipaddress import ip_network
from pathlib import Path

import aiohttp
import httpx
from aiogram import Bot
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.factory import create_bot
from bot.stars import renewal_switch
from core.media import LocalMediaStore
from core.payments.yookassa import YooKassaClient
from core.providers.registry import ProviderRegistry
from core.providers.settings import sandbox_providers
from core.services import billing
from core.services.chat import ModelMenu, ModelTerms
from core.services.images import ImageTerms
from core.services.payments import PaymentTerms
from core.services.tariffs import Plan, Tariffs
from core.services.videos import VideoTerms
from db.engine import UnitOfWorkFactory
from netroom.processes import invoice_links
from sandbox.app import SandboxServer
from sandbox.client import SandboxClient
from tests.factories import register
from tests.webapp.authkit import SECRET, Kit, make_kit, oauth_clients
from tests.webapp.conftest import ClientMaker, web_access_token

SEED = 20261205
# Cases per operation and phase: the whole module stays near a minute on a busy machine.
MAX_EXAMPLES = 8
CHECKS = (
    "not_a_server_error,status_code_conformance,content_type_conformance,"
    "response_schema_conformance"
)
DESTRUCTIVE = "|".join(
    (
        "^/api/sessions/\\{session_id\\}$",
        "^/api/privacy/delete/confirm$",
        "^/api/auth/sign-out-everywhere$",
        "^/api/auth/sign-out$",
    )
)
# Run last, each with an account of its own: what ends the session ends it for the rest of its
# run, so each of these meets a live session first. (Random session ids and confirmation tokens
# name nothing, so the first two share a run.)
LAST_RUNS = (
    ("^/api/sessions/\\{session_id\\}$|^/api/privacy/delete/confirm$", False),
    ("^/api/auth/sign-out-everywhere$", True),
    ("^/api/auth/sign-out$", True),
)


class Jobs:
    """The job queue's port: what the web app hands to the worker, kept in memory."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, dict[str, object]]] = []

    async def enqueue(self, task_name: str, **kwargs: object) -> None:
        self.sent.append((task_name, kwargs))


async def _user(factory: UnitOfWorkFactory) -> str:
    async with factory() as uow:
        user = (await register(uow)).user
        async with uow.transaction():
            await billing.credit(
                uow, user_id=user.id, amount=500_000, category="topup", key=secrets.token_hex(8)
            )
        return await web_access_token(uow, user.id, secret=SECRET)


async def _things(kit: Kit, token: str) -> dict[str, object]:
    """A conversation with messages, a preset, a shared preset link and a document of the user,
    made through the API: their ids are given to the run, so valid requests reach them."""
    auth = {"Authorization": f"Bearer {token}"}
    chat = await kit.client.post(
        "/api/chat", json={"text": "Hello", "conversation_id": None}, headers=auth
    )
    assert chat.status == 200
    await chat.read()
    conversation = (await (await kit.client.get("/api/conversations", headers=auth)).json())[
        "conversations"
    ][0]["id"]
    messages = await (
        await kit.client.get(f"/api/conversations/{conversation}/messages", headers=auth)
    ).json()
    preset = await (
        await kit.client.post(
            "/api/presets", json={"title": "Poet", "system_prompt": "Rhyme."}, headers=auth
        )
    ).json()
    link = await (await kit.client.post(f"/api/presets/{preset['id']}/share", headers=auth)).json()
    form = aiohttp.FormData()
    notes = f"Notes about rivers, set {secrets.token_hex(4)}.".encode()
    form.add_field("file", notes, filename="notes.txt", content_type="text/plain")
    upload = await (await kit.client.post("/api/files", data=form, headers=auth)).json()
    picture = await (
        await kit.client.post("/api/media/images", json={"prompt": "A river"}, headers=auth)
    ).json()
    return {
        "path.media_id": picture["media"][0]["id"],
        "path.conversation_id": conversation,
        "path.message_id": messages["messages"][-1]["id"],
        "path.preset_id": preset["id"],
        "path.link_id": link["id"],
        "path.token": link["token"],
        "path.file_id": upload["id"],
    }


def _config(folder: Path, kept: dict[str, object], doomed: dict[str, object]) -> Path:
    """Every request names the user's own objects; deletions name a second set of them, so the
    first set lives through the run."""

    def table(values: dict[str, object]) -> str:
        return ", ".join(f'"{k}" = {json.dumps(v)}' for k, v in values.items())

    path = folder / "schemathesis.toml"
    path.write_text(
        f"parameters = {{ {table(kept)} }}\n\n"
        f'[[operations]]\ninclude-method = "DELETE"\nparameters = {{ {table(doomed)} }}\n'
    )
    return path


async def _schemathesis(base: str, token: str, report: Path, *selection: str) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "schemathesis.cli",
        "--config-file",
        str(report / "schemathesis.toml"),
        "run",
        f"{base}/api/openapi.json",
        "--url",
        base,
        "--header",
        f"Authorization: Bearer {token}",
        "--checks",
        CHECKS,
        "--seed",
        str(SEED),
        "--generation-deterministic",
        "--max-examples",
        str(MAX_EXAMPLES),
        "--phases",
        "examples,coverage,fuzzing",
        "--workers",
        "1",
        "--request-timeout",
        "30",
        "--no-color",
        "--report",
        "junit",
        "--report-dir",
        str(report),
        *selection,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, "SCHEMATHESIS_HOOKS": ""},
        cwd=report,
    )
    out, _ = await process.communicate()
    text = out.decode(errors="replace")
    # Warnings and summary stay in the captured output: how many cases, which phases, how long.
    start = text.find("WARNINGS")
    print(text[start if start >= 0 else text.find("SUMMARY") :])
    return process.returncode or 0, text


async def test_schemathesis_finds_no_server_error_and_nothing_undocumented(
    aiohttp_client: ClientMaker,
    engine: AsyncEngine,
    redis: Redis,
    sandbox: SandboxServer,
    http: httpx.AsyncClient,
    tmp_path: Path,
) -> None:
    tag = secrets.token_hex(4)
    model = ModelTerms(
        id="fuzz-gpt",
        provider="openai",
        provider_model=f"gpt-fuzz-{tag}",
        context_window=16_000,
        input_per_1k=10,
        output_per_1k=30,
        reasoning=True,
    )
    # Telegram (Stars invoices and renewals through the web process's own Bot), YooKassa and the
    # OAuth providers are the sandbox's, so the payment and sign-in operations are reached too.
    token = f"{secrets.randbelow(10**9) + 10**9}:{secrets.token_urlsafe(27)}"
    async with SandboxClient(sandbox.url) as control:
        await control.register_bot(token, "netroom_fuzz_bot", "NetRoom")
    bot: Bot = create_bot(token, sandbox.url)
    shop_id, key = f"shop-{tag}", secrets.token_urlsafe(16)
    terms = PaymentTerms.build(
        kopecks_per_star=150,
        star_packages=[50, 100],
        referral_level1_percent=10,
        referral_level2_percent=3,
        signing_secret=SECRET,
    )
    kit = await make_kit(
        aiohttp_client,
        engine,
        redis,
        sandbox,
        http,
        models=ModelMenu(models=(model,), default_id="fuzz-gpt"),
        providers=ProviderRegistry(sandbox_providers(sandbox.url), http),
        tariffs=Tariffs(
            free_limits={"basic": 1},
            plans=(Plan("plus", 250, {"basic": 200}, 10),),
            timezone="Europe/Moscow",
        ),
        media_store=LocalMediaStore(tmp_path / "media"),
        # Pictures and videos from the gallery: each drawn by the sandbox, priced per picture.
        image_models=(ImageTerms("fuzz-image", "openai", f"gpt-image-fuzz-{tag}", 500),),
        video_models=(VideoTerms("fuzz-video", "video", f"sora-fuzz-{tag}", 100, seconds=4),),
        jobs=Jobs(),
        oauth=await oauth_clients(sandbox, http),
        payment_terms=terms,
        stars_invoice_links=invoice_links(bot),
        subscription_renewals=renewal_switch(bot),
        yookassa=YooKassaClient(http, shop_id, key, f"{sandbox.url}/yookassa/v3"),
        yookassa_packages=(300, 1000),
        yookassa_networks=(ip_network("127.0.0.0/8"), ip_network("::1/128")),
    )
    await http.post(
        f"{sandbox.url}/sandbox/api/yookassa/shops",
        json={"shop_id": shop_id, "secret_key": key, "webhook_url": "http://netroom.test/"},
    )
    try:
        await _fuzz(kit, tmp_path)
    finally:
        await bot.session.close()


async def _fuzz(kit: Kit, tmp_path: Path) -> None:
    base = str(kit.client.make_url("")).rstrip("/")
    main = await _user(kit.factory)
    kept, doomed = await _things(kit, main), await _things(kit, main)
    _config(tmp_path, kept, doomed)
    code, output = await _schemathesis(base, main, tmp_path, "--exclude-path-regex", DESTRUCTIVE)
    assert code == 0, output
    # The run reached the user's own objects, not only ids that name nothing: the document it
    # was given to delete is gone, the other one is still there.
    auth = {"Authorization": f"Bearer {main}"}
    for things, status in ((doomed, 404), (kept, 200)):
        found = await kit.client.get(f"/api/files/{things['path.file_id']}", headers=auth)
        assert found.status == status
    for selection, ends_session in LAST_RUNS:
        token = await _user(kit.factory)
        code, output = await _schemathesis(base, token, tmp_path, "--include-path-regex", selection)
        assert code == 0, output
        me = await kit.client.get("/api/me", headers={"Authorization": f"Bearer {token}"})
        # Signing out was reached with the live session (then every later case was refused).
        assert me.status == (401 if ends_session else 200), selection
