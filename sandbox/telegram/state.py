"""The sandbox's in-memory Telegram: bots, users, chats, messages, updates, files, events."""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
import re
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

TOKEN_RE = re.compile(r"^(\d{1,20}):[A-Za-z0-9_-]{20,}$")
DEFAULT_UPDATES_EXCLUDED = {"chat_member", "message_reaction", "message_reaction_count"}
# Update types newer than the Bot API the sandbox follows: sent only to a bot that asked for them.
OPT_IN_UPDATES = {"subscription"}
# Every administrator right of a supergroup (ChatAdministratorRights), all granted.
FULL_ADMIN_RIGHTS: dict[str, bool] = {
    "is_anonymous": False,
    "can_manage_chat": True,
    "can_delete_messages": True,
    "can_manage_video_chats": True,
    "can_restrict_members": True,
    "can_promote_members": True,
    "can_change_info": True,
    "can_invite_users": True,
    "can_post_stories": True,
    "can_edit_stories": True,
    "can_delete_stories": True,
    "can_send_welcome_messages": True,
    "can_pin_messages": True,
    "can_manage_topics": True,
}
# createForumTopic.icon_color: the six colours Telegram offers.
TOPIC_ICON_COLORS = (7322096, 16766590, 13338331, 9367192, 16749490, 16478047)
# Message fields that are content (what copyMessage and forwardMessage carry over).
CONTENT_FIELDS = (
    "text",
    "entities",
    "link_preview_options",
    "photo",
    "document",
    "video",
    "voice",
    "audio",
    "animation",
    "sticker",
    "video_note",
    "caption",
    "caption_entities",
    "show_caption_above_media",
    "has_media_spoiler",
    "location",
    "contact",
    "venue",
    "dice",
)
# Content kinds that take a caption.
MEDIA_KINDS = ("photo", "document", "video", "voice", "audio", "animation")
# A message with one of these is a real message, not a service message.
MESSAGE_KINDS = (
    "text",
    *MEDIA_KINDS,
    "sticker",
    "video_note",
    "location",
    "contact",
    "venue",
    "dice",
)


class ApiError(Exception):
    """A Bot API failure: HTTP status = error_code, and Telegram's description."""

    def __init__(
        self, code: int, description: str, parameters: dict[str, Any] | None = None
    ) -> None:
        super().__init__(description)
        self.code = code
        self.description = description
        self.parameters = parameters or {}


def bad_request(text: str) -> ApiError:
    return ApiError(400, text if text.startswith("Bad Request") else f"Bad Request: {text}")


def public(message: dict[str, Any]) -> dict[str, Any]:
    """A stored message as the Bot API shows it (the sandbox's own keys start with ``_``)."""
    return {k: v for k, v in message.items() if not k.startswith("_")}


def quoted(message: dict[str, Any]) -> dict[str, Any]:
    """A message as ``reply_to_message``: without its own reply."""
    return {k: v for k, v in public(message).items() if k != "reply_to_message"}


@dataclass
class TelegramOptions:
    long_poll_max: float = 50.0
    # Private chats: bursts of `private_burst`, then about one message a second.
    private_burst: float = 20.0
    private_rate: float = 1.0
    # Groups: 20 messages a minute.
    group_burst: float = 20.0
    group_rate: float = 20.0 / 60.0
    # All chats together: about 30 messages a second.
    global_burst: float = 30.0
    global_rate: float = 30.0
    draft_burst: float = 40.0
    draft_rate: float = 10.0
    draft_ttl: float = 30.0
    # Webhook retries: first at once, then base * 2, 4, 8 … capped.
    webhook_retry_base: float = 1.0
    webhook_retry_cap: float = 60.0
    webhook_timeout: float = 10.0
    max_upload_bytes: int = 50 * 1024 * 1024
    max_download_bytes: int = 20 * 1024 * 1024
    callback_query_ttl: float = 900.0
    # The bot must answer a pre-checkout query within this many seconds.
    pre_checkout_timeout: float = 10.0
    # The bot must answer an inline query within this many seconds.
    inline_query_ttl: float = 10.0


