"""The sandbox's control API: act as Telegram users and read what the bot did.

All routes are JSON under ``/sandbox/api``:

- ``POST /users`` ``{first_name, last_name?, username?, language_code?, is_premium?,
  hides_forwards?, id?}`` → 201 ``{user}``; ``GET /users`` → ``{users}``;
  ``POST /users/{id}/block`` ``{blocked, bot_id?}``.
- ``POST /groups`` ``{title, member_ids, type?, is_forum?, owner_id?, admin_ids?, bot_admin?,
  bot_rights?, with_bot?}`` → 201 ``{chat}``; ``GET /groups`` → ``{groups}``. ``type`` is
  ``group`` (default; id -xxxxxxxxxx) or ``supergroup`` (id -100xxxxxxxxxx); ``is_forum: true``
  makes a forum supergroup (``type`` may then be left out). The owner (default: the first
  member) and ``admin_ids`` are administrators with every right. Bots are in every group unless
  ``with_bot: false``; in a supergroup they are administrators with every right (including
  ``can_manage_topics``) unless ``bot_admin: false``, or with exactly the ``bot_rights`` given;
  in a basic group they are plain members unless ``bot_admin: true`` or ``bot_rights``.
- ``POST /chats/{chat_id}/web-app-data`` ``{data, button_text}``: a Mini App's ``sendData``.
- ``POST /bots`` ``{token, username?, first_name?}``; ``GET /bots`` → ``{bots}`` with webhook
  info, commands per scope and language, and menu buttons.
- ``POST /chats/{chat_id}/messages`` ``{from_user_id?, text, reply_to_message_id?,
  message_thread_id?, bot_id?}`` → 201 ``{message, update_id}``; ``.../documents``
  ``{from_user_id?, file_name, mime_type, content_base64, caption?, ...}`` and ``.../photos``
  ``{from_user_id?, content_base64, caption?, ...}``, ``.../voices`` ``{from_user_id?,
  content_base64, duration, mime_type?, caption?, ...}`` (a voice note) and ``.../audios``
  ``{from_user_id?, content_base64, duration, file_name?, mime_type?, title?, performer?,
  caption?, ...}`` (an audio file) take the same reply and thread fields. In
  a forum a message goes to the topic ``message_thread_id`` (or to the replied message's one).
- ``POST /chats/{chat_id}/messages/{message_id}/edit`` ``{text? | caption?, from_user_id?,
  bot_id?}`` → ``{message, update_id}``: the person edits their message; the bot gets
  ``edited_message``.
- ``POST /chats/{chat_id}/forwards`` ``{from_chat_id, message_id, from_user_id?,
  message_thread_id?, bot_id?}`` → 201 ``{message, update_id}``: the person forwards a message
  into the chat (with ``forward_origin``).
- ``POST /chats/{chat_id}/callbacks`` ``{from_user_id?, message_id, data}`` → 201
  ``{callback_query_id, update_id}``.
- ``GET /chats/{chat_id}`` → the transcript: messages (with display ``html``, edits, deleted
  flag), drafts, chat actions, callback answers.
- ``GET /events?after=&chat_id=&timeout=`` → ``{events, last_seq}``, long-polling up to 30 s.
- ``POST /initdata`` ``{user_id, start_param?, bot_id?, chat_type?, auth_date?, url?}`` →
  ``{init_data, url?}``: Mini App launch data signed as Telegram signs it.
- ``POST /faults`` ``{method, error_code, description?, retry_after?, count?, bot_id?,
  chat_id?}``; ``DELETE /faults``.

A private chat's id is the user's id; ``from_user_id`` defaults to it. Errors are 400
``{"error": "..."}`` (a refusal Telegram would give carries Telegram's description). A bot gets
every message people send in its groups (as with privacy mode off). Forum topics and
administrators: ``sandbox.telegram.forum``; Stars: ``sandbox.telegram.payments``; inline mode
(``@bot query``, choosing a result): ``sandbox.telegram.inline``.
"""

from __future__ import annotations

import base64
import binascii
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from sandbox.telegram import markup
from sandbox.telegram.botapi import WORLD, new_callback_id
from sandbox.telegram.copying import forwarded_content, is_service
from sandbox.telegram.initdata import launch_url, sign_init_data
from sandbox.telegram.state import (
    FULL_ADMIN_RIGHTS,
    MEDIA_KINDS,
    ApiError,
    Bot,
    Chat,
    Fault,
    World,
    public,
)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class ControlError(Exception):
    pass


