"""The sandbox's Telegram kept on disk: a demo restarted still has its people, chats, files and
its bots' settings."""

from __future__ import annotations

import secrets
import stat
from pathlib import Path

from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.types import BotCommand, BufferedInputFile

from sandbox.app import start_sandbox
from sandbox.client import SandboxClient
from sandbox.telegram.persist import FILE_NAME


def _bot(url: str, token: str) -> Bot:
    return Bot(token, session=AiohttpSession(api=TelegramAPIServer.from_base(url)))


async def test_people_chats_files_and_bot_settings_survive_a_restart(tmp_path: Path) -> None:
    state = tmp_path / "sandbox"
    token = f"{secrets.randbelow(10**9) + 10**9}:{secrets.token_urlsafe(27)}"
    first = await start_sandbox(state_dir=state)
    try:
        async with SandboxClient(first.url) as client:
            await client.register_bot(token, "kept_demo_bot")
            tess = await client.create_user("Tess", language_code="ru")
            group = await client.create_group("Friends", [tess["id"]])
            await client.send_text(tess["id"], "hello there")
            bot = _bot(first.url, token)
            try:
                await bot.set_my_commands([BotCommand(command="new", description="New chat")])
                sent = await bot.send_document(
                    tess["id"],
                    document=BufferedInputFile(b"kept", "a.txt"),
                )
            finally:
                await bot.session.close()
    finally:
        await first.stop()
    saved = state / FILE_NAME
    assert stat.S_IMODE(saved.stat().st_mode) == 0o600

    second = await start_sandbox(state_dir=state)
    try:
        async with SandboxClient(second.url) as client:
            users = {u["id"]: u for u in await client.users()}
            assert users[tess["id"]]["first_name"] == "Tess"
            assert users[tess["id"]]["language_code"] == "ru"
            assert group["id"] in {g["id"] for g in await client.groups()}
            texts = [m.get("text") for m in (await client.transcript(tess["id"]))["messages"]]
            assert "hello there" in texts
            # A new user does not take an id someone already has.
            newcomer = await client.create_user("Nina")
            assert newcomer["id"] not in users
        bot = _bot(second.url, token)
        try:
            me = await bot.get_me()
            assert me.username == "kept_demo_bot"
            assert [c.command for c in await bot.get_my_commands()] == ["new"]
            assert sent.document is not None
            downloaded = await bot.download(sent.document.file_id)
            assert downloaded is not None and downloaded.read() == b"kept"
        finally:
            await bot.session.close()
    finally:
        await second.stop()


async def test_an_unreadable_state_file_starts_an_empty_sandbox(tmp_path: Path) -> None:
    state = tmp_path / "sandbox"
    state.mkdir()
    (state / FILE_NAME).write_text("{not json", encoding="utf-8")
    server = await start_sandbox(state_dir=state)
    try:
        async with SandboxClient(server.url) as client:
            assert await client.users() == []
            await client.create_user("Olga")
    finally:
        await server.stop()
    # What the new run made replaced the broken file.
    assert "Olga" in (state / FILE_NAME).read_text(encoding="utf-8")
