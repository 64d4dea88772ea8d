"""The sandbox's control API: act as Telegram users and read what the bot did.

All routes are JSON under ``/sandbox/api``:

- ``POST /users`` ``{first_name, last_name?, username?, language_code?, is_premium?, id?}`` → 201
  ``{user}``; ``GET /users`` → ``{users}``; ``POST /users/{id}/block`` ``{blocked, bot_id?}``.
- ``POST /groups`` ``{title, member_ids}`` → 201 ``{chat}``; ``GET /groups`` → ``{groups}``.
- ``POST /chats/{chat_id}/web-app-data`` ``{data, button_text}``: a Mini App's ``sendData``.
- ``POST /bots`` ``{token, username?, first_name?}``; ``GET /bots`` → ``{bots}`` with webhook
  info, commands per scope and language, and menu buttons.
- ``POST /chats/{chat_id}/messages`` ``{from_user_id?, text, reply_to_message_id?, bot_id?}``
  → 201 ``{message, update_id}``; ``.../documents`` ``{from_user_id?, file_name, mime_type,
  content_base64, caption?}`` and ``.../photos`` ``{from_user_id?, content_base64, caption?}``.
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
``{"error": "..."}``.
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
from sandbox.telegram.initdata import launch_url, sign_init_data
from sandbox.telegram.state import Bot, Chat, Fault, World

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class ControlError(Exception):
    pass


def _error(message: str, status: int = 400) -> web.Response:
    return web.json_response({"error": message}, status=status)


def guarded(handler: Handler) -> Handler:
    async def wrapper(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
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


def _deliver_message(
    world: World, chat: Chat, body: dict[str, Any], **content: Any
) -> web.Response:
    bot = _bot(world, body)
    sender = _sender(world, chat, body)
    reply_to = body.get("reply_to_message_id")
    message = world.new_message(chat, sender, **content)
    if reply_to is not None:
        original = chat.messages.get(int(reply_to))
        if original is None:
            raise ControlError(f"no message {reply_to} in chat {chat.id}")
        message["reply_to_message"] = {
            k: v for k, v in original.items() if not k.startswith("_") and k != "reply_to_message"
        }
    if chat.type == "private":
        bot.started_by.add(chat.id)
    public = {k: v for k, v in message.items() if not k.startswith("_")}
    update_id = world.push_update(bot, "message", public)
    world.emit("user_message", chat.id, message_id=message["message_id"], message=public)
    return web.json_response({"message": public, "update_id": update_id}, status=201)


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
    groups = [
        {**world.chat_dict(chat), "member_ids": chat.member_ids}
        for chat in world.chats.values()
        if chat.type != "private"
    ]
    return web.json_response({"groups": groups})


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
    if not title:
        raise ControlError("title is required")
    for member in members:
        if member not in world.users:
            raise ControlError(f"no user {member}")
    chat = world.create_group(title, members)
    return web.json_response(
        {"chat": {**world.chat_dict(chat), "member_ids": chat.member_ids}}, status=201
    )


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
    text = str(body.get("text") or "")
    if not text.strip():
        raise ControlError("text is required")
    if len(text) > 4096:
        raise ControlError("text is longer than 4096 characters")
    return _deliver_message(
        world, chat, body, text=text, entities=markup.command_entities(text) or None
    )


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
    public = {k: v for k, v in message.items() if not k.startswith("_")}
    update_id = world.push_update(
        bot,
        "callback_query",
        {
            "id": query_id,
            "from": sender,
            "message": public,
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
    }
    for kind in ("invoice", "successful_payment", "refunded_payment", "web_app_data"):
        if kind in message:
            item[kind] = message[kind]
    if "document" in message:
        document = message["document"]
        item["document"] = {**document, "url": _file_url(world, document["file_id"])}
    if "video" in message:
        video = message["video"]
        item["video"] = {**video, "url": _file_url(world, video["file_id"])}
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
    r.add_post("/sandbox/api/chats/{chat_id}/documents", send_document)
    r.add_post("/sandbox/api/chats/{chat_id}/photos", send_photo)
    r.add_post("/sandbox/api/chats/{chat_id}/callbacks", tap_callback)
    r.add_get("/sandbox/api/chats/{chat_id}", transcript)
    r.add_get("/sandbox/api/files/{file_id}", download_file)
    r.add_get("/sandbox/api/events", events)
    r.add_post("/sandbox/api/initdata", initdata)
    r.add_post("/sandbox/api/faults", add_fault)
    r.add_delete("/sandbox/api/faults", clear_faults)