class Bucket:
    """A token bucket for flood control."""

    def __init__(self, burst: float, rate: float) -> None:
        self.burst = burst
        self.rate = rate
        self.tokens = burst
        self.at = time.monotonic()

    def _refill(self) -> None:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.at) * self.rate)
        self.at = now

    def wait_needed(self) -> int:
        """Seconds until one token is available (0: available now)."""
        self._refill()
        if self.tokens >= 1:
            return 0
        return max(1, math.ceil((1 - self.tokens) / self.rate))

    def take(self) -> None:
        self._refill()
        self.tokens -= 1


@dataclass
class UserAccount:
    id: int
    first_name: str
    last_name: str | None = None
    username: str | None = None
    language_code: str | None = None
    is_premium: bool = False
    # "Forwarded messages: link to my account" set to nobody: forwards show only the name.
    hides_forwards: bool = False
    blocked_bots: set[int] = field(default_factory=set)

    @property
    def full_name(self) -> str:
        return f"{self.first_name} {self.last_name}" if self.last_name else self.first_name

    def as_user(self) -> dict[str, Any]:
        data: dict[str, Any] = {"id": self.id, "is_bot": False, "first_name": self.first_name}
        for key in ("last_name", "username", "language_code"):
            if getattr(self, key):
                data[key] = getattr(self, key)
        if self.is_premium:
            data["is_premium"] = True
        return data

    def as_chat(self) -> dict[str, Any]:
        data: dict[str, Any] = {"id": self.id, "type": "private", "first_name": self.first_name}
        if self.last_name:
            data["last_name"] = self.last_name
        if self.username:
            data["username"] = self.username
        return data


@dataclass
class ForumTopic:
    """A topic of a forum supergroup; its id is the id of its ``forum_topic_created`` message."""

    message_thread_id: int
    name: str
    icon_color: int
    creator_id: int
    icon_custom_emoji_id: str | None = None
    closed: bool = False
    deleted: bool = False

    def as_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "message_thread_id": self.message_thread_id,
            "name": self.name,
            "icon_color": self.icon_color,
        }
        if self.icon_custom_emoji_id:
            data["icon_custom_emoji_id"] = self.icon_custom_emoji_id
        return data


@dataclass
class Chat:
    id: int
    type: str
    title: str | None = None
    member_ids: list[int] = field(default_factory=list)
    is_forum: bool = False
    owner_id: int | None = None
    # People who are administrators, with their rights.
    admins: dict[int, dict[str, bool]] = field(default_factory=dict)
    # Whether bots are in this group at all, and the rights every bot has (None: a plain member);
    # `bot_admins` overrides that for one bot.
    bot_member: bool = True
    bot_rights: dict[str, bool] | None = None
    bot_admins: dict[int, dict[str, bool] | None] = field(default_factory=dict)
    topics: dict[int, ForumTopic] = field(default_factory=dict)
    messages: dict[int, dict[str, Any]] = field(default_factory=dict)
    next_message_id: int = 1
    drafts: dict[tuple[int, int], dict[str, Any]] = field(default_factory=dict)
    chat_actions: list[dict[str, Any]] = field(default_factory=list)
    callback_answers: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class StoredFile:
    file_id: str
    file_unique_id: str
    file_path: str
    content: bytes
    mime_type: str | None
    file_name: str | None


