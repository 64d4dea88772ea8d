"""The sandbox's Telegram kept on disk, so a demo restarted (``make run`` again) still has its
people, chats, messages, files, payments and its bots' settings, as real Telegram would.

What is kept: users, chats (members, topics, messages), files, bots (pending updates, commands,
menu buttons, who started them, invoice links, Star payments and subscriptions) and the id
counters. What is not: the event log the page and tests wait on (it starts again, and the page
reloads the world), flood-control buckets, drafts and typing, pending callback queries and
pre-checkout queries (Telegram forgets those within minutes anyway), queued faults.

The file is JSON (never pickle: it is read back), written atomically and readable by its owner
only, at most every ``SAVE_EVERY`` seconds while something changes and once more on stop.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import os
from pathlib import Path
from typing import Any

from sandbox.telegram.state import Bot, Chat, ForumTopic, StoredFile, UserAccount, World

log = logging.getLogger(__name__)

FILE_NAME = "telegram.json"
VERSION = 1
SAVE_EVERY = 2.0


def _user(user: UserAccount) -> dict[str, Any]:
    return {
        "id": user.id,
        "first_name": user.first_name,
        "last_name": user.last_name,
        "username": user.username,
        "language_code": user.language_code,
        "is_premium": user.is_premium,
        "hides_forwards": user.hides_forwards,
        "blocked_bots": sorted(user.blocked_bots),
    }


def _chat(chat: Chat) -> dict[str, Any]:
    return {
        "id": chat.id,
        "type": chat.type,
        "title": chat.title,
        "member_ids": chat.member_ids,
        "is_forum": chat.is_forum,
        "owner_id": chat.owner_id,
        "admins": {str(k): v for k, v in chat.admins.items()},
        "bot_member": chat.bot_member,
        "bot_rights": chat.bot_rights,
        "bot_admins": {str(k): v for k, v in chat.bot_admins.items()},
        "topics": [vars(t) for t in chat.topics.values()],
        "messages": [chat.messages[k] for k in sorted(chat.messages)],
        "next_message_id": chat.next_message_id,
    }


def _bot(bot: Bot) -> dict[str, Any]:
    return {
        "id": bot.id,
        "token": bot.token,
        "username": bot.username,
        "first_name": bot.first_name,
        "updates": bot.updates,
        "next_update_id": bot.next_update_id,
        "allowed_updates": bot.allowed_updates,
        "webhook": bot.webhook,
        "commands": [[scope, lang, cmds] for (scope, lang), cmds in bot.commands.items()],
        "default_menu_button": bot.default_menu_button,
        "menu_buttons": {str(k): v for k, v in bot.menu_buttons.items()},
        "started_by": sorted(bot.started_by),
        "invoice_links": bot.invoice_links,
        "star_transactions": bot.star_transactions,
        "subscriptions": bot.subscriptions,
    }


def _file(stored: StoredFile) -> dict[str, Any]:
    return {
        "file_id": stored.file_id,
        "file_unique_id": stored.file_unique_id,
        "file_path": stored.file_path,
        "content": base64.b64encode(stored.content).decode(),
        "mime_type": stored.mime_type,
        "file_name": stored.file_name,
    }


def dump(world: World) -> dict[str, Any]:
    return {
        "version": VERSION,
        "users": [_user(u) for u in world.users.values()],
        "chats": [_chat(c) for c in world.chats.values()],
        "bots": [_bot(b) for b in world.bots.values()],
        "files": [_file(f) for f in world.files.values()],
        "next_ids": world.next_ids(),
    }


def load(world: World, data: dict[str, Any]) -> None:
    """Put what ``dump`` wrote into a fresh world."""
    if data.get("version") != VERSION:
        raise ValueError(f"unknown sandbox state version {data.get('version')!r}")
    for raw in data["users"]:
        user = UserAccount(**{**raw, "blocked_bots": set(raw["blocked_bots"])})
        world.users[user.id] = user
    for raw in data["chats"]:
        chat = Chat(
            id=raw["id"],
            type=raw["type"],
            title=raw["title"],
            member_ids=list(raw["member_ids"]),
            is_forum=raw["is_forum"],
            owner_id=raw["owner_id"],
            admins={int(k): v for k, v in raw["admins"].items()},
            bot_member=raw["bot_member"],
            bot_rights=raw["bot_rights"],
            bot_admins={int(k): v for k, v in raw["bot_admins"].items()},
            topics={t["message_thread_id"]: ForumTopic(**t) for t in raw["topics"]},
            messages={m["message_id"]: m for m in raw["messages"]},
            next_message_id=raw["next_message_id"],
        )
        world.chats[chat.id] = chat
    for raw in data["bots"]:
        bot = Bot(
            id=raw["id"],
            token=raw["token"],
            username=raw["username"],
            first_name=raw["first_name"],
            updates=list(raw["updates"]),
            next_update_id=raw["next_update_id"],
            allowed_updates=raw["allowed_updates"],
            webhook=raw["webhook"],
            commands={(scope, lang): cmds for scope, lang, cmds in raw["commands"]},
            default_menu_button=raw["default_menu_button"],
            menu_buttons={int(k): v for k, v in raw["menu_buttons"].items()},
            started_by=set(raw["started_by"]),
            invoice_links=raw["invoice_links"],
            star_transactions=list(raw["star_transactions"]),
            subscriptions=raw["subscriptions"],
        )
        world.add_bot(bot)
    for raw in data["files"]:
        stored = StoredFile(**{**raw, "content": base64.b64decode(raw["content"])})
        world.files[stored.file_id] = stored
        world.files_by_path[stored.file_path] = stored
    world.set_next_ids(data["next_ids"])


class WorldStore:
    """Keeps one world in ``directory`` while the sandbox runs."""

    def __init__(self, world: World, directory: Path) -> None:
        self.world = world
        self.path = directory / FILE_NAME
        self._saved_at_seq = -1
        self._task: asyncio.Task[None] | None = None

    def restore(self) -> bool:
        """Load the last saved world, if any; False when there was none or it is unreadable
        (then the sandbox starts empty, and says so in the log)."""
        if not self.path.exists():
            return False
        try:
            load(self.world, json.loads(self.path.read_text(encoding="utf-8")))
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("sandbox state in %s not read (%s); starting empty", self.path, exc)
            return False
        self._saved_at_seq = len(self.world.events)
        return True

    def save(self) -> None:
        if self._saved_at_seq == len(self.world.events) and self.path.exists():
            return
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        temporary = self.path.with_suffix(".tmp")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(dump(self.world), out)
        temporary.replace(self.path)
        self._saved_at_seq = len(self.world.events)

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="sandbox-state")

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(SAVE_EVERY)
            try:
                self.save()
            except OSError:
                log.warning("sandbox state not saved to %s", self.path, exc_info=True)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self.save()