def _error(message: str, status: int = 400) -> web.Response:
    return web.json_response({"error": message}, status=status)


def guarded(handler: Handler) -> Handler:
    async def wrapper(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except ApiError as exc:
            return _error(exc.description)
        except (ControlError, LookupError, ValueError, TypeError) as exc:
            return _error(str(exc) or type(exc).__name__)

    return wrapper


async def _body(request: web.Request) -> dict[str, Any]:
    if not request.can_read_body:
        return {}
    try:
        data = await request.json()
    except ValueError as exc:
        raise ControlError("the body must be a JSON object") from exc
    if not isinstance(data, dict):
        raise ControlError("the body must be a JSON object")
    return data


def _chat(world: World, request: web.Request) -> Chat:
    try:
        chat_id = int(request.match_info["chat_id"])
    except ValueError as exc:
        raise ControlError("chat_id must be an integer") from exc
    chat = world.chats.get(chat_id)
    if chat is None:
        raise ControlError(f"no chat {chat_id}")
    return chat


def _sender(world: World, chat: Chat, body: dict[str, Any]) -> dict[str, Any]:
    user_id = body.get("from_user_id", chat.id if chat.type == "private" else None)
    if user_id is None:
        raise ControlError("from_user_id is required in groups")
    user = world.users.get(int(user_id))
    if user is None:
        raise ControlError(f"no user {user_id}")
    if chat.type != "private" and user.id not in chat.member_ids:
        raise ControlError(f"user {user.id} is not a member of chat {chat.id}")
    return user.as_user()


def _bot(world: World, body: dict[str, Any]) -> Bot:
    bot_id = body.get("bot_id")
    return world.default_bot(int(bot_id) if bot_id is not None else None)


def _optional_int(body: dict[str, Any], key: str) -> int | None:
    value = body.get(key)
    if value is None or value == "":
        return None
    try:
        return int(value)
    except (TypeError, ValueError) as exc:
        raise ControlError(f"{key} must be an integer") from exc


def _deliver_message(
    world: World, chat: Chat, body: dict[str, Any], **content: Any
) -> web.Response:
    shown, update_id = _message_from_person(world, chat, body, **content)
    return web.json_response({"message": shown, "update_id": update_id}, status=201)


def _message_from_person(
    world: World, chat: Chat, body: dict[str, Any], **content: Any
) -> tuple[dict[str, Any], int | None]:
    bot = _bot(world, body)
    sender = _sender(world, chat, body)
    reply_to = _optional_int(body, "reply_to_message_id")
    if reply_to is not None:
        original = chat.messages.get(reply_to)
        if original is None or original.get("_deleted"):
            raise ControlError(f"no message {reply_to} in chat {chat.id}")
    placement = world.placement(
        chat, int(sender["id"]), _optional_int(body, "message_thread_id"), reply_to
    )
    message = world.new_message(chat, sender, **placement, **content)
    if chat.type == "private":
        bot.started_by.add(chat.id)
    shown = public(message)
    update_id = world.push_update(bot, "message", shown) if chat.bot_member else None
    world.emit("user_message", chat.id, message_id=message["message_id"], message=shown)
    return shown, update_id


@guarded
async def create_user(request: web.Request) -> web.Response:
    world = request.app[WORLD]
    body = await _body(request)
    first_name = str(body.get("first_name") or "").strip()
    if not first_name:
        raise ControlError("first_name is required")
    language = body.get("language_code")
    user = world.create_user(
        id=body.get("id"),
        first_name=first_name[:64],
        last_name=(str(body["last_name"])[:64] if body.get("last_name") else None),
        username=(str(body["username"]).lstrip("@")[:32] if body.get("username") else None),
        language_code=str(language) if language else None,
        is_premium=bool(body.get("is_premium", False)),
        hides_forwards=bool(body.get("hides_forwards", False)),
    )
    return web.json_response({"user": user.as_user()}, status=201)


@guarded
async def list_users(request: web.Request) -> web.Response:
    world = request.app[WORLD]
    return web.json_response({"users": [u.as_user() for u in world.users.values()]})


@guarded
async def block_user(request: web.Request) -> web.Response:
    world = request.app[WORLD]
    body = await _body(request)
    user = world.users.get(int(request.match_info["user_id"]))
    if user is None:
        raise ControlError("no such user")
    bot = _bot(world, body)
    blocked = bool(body.get("blocked", True))
    if blocked:
        user.blocked_bots.add(bot.id)
    else:
        user.blocked_bots.discard(bot.id)
    if world.allows(bot, "my_chat_member"):
        status = "kicked" if blocked else "member"
        world.push_update(
            bot,
            "my_chat_member",
            {
                "chat": user.as_chat(),
                "from": user.as_user(),
                "date": int(time.time()),
                "old_chat_member": {
                    "status": "member" if blocked else "kicked",
                    "user": bot.as_user(),
                },
                "new_chat_member": {"status": status, "user": bot.as_user()},
            },
        )
    return web.json_response({"blocked": blocked})


@guarded
async def list_groups(request: web.Request) -> web.Response:
    world = request.app[WORLD]
    groups = [group_info(world, chat) for chat in world.chats.values() if chat.type != "private"]
    return web.json_response({"groups": groups})


def group_info(world: World, chat: Chat) -> dict[str, Any]:
    """A group for the control API: members, administrators, topics."""
    return {
        **world.chat_dict(chat),
        "member_ids": chat.member_ids,
        "owner_id": chat.owner_id,
        "admin_ids": list(chat.admins),
        "with_bot": chat.bot_member,
        "bot_rights": chat.bot_rights,
        "topics": [
            {**topic.as_dict(), "closed": topic.closed, "deleted": topic.deleted}
            for topic in chat.topics.values()
        ],
    }


@guarded
async def web_app_data(request: web.Request) -> web.Response:
    """A Mini App opened from a reply keyboard sends data back (``Telegram.WebApp.sendData``)."""
    world = request.app[WORLD]
    chat = _chat(world, request)
    body = await _body(request)
    data = str(body.get("data") or "")
    if not 1 <= len(data.encode()) <= 4096:
        raise ControlError("data must be 1-4096 bytes")
    content = {"data": data, "button_text": str(body.get("button_text") or "")}
    return _deliver_message(world, chat, body, web_app_data=content)


@guarded
async def create_group(request: web.Request) -> web.Response:
    world = request.app[WORLD]
    body = await _body(request)
    title = str(body.get("title") or "").strip()
    members = [int(m) for m in body.get("member_ids") or []]
    admin_ids = [int(m) for m in body.get("admin_ids") or []]
    owner_id = _optional_int(body, "owner_id")
    if not title:
        raise ControlError("title is required")
    for member in [*members, *admin_ids, *([owner_id] if owner_id is not None else [])]:
        if member not in world.users:
            raise ControlError(f"no user {member}")
    is_forum = bool(body.get("is_forum", False))
    chat_type = str(body.get("type") or ("supergroup" if is_forum else "group"))
    bot_rights = body.get("bot_rights")
    if bot_rights is not None:
        if not isinstance(bot_rights, dict) or set(bot_rights) - set(FULL_ADMIN_RIGHTS):
            raise ControlError("bot_rights must be an object of ChatAdministratorRights flags")
        bot_rights = {key: bool(bot_rights.get(key, False)) for key in FULL_ADMIN_RIGHTS}
    elif body.get("bot_admin", chat_type == "supergroup"):
        bot_rights = dict(FULL_ADMIN_RIGHTS)
    chat = world.create_group(
        title,
        members,
        chat_type=chat_type,
        is_forum=is_forum,
        owner_id=owner_id,
        admin_ids=admin_ids,
        bot_member=bool(body.get("with_bot", True)),
        bot_rights=bot_rights,
    )
    return web.json_response({"chat": group_info(world, chat)}, status=201)


def _bot_info(bot: Bot) -> dict[str, Any]:
    return {
        **bot.as_user(),
        "webhook": {
            "url": bot.webhook["url"] if bot.webhook else "",
            "pending_update_count": len(bot.updates),
            "last_error_message": bot.webhook_error[1] if bot.webhook_error else None,
        },
        "commands": [
            {"scope": scope, "language_code": lang, "commands": commands}
            for (scope, lang), commands in bot.commands.items()
        ],
        "default_menu_button": bot.default_menu_button,
        "menu_buttons": {str(k): v for k, v in bot.menu_buttons.items()},
    }


@guarded
async def register_bot(request: web.Request) -> web.Response:
    world = request.app[WORLD]
    body = await _body(request)
    token = str(body.get("token") or "")
    try:
        bot = world.register_bot(token, body.get("username"), body.get("first_name"))
    except Exception as exc:
        raise ControlError("token does not look like a bot token") from exc
    return web.json_response({"bot": _bot_info(bot)}, status=201)


@guarded
async def list_bots(request: web.Request) -> web.Response:
    world = request.app[WORLD]
    return web.json_response({"bots": [_bot_info(b) for b in world.bots.values()]})


@guarded
async def send_message(request: web.Request) -> web.Response:
    world = request.app[WORLD]
    chat = _chat(world, request)
    body = await _body(request)
    return _deliver_message(world, chat, body, **_text_content(body))


def _text_content(body: dict[str, Any]) -> dict[str, Any]:
    """A person's text message, checked: the text and its command entities."""
    text = str(body.get("text") or "")
    if not text.strip():
        raise ControlError("text is required")
    if len(text) > 4096:
        raise ControlError("text is longer than 4096 characters")
    return {"text": text, "entities": markup.command_entities(text) or None}


@guarded
async def send_messages(request: web.Request) -> web.Response:
    """Many people send a text each at the same instant (a load test's burst): each item is
    ``chat_id``, ``text`` and optionally ``bot_id``; all are checked first (chat, sender, bot,
    text), then all are sent, in the order given."""
    world = request.app[WORLD]
    body = await _body(request)
    items = body.get("messages")
    if not isinstance(items, list) or not items:
        raise ControlError("messages: a non-empty list is required")
    checked: list[tuple[Chat, dict[str, Any], dict[str, Any]]] = []
    for item in items:
        if not isinstance(item, dict) or not set(item) <= {"chat_id", "text", "bot_id"}:
            raise ControlError("each message is an object with chat_id, text and bot_id")
        chat = world.chats.get(_optional_int(item, "chat_id") or 0)
        if chat is None:
            raise ControlError(f"no chat {item.get('chat_id')}")
        # What sending checks, checked before anything is sent.
        _bot(world, item)
        _sender(world, chat, item)
        checked.append((chat, item, _text_content(item)))
    sent = []
    for chat, item, content in checked:
        shown, update_id = _message_from_person(world, chat, item, **content)
        sent.append({"message": shown, "update_id": update_id})
    return web.json_response({"messages": sent}, status=201)


@guarded
async def edit_message(request: web.Request) -> web.Response:
    """A person edits their own message's text or caption."""
    world = request.app[WORLD]
    chat = _chat(world, request)
    body = await _body(request)
    bot = _bot(world, body)
    sender = _sender(world, chat, body)
    message_id = int(request.match_info["message_id"])
    message = chat.messages.get(message_id)
    if message is None or message.get("_deleted"):
        raise ControlError(f"no message {message_id} in chat {chat.id}")
    if message["from"].get("id") != sender["id"]:
        raise ControlError(f"message {message_id} was not sent by user {sender['id']}")
    previous = message.get("edit_date") or message["date"]
    if "text" in body:
        text = str(body.get("text") or "")
        if "text" not in message:
            raise ControlError("the message has no text; edit its caption")
        if not text.strip():
            raise ControlError("text is required")
        if len(text) > 4096:
            raise ControlError("text is longer than 4096 characters")
        if text == message["text"]:
            raise ControlError("message is not modified")
        message.setdefault("_edits", []).append(
            {"text": message["text"], "entities": message.get("entities"), "date": previous}
        )
        message["text"] = text
        entities = markup.command_entities(text)
        if entities:
            message["entities"] = entities
        else:
            message.pop("entities", None)
    elif "caption" in body:
        caption = str(body.get("caption") or "")
        if not any(kind in message for kind in MEDIA_KINDS):
            raise ControlError("the message has no media to caption")
        if len(caption) > 1024:
            raise ControlError("caption is longer than 1024 characters")
        if caption == (message.get("caption") or ""):
            raise ControlError("message is not modified")
        message.setdefault("_edits", []).append(
            {"caption": message.get("caption"), "date": previous}
        )
        message.pop("caption_entities", None)
        if caption:
            message["caption"] = caption
        else:
            message.pop("caption", None)
    else:
        raise ControlError("text or caption is required")
    message["edit_date"] = int(time.time())
    shown = public(message)
    update_id = world.push_update(bot, "edited_message", shown) if chat.bot_member else None
    world.emit("user_message_edited", chat.id, message_id=message_id, message=shown)
    return web.json_response({"message": shown, "update_id": update_id})


@guarded
async def forward_message(request: web.Request) -> web.Response:
    """A person forwards a message they can see into this chat."""
    world = request.app[WORLD]
    chat = _chat(world, request)
    body = await _body(request)
    bot = _bot(world, body)
    sender = _sender(world, chat, body)
    source_id = _optional_int(body, "from_chat_id")
    source = world.chats.get(source_id) if source_id is not None else None
    if source is None:
        raise ControlError(f"no chat {source_id}")
    sees = (
        source.id == sender["id"] if source.type == "private" else sender["id"] in source.member_ids
    )
    if not sees:
        raise ControlError(f"user {sender['id']} cannot see chat {source.id}")
    message_id = _optional_int(body, "message_id")
    original = source.messages.get(message_id) if message_id is not None else None
    if original is None or original.get("_deleted"):
        raise ControlError(f"no message {message_id} in chat {source.id}")
    if is_service(original) and "invoice" not in original:
        raise ControlError("the message can't be forwarded")
    placement = world.placement(
        chat, int(sender["id"]), _optional_int(body, "message_thread_id"), None
    )
    message = world.new_message(chat, sender, **placement, **forwarded_content(world, original))
    if chat.type == "private":
        bot.started_by.add(chat.id)
    shown = public(message)
    update_id = world.push_update(bot, "message", shown) if chat.bot_member else None
    world.emit("user_message", chat.id, message_id=message["message_id"], message=shown)
    return web.json_response({"message": shown, "update_id": update_id}, status=201)


def _content(body: dict[str, Any]) -> bytes:
    try:
        return base64.b64decode(str(body.get("content_base64") or ""), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ControlError("content_base64 is not valid base64") from exc


@guarded
async def send_document(request: web.Request) -> web.Response:
    world = request.app[WORLD]
    chat = _chat(world, request)
    body = await _body(request)
    content = _content(body)
    name = str(body.get("file_name") or "file.bin")
    mime = str(body.get("mime_type") or "application/octet-stream")
    stored = world.store_file(content, "documents", mime, name)
    document = {
        "file_id": stored.file_id,
        "file_unique_id": stored.file_unique_id,
        "file_name": name,
        "mime_type": mime,
        "file_size": len(content),
    }
    return _deliver_message(
        world, chat, body, document=document, caption=body.get("caption") or None
    )


@guarded
async def send_photo(request: web.Request) -> web.Response:
    world = request.app[WORLD]
    chat = _chat(world, request)
    body = await _body(request)
    content = _content(body)
    stored = world.store_file(content, "photos", "image/jpeg", None)
    sizes = [
        {
            "file_id": stored.file_id,
            "file_unique_id": stored.file_unique_id,
            "width": 1280,
            "height": 1280,
            "file_size": len(content),
        }
    ]
    return _deliver_message(world, chat, body, photo=sizes, caption=body.get("caption") or None)


def _duration(body: dict[str, Any]) -> int:
    duration = _optional_int(body, "duration")
    if duration is None or duration < 0:
        raise ControlError("duration (whole seconds) is required")
    return duration


@guarded
async def send_voice(request: web.Request) -> web.Response:
    world = request.app[WORLD]
    chat = _chat(world, request)
    body = await _body(request)
    content = _content(body)
    mime = str(body.get("mime_type") or "audio/ogg")
    stored = world.store_file(content, "voice", mime, None)
    voice = {
        "file_id": stored.file_id,
        "file_unique_id": stored.file_unique_id,
        "duration": _duration(body),
        "mime_type": mime,
        "file_size": len(content),
    }
    return _deliver_message(world, chat, body, voice=voice, caption=body.get("caption") or None)


@guarded
async def send_audio(request: web.Request) -> web.Response:
    world = request.app[WORLD]
    chat = _chat(world, request)
    body = await _body(request)
    content = _content(body)
    name = str(body.get("file_name") or "audio.mp3")
    mime = str(body.get("mime_type") or "audio/mpeg")
    stored = world.store_file(content, "music", mime, name)
    audio: dict[str, Any] = {
        "file_id": stored.file_id,
        "file_unique_id": stored.file_unique_id,
        "duration": _duration(body),
        "file_name": name,
        "mime_type": mime,
        "file_size": len(content),
    }
    for field in ("title", "performer"):
        if body.get(field):
            audio[field] = str(body[field])
    return _deliver_message(world, chat, body, audio=audio, caption=body.get("caption") or None)


@guarded
async def tap_callback(request: web.Request) -> web.Response:
    world = request.app[WORLD]
    chat = _chat(world, request)
    body = await _body(request)
    bot = _bot(world, body)
    sender = _sender(world, chat, body)
    message = chat.messages.get(int(body.get("message_id") or 0))
    if message is None or message.get("_deleted"):
        raise ControlError("no such message")
    data = str(body.get("data") or "")
    buttons = [
        b
        for row in (message.get("reply_markup") or {}).get("inline_keyboard", [])
        for b in row
        if b.get("callback_data") == data
    ]
    if not buttons:
        raise ControlError("the message has no button with this callback_data")
    query_id = new_callback_id()
    bot.callbacks[query_id] = {"chat_id": chat.id, "at": time.monotonic(), "answered": False}
    update_id = world.push_update(
        bot,
        "callback_query",
        {
            "id": query_id,
            "from": sender,
            "message": public(message),
            "chat_instance": str(abs(chat.id) * 7919 % 10**12),
            "data": data,
        },
    )
    world.emit("callback_tapped", chat.id, message_id=message["message_id"], data=data)
    return web.json_response({"callback_query_id": query_id, "update_id": update_id}, status=201)


def _file_url(world: World, file_id: str) -> str | None:
    stored = world.files.get(file_id)
    return f"/sandbox/api/files/{file_id}" if stored else None


def _transcript_message(world: World, message: dict[str, Any]) -> dict[str, Any]:
    text = message.get("text")
    entities = message.get("entities") or []
    caption = message.get("caption")
    item = {
        "message_id": message["message_id"],
        "from": message["from"],
        "is_bot_message": bool(message["from"].get("is_bot")),
        "date": message["date"],
        "text": text,
        "entities": entities,
        "html": markup.to_html(text, entities) if text is not None else None,
        "caption": caption,
        "caption_html": markup.to_html(caption, message.get("caption_entities") or [])
        if caption
        else None,
        "reply_markup": message.get("reply_markup"),
        "reply_keyboard": message.get("_reply_keyboard"),
        "edit_date": message.get("edit_date"),
        "edits": message.get("_edits", []),
        "deleted": bool(message.get("_deleted")),
        "reply_to_message_id": (message.get("reply_to_message") or {}).get("message_id"),
        "message_thread_id": message.get("message_thread_id"),
        "is_topic_message": bool(message.get("is_topic_message")),
        # Sent through a bot's inline mode.
        "via_bot": message.get("via_bot"),
    }
    for kind in (
        "invoice",
        "successful_payment",
        "refunded_payment",
        "web_app_data",
        "forward_origin",
        "forum_topic_created",
        "forum_topic_edited",
        "forum_topic_closed",
        "forum_topic_reopened",
    ):
        if kind in message:
            item[kind] = message[kind]
    for kind in ("document", "video", "voice", "audio", "animation"):
        if kind in message:
            media = message[kind]
            item[kind] = {**media, "url": _file_url(world, media["file_id"])}
    if "photo" in message:
        photo = message["photo"][-1]
        item["photo"] = {**photo, "url": _file_url(world, photo["file_id"])}
    return item


@guarded
async def transcript(request: web.Request) -> web.Response:
    world = request.app[WORLD]
    chat = _chat(world, request)
    now = time.time()
    drafts = []
    for (_, draft_id), draft in chat.drafts.items():
        drafts.append(
            {
                "draft_id": draft_id,
                "text": draft["text"],
                "entities": draft["entities"],
                "html": draft["html"],
                "updated_at": draft["updated_at"],
                "active": draft["active"] and draft["expires_at"] > now,
            }
        )
    return web.json_response(
        {
            "chat": world.chat_dict(chat),
            "messages": [_transcript_message(world, m) for m in chat.messages.values()],
            "drafts": drafts,
            "chat_actions": chat.chat_actions[-20:],
            "callback_answers": chat.callback_answers,
            "topics": [
                {**topic.as_dict(), "closed": topic.closed, "deleted": topic.deleted}
                for topic in chat.topics.values()
            ],
        }
    )


@guarded
async def download_file(request: web.Request) -> web.Response:
    world = request.app[WORLD]
    stored = world.files.get(request.match_info["file_id"])
    if stored is None:
        raise web.HTTPNotFound()
    headers = {}
    if stored.file_name:
        safe = "".join(c for c in stored.file_name if c.isalnum() or c in "._-") or "file"
        headers["Content-Disposition"] = f'attachment; filename="{safe}"'
    return web.Response(
        body=stored.content,
        content_type=stored.mime_type or "application/octet-stream",
        headers=headers,
    )


@guarded
async def events(request: web.Request) -> web.Response:
    world = request.app[WORLD]
    after = int(request.query.get("after") or 0)
    chat_id = request.query.get("chat_id")
    timeout = min(max(float(request.query.get("timeout") or 0), 0.0), 30.0)
    found = await world.wait_events(after, int(chat_id) if chat_id else None, timeout)
    return web.json_response({"events": found, "last_seq": len(world.events)})


@guarded
async def initdata(request: web.Request) -> web.Response:
    world = request.app[WORLD]
    body = await _body(request)
    user = world.users.get(int(body.get("user_id") or 0))
    if user is None:
        raise ControlError("no such user")
    bot = _bot(world, body)
    start_param = body.get("start_param") or None
    data = sign_init_data(
        bot.token,
        user=user.as_user(),
        auth_date=int(body.get("auth_date") or time.time()),
        start_param=str(start_param) if start_param else None,
        chat_type=body.get("chat_type"),
    )
    result: dict[str, Any] = {"init_data": data}
    if body.get("url"):
        result["url"] = launch_url(str(body["url"]), data, start_param)
    return web.json_response(result)


@guarded
async def add_fault(request: web.Request) -> web.Response:
    world = request.app[WORLD]
    body = await _body(request)
    method = str(body.get("method") or "").lower()
    code = int(body.get("error_code") or 0)
    if not method or code not in (400, 403, 404, 409, 429, 500, 502):
        raise ControlError("method and a Telegram error_code are required")
    world.faults.append(
        Fault(
            method=method,
            error_code=code,
            description=body.get("description"),
            retry_after=int(body["retry_after"]) if body.get("retry_after") else None,
            remaining=int(body.get("count") or 1),
            bot_id=int(body["bot_id"]) if body.get("bot_id") else None,
            chat_id=int(body["chat_id"]) if body.get("chat_id") else None,
        )
    )
    return web.json_response({"faults": len(world.faults)}, status=201)


@guarded
async def clear_faults(request: web.Request) -> web.Response:
    request.app[WORLD].faults.clear()
    return web.json_response({"faults": 0})


def setup_control(app: web.Application) -> None:
    r = app.router
    r.add_post("/sandbox/api/users", create_user)
    r.add_get("/sandbox/api/users", list_users)
    r.add_post("/sandbox/api/users/{user_id}/block", block_user)
    r.add_post("/sandbox/api/groups", create_group)
    r.add_get("/sandbox/api/groups", list_groups)
    r.add_post("/sandbox/api/chats/{chat_id}/web-app-data", web_app_data)
    r.add_post("/sandbox/api/bots", register_bot)
    r.add_get("/sandbox/api/bots", list_bots)
    r.add_post("/sandbox/api/chats/{chat_id}/messages", send_message)
    r.add_post("/sandbox/api/messages", send_messages)
    r.add_post("/sandbox/api/chats/{chat_id}/messages/{message_id}/edit", edit_message)
    r.add_post("/sandbox/api/chats/{chat_id}/forwards", forward_message)
    r.add_post("/sandbox/api/chats/{chat_id}/documents", send_document)
    r.add_post("/sandbox/api/chats/{chat_id}/photos", send_photo)
    r.add_post("/sandbox/api/chats/{chat_id}/voices", send_voice)
    r.add_post("/sandbox/api/chats/{chat_id}/audios", send_audio)
    r.add_post("/sandbox/api/chats/{chat_id}/callbacks", tap_callback)
    r.add_get("/sandbox/api/chats/{chat_id}", transcript)
    r.add_get("/sandbox/api/files/{file_id}", download_file)
    r.add_get("/sandbox/api/events", events)
    r.add_post("/sandbox/api/initdata", initdata)
    r.add_post("/sandbox/api/faults", add_fault)
    r.add_delete("/sandbox/api/faults", clear_faults)