@dataclass
class Bot:
    id: int
    token: str
    username: str
    first_name: str
    updates: list[dict[str, Any]] = field(default_factory=list)
    next_update_id: int = field(default_factory=lambda: random.randint(100_000, 900_000))  # nosec B311 # made-up ids
    allowed_updates: list[str] | None = None
    webhook: dict[str, Any] | None = None
    webhook_last_set: float = 0.0
    webhook_error: tuple[int, str] | None = None
    poll_generation: int = 0
    poll_event: asyncio.Event = field(default_factory=asyncio.Event)
    commands: dict[tuple[str, str], list[dict[str, Any]]] = field(default_factory=dict)
    default_menu_button: dict[str, Any] = field(default_factory=lambda: {"type": "commands"})
    menu_buttons: dict[int, dict[str, Any]] = field(default_factory=dict)
    started_by: set[int] = field(default_factory=set)
    callbacks: dict[str, dict[str, Any]] = field(default_factory=dict)
    buckets: dict[int, Bucket] = field(default_factory=dict)
    # Payments: invoice links, pending pre-checkout queries, Star transactions.
    invoice_links: dict[str, dict[str, Any]] = field(default_factory=dict)
    pre_checkouts: dict[str, dict[str, Any]] = field(default_factory=dict)
    star_transactions: list[dict[str, Any]] = field(default_factory=list)
    # Stars subscriptions by their first charge id.
    subscriptions: dict[str, dict[str, Any]] = field(default_factory=dict)
    draft_buckets: dict[int, Bucket] = field(default_factory=dict)
    global_bucket: Bucket | None = None
    last_active: float = 0.0

    def as_user(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "is_bot": True,
            "first_name": self.first_name,
            "username": self.username,
        }


@dataclass
class Fault:
    method: str
    error_code: int
    description: str | None
    retry_after: int | None
    remaining: int
    bot_id: int | None = None
    chat_id: int | None = None


class World:
    """Everything the sandbox's Telegram knows, and the event log pages and tests wait on."""

    def __init__(self, options: TelegramOptions | None = None) -> None:
        self.options = options or TelegramOptions()
        self.bots: dict[int, Bot] = {}
        self.users: dict[int, UserAccount] = {}
        self.chats: dict[int, Chat] = {}
        self.files: dict[str, StoredFile] = {}
        self.files_by_path: dict[str, StoredFile] = {}
        self.events: list[dict[str, Any]] = []
        self.events_changed = asyncio.Event()
        self.faults: list[Fault] = []
        # Inline mode (sandbox.telegram.inline): queries by id; sent results that carry a
        # keyboard by inline_message_id, as (chat id, message id, bot id).
        self.inline_queries: dict[str, dict[str, Any]] = {}
        self.inline_messages: dict[str, tuple[int, int, int]] = {}
        self._next_user_id = random.randint(5_000_000_000, 5_900_000_000)  # nosec B311 # made-up ids
        self._next_group_id = random.randint(4_000_000_000, 4_900_000_000)  # nosec B311 # made-up ids
        self._next_supergroup_id = random.randint(1_000_000_000, 2_900_000_000)  # nosec B311 # made-up ids

    # --- bots -----------------------------------------------------------------------------

    def bot_for_token(self, token: str) -> Bot:
        match = TOKEN_RE.match(token)
        if not match:
            raise ApiError(401, "Unauthorized")
        bot_id = int(match.group(1))
        bot = self.bots.get(bot_id)
        if bot is None:
            bot = Bot(id=bot_id, token=token, username=f"sandbox_{bot_id}_bot", first_name="Bot")
            self._init_bot(bot)
            self.bots[bot_id] = bot
        elif bot.token != token:
            raise ApiError(401, "Unauthorized")
        bot.last_active = time.monotonic()
        return bot

    def add_bot(self, bot: Bot) -> None:
        """A bot known before (restored from disk), with fresh flood-control budgets."""
        self._init_bot(bot)
        self.bots[bot.id] = bot

    def next_ids(self) -> dict[str, int]:
        return {
            "user": self._next_user_id,
            "group": self._next_group_id,
            "supergroup": self._next_supergroup_id,
        }

    def set_next_ids(self, ids: dict[str, int]) -> None:
        self._next_user_id = int(ids["user"])
        self._next_group_id = int(ids["group"])
        self._next_supergroup_id = int(ids["supergroup"])

    def _init_bot(self, bot: Bot) -> None:
        o = self.options
        bot.global_bucket = Bucket(o.global_burst, o.global_rate)

    def register_bot(self, token: str, username: str | None, first_name: str | None) -> Bot:
        bot = self.bot_for_token(token)
        if username:
            bot.username = username
        if first_name:
            bot.first_name = first_name
        return bot

    def default_bot(self, bot_id: int | None = None) -> Bot:
        if bot_id is not None:
            if bot_id not in self.bots:
                raise LookupError(f"no bot {bot_id}")
            return self.bots[bot_id]
        if not self.bots:
            raise LookupError("no bot has connected to the sandbox yet")
        return max(self.bots.values(), key=lambda b: b.last_active)

    # --- users and chats ------------------------------------------------------------------

    def create_user(self, **fields: Any) -> UserAccount:
        user_id = fields.pop("id", None)
        if user_id is None:
            self._next_user_id += random.randint(1, 97)  # nosec B311 # made-up ids
            user_id = self._next_user_id
        if user_id in self.users:
            raise ValueError(f"user {user_id} exists")
        user = UserAccount(id=int(user_id), **fields)
        self.users[user.id] = user
        self.chats[user.id] = Chat(id=user.id, type="private")
        return user

    def create_group(
        self,
        title: str,
        member_ids: list[int],
        *,
        chat_type: str = "group",
        is_forum: bool = False,
        owner_id: int | None = None,
        admin_ids: list[int] | None = None,
        bot_member: bool = True,
        bot_rights: dict[str, bool] | None = None,
    ) -> Chat:
        """A basic group (id -xxxxxxxxxx) or a supergroup (id -100xxxxxxxxxx), maybe a forum."""
        if chat_type not in ("group", "supergroup"):
            raise ValueError("type must be group or supergroup")
        if is_forum and chat_type != "supergroup":
            raise ValueError("only a supergroup can be a forum")
        if chat_type == "supergroup":
            self._next_supergroup_id += random.randint(1, 97)  # nosec B311
            chat_id = -(10**12 + self._next_supergroup_id)
        else:
            self._next_group_id += random.randint(1, 97)  # nosec B311
            chat_id = -self._next_group_id
        members = list(member_ids)
        admins = list(admin_ids or [])
        if owner_id is None and members:
            owner_id = members[0]
        for person in ([owner_id] if owner_id is not None else []) + admins:
            if person not in members:
                members.append(person)
        chat = Chat(
            id=chat_id,
            type=chat_type,
            title=title,
            member_ids=members,
            is_forum=is_forum,
            owner_id=owner_id,
            admins={a: dict(FULL_ADMIN_RIGHTS) for a in admins if a != owner_id},
            bot_member=bot_member,
            bot_rights=bot_rights,
        )
        self.chats[chat.id] = chat
        if chat_type == "supergroup":
            # Message 1 of a supergroup is its creation; in a forum it stands for the General
            # topic, so no topic ever has thread id 1.
            owner = self.users.get(owner_id) if owner_id is not None else None
            if owner is not None:
                self.new_message(chat, owner.as_user(), supergroup_chat_created=True)
            chat.next_message_id = max(chat.next_message_id, 2)
        return chat

    def chat_dict(self, chat: Chat) -> dict[str, Any]:
        if chat.type == "private":
            return self.users[chat.id].as_chat()
        data: dict[str, Any] = {"id": chat.id, "type": chat.type, "title": chat.title}
        if chat.is_forum:
            data["is_forum"] = True
        return data

    # --- membership and rights ------------------------------------------------------------

    def rights(self, chat: Chat, member_id: int) -> dict[str, bool] | None:
        """A member's administrator rights in a group (all of them for the owner); None when
        the member is not an administrator."""
        if chat.type == "private":
            return None
        if member_id in self.bots:
            if not chat.bot_member:
                return None
            if member_id in chat.bot_admins:
                return chat.bot_admins[member_id]
            return chat.bot_rights
        if member_id == chat.owner_id:
            return dict(FULL_ADMIN_RIGHTS)
        return chat.admins.get(member_id)

    def can(self, chat: Chat, member_id: int, right: str) -> bool:
        rights = self.rights(chat, member_id)
        return bool(rights and rights.get(right))

    def chat_member(self, chat: Chat, member: dict[str, Any]) -> dict[str, Any]:
        """A ChatMember object: creator, administrator, member or left."""
        member_id = int(member["id"])
        if member_id == chat.owner_id:
            return {"status": "creator", "user": member, "is_anonymous": False}
        rights = self.rights(chat, member_id)
        if rights is not None:
            return {"status": "administrator", "user": member, "can_be_edited": False, **rights}
        present = chat.bot_member if member_id in self.bots else member_id in chat.member_ids
        return {"status": "member" if present else "left", "user": member}

    def readable_chat(self, bot: Bot, chat_id: Any) -> Chat:
        """A chat whose messages the bot can see (to copy or forward from)."""
        try:
            chat = self.chats.get(int(chat_id))
        except (TypeError, ValueError):
            chat = None
        if chat is None:
            raise bad_request("chat not found")
        if chat.type == "private" and chat.id not in bot.started_by:
            raise bad_request("chat not found")
        if chat.type != "private" and not chat.bot_member:
            raise bad_request("chat not found")
        return chat

    # --- threads --------------------------------------------------------------------------

    def topic(self, chat: Chat, thread_id: int | None) -> ForumTopic:
        """A live topic of a forum, for the forum topic methods."""
        if not chat.is_forum:
            raise bad_request("the chat is not a forum")
        if thread_id is None or thread_id <= 0:
            raise bad_request("invalid message thread identifier specified")
        topic = chat.topics.get(thread_id)
        if topic is None or topic.deleted:
            raise bad_request("TOPIC_ID_INVALID")
        return topic

    def placement(
        self,
        chat: Chat,
        sender_id: int,
        thread_id: int | None,
        reply_to_id: int | None,
    ) -> dict[str, Any]:
        """Where a new message goes: ``message_thread_id``, ``is_topic_message`` and
        ``reply_to_message``. In a forum a reply lands in the replied message's topic, and a
        topic message that replies to nothing replies to the topic's first (service) message,
        as in Telegram. A closed topic takes messages only from those who manage topics."""
        fields: dict[str, Any] = {}
        reply_to = chat.messages.get(reply_to_id) if reply_to_id else None
        if reply_to is not None and reply_to.get("_deleted"):
            reply_to = None
        if chat.is_forum:
            if thread_id is None and reply_to is not None and reply_to.get("is_topic_message"):
                thread_id = reply_to["message_thread_id"]
            if thread_id is not None:
                topic = chat.topics.get(thread_id)
                if topic is None or topic.deleted:
                    raise bad_request("message thread not found")
                if topic.closed and not self.can(chat, sender_id, "can_manage_topics"):
                    raise bad_request("TOPIC_CLOSED")
                fields["message_thread_id"] = thread_id
                fields["is_topic_message"] = True
                if reply_to is None:
                    reply_to = chat.messages.get(thread_id)
        elif thread_id is not None:
            root = chat.messages.get(thread_id)
            if chat.type == "private" or root is None or root.get("_deleted"):
                raise bad_request("message thread not found")
            fields["message_thread_id"] = thread_id
        if reply_to is not None:
            fields["reply_to_message"] = quoted(reply_to)
        return fields

    def chat_for_bot(self, bot: Bot, chat_id: Any) -> Chat:
        try:
            key = int(chat_id)
        except (TypeError, ValueError):
            key = None
            if isinstance(chat_id, str) and chat_id.startswith("@"):
                for user in self.users.values():
                    if user.username and f"@{user.username}".lower() == chat_id.lower():
                        key = user.id
        chat = self.chats.get(key) if key is not None else None
        if chat is None:
            raise bad_request("chat not found")
        if chat.type == "private":
            user = self.users[chat.id]
            if bot.id in user.blocked_bots:
                raise ApiError(403, "Forbidden: bot was blocked by the user")
            if chat.id not in bot.started_by:
                raise ApiError(403, "Forbidden: bot can't initiate conversation with a user")
        elif not chat.bot_member:
            raise bad_request("chat not found")
        return chat

    def new_message(self, chat: Chat, sender: dict[str, Any], **content: Any) -> dict[str, Any]:
        message: dict[str, Any] = {
            "message_id": chat.next_message_id,
            "from": sender,
            "chat": self.chat_dict(chat),
            "date": int(time.time()),
            **{k: v for k, v in content.items() if v is not None},
        }
        chat.next_message_id += 1
        chat.messages[message["message_id"]] = message
        return message

    # --- updates --------------------------------------------------------------------------

    def allows(self, bot: Bot, kind: str) -> bool:
        if bot.allowed_updates:
            return kind in bot.allowed_updates
        return kind not in DEFAULT_UPDATES_EXCLUDED and kind not in OPT_IN_UPDATES

    def push_update(self, bot: Bot, kind: str, payload: dict[str, Any]) -> int | None:
        if not self.allows(bot, kind):
            return None
        update_id = bot.next_update_id
        bot.next_update_id += 1
        bot.updates.append({"update_id": update_id, kind: payload})
        bot.poll_event.set()
        return update_id

    # --- events ---------------------------------------------------------------------------

    def emit(self, kind: str, chat_id: int | None, **payload: Any) -> dict[str, Any]:
        event = {
            "seq": len(self.events) + 1,
            "type": kind,
            "chat_id": chat_id,
            "at": time.time(),
            **payload,
        }
        self.events.append(event)
        self.events_changed.set()
        self.events_changed = asyncio.Event()
        return event

    async def wait_events(
        self, after: int, chat_id: int | None, wait: float
    ) -> list[dict[str, Any]]:
        deadline = time.monotonic() + wait
        while True:
            found = [e for e in self.events[after:] if chat_id is None or e["chat_id"] == chat_id]
            remaining = deadline - time.monotonic()
            if found or remaining <= 0:
                return found
            changed = self.events_changed
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), remaining)

    # --- faults ---------------------------------------------------------------------------

    def take_fault(self, bot: Bot, method: str, chat_id: Any) -> ApiError | None:
        for fault in self.faults:
            if fault.method != method or fault.remaining <= 0:
                continue
            if fault.bot_id is not None and fault.bot_id != bot.id:
                continue
            if fault.chat_id is not None and str(fault.chat_id) != str(chat_id):
                continue
            fault.remaining -= 1
            self.faults = [f for f in self.faults if f.remaining > 0]
            if fault.error_code == 429:
                retry = fault.retry_after or 1
                return ApiError(
                    429, f"Too Many Requests: retry after {retry}", {"retry_after": retry}
                )
            description = fault.description or {
                400: "Bad Request: injected failure",
                403: "Forbidden: bot was blocked by the user",
                500: "Internal Server Error: injected failure",
            }.get(fault.error_code, "Bad Request: injected failure")
            return ApiError(fault.error_code, description)
        return None

    # --- flood control --------------------------------------------------------------------

    def check_flood(self, bot: Bot, chat: Chat, *, draft: bool = False) -> None:
        o = self.options
        if draft:
            bucket = bot.draft_buckets.setdefault(chat.id, Bucket(o.draft_burst, o.draft_rate))
            buckets = [bucket]
        else:
            if chat.type == "private":
                bucket = bot.buckets.setdefault(chat.id, Bucket(o.private_burst, o.private_rate))
            else:
                bucket = bot.buckets.setdefault(chat.id, Bucket(o.group_burst, o.group_rate))
            assert bot.global_bucket is not None
            buckets = [bucket, bot.global_bucket]
        wait = max(b.wait_needed() for b in buckets)
        if wait:
            raise ApiError(429, f"Too Many Requests: retry after {wait}", {"retry_after": wait})
        for b in buckets:
            b.take()

    # --- files ----------------------------------------------------------------------------

    def store_file(
        self, content: bytes, kind: str, mime_type: str | None, file_name: str | None
    ) -> StoredFile:
        file_id = "BQAC" + secrets.token_urlsafe(24)
        extension = ""
        if file_name and "." in file_name:
            extension = "." + re.sub(r"[^A-Za-z0-9]", "", file_name.rsplit(".", 1)[1])[:8]
        elif kind == "photos":
            extension = ".jpg"
        stored = StoredFile(
            file_id=file_id,
            file_unique_id=secrets.token_urlsafe(9),
            file_path=f"{kind}/file_{len(self.files)}{extension}",
            content=content,
            mime_type=mime_type,
            file_name=file_name,
        )
        self.files[file_id] = stored
        self.files_by_path[stored.file_path] = stored
        return stored
