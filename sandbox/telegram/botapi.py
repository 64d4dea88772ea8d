"""The Bot API over HTTP: ``/bot<token>/<method>`` and ``/file/bot<token>/<path>``.

Envelope, status codes and error descriptions follow the official Bot API server.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import BodyPartReader, web

from sandbox.telegram import markup
from sandbox.telegram.state import ApiError, Bot, Chat, World, bad_request, public

Params = dict[str, Any]
Method = Callable[[World, Bot, Params], Awaitable[Any]]
JSON_FIELDS = {
    "reply_markup",
    "entities",
    "caption_entities",
    "allowed_updates",
    "commands",
    "scope",
    "menu_button",
    "reply_parameters",
    "link_preview_options",
    "message_ids",
    "results",
    "button",
}
METHODS: dict[str, Method] = {}


def method(name: str) -> Callable[[Method], Method]:
    def register(func: Method) -> Method:
        METHODS[name.lower()] = func
        return func

    return register


def ok(result: Any, description: str | None = None) -> web.Response:
    body: dict[str, Any] = {"ok": True, "result": result}
    if description:
        body["description"] = description
    return web.json_response(body)


def fail(error: ApiError) -> web.Response:
    body: dict[str, Any] = {
        "ok": False,
        "error_code": error.code,
        "description": error.description,
    }
    if error.parameters:
        body["parameters"] = error.parameters
    return web.json_response(body, status=error.code)


async def read_params(request: web.Request) -> tuple[Params, dict[str, tuple[bytes, str, str]]]:
    params: Params = dict(request.query)
    uploads: dict[str, tuple[bytes, str, str]] = {}
    if request.method == "POST" and request.can_read_body:
        ctype = request.content_type
        if ctype == "application/json":
            body = await request.json()
            if isinstance(body, dict):
                params.update(body)
        elif ctype == "multipart/form-data":
            reader = await request.multipart()
            async for part in reader:
                if not isinstance(part, BodyPartReader) or part.name is None:
                    continue
                data = await part.read()
                if part.filename:
                    uploads[part.name] = (
                        bytes(data),
                        part.filename,
                        part.headers.get("Content-Type", "application/octet-stream"),
                    )
                else:
                    params[part.name] = bytes(data).decode()
        else:
            params.update(await request.post())
    for key in JSON_FIELDS & params.keys():
        if isinstance(params[key], str):
            try:
                params[key] = json.loads(params[key])
            except ValueError as exc:
                raise bad_request(f"can't parse {key} JSON object") from exc
    return params, uploads


def _int(params: Params, key: str, *, required: bool = False) -> int | None:
    value = params.get(key)
    if value is None or value == "":
        if required:
            raise bad_request(f"{key} is empty" if key != "chat_id" else "chat_id is empty")
        return None
    try:
        return int(value)
    except (TypeError, ValueError) as exc:
        raise bad_request(f"invalid {key} specified") from exc


def _bool(params: Params, key: str) -> bool:
    value = params.get(key)
    return value in (True, "true", "True", "1", 1)


def check_markup(chat: Chat, raw: Any) -> dict[str, Any] | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise bad_request("can't parse reply keyboard markup JSON object")
    if "inline_keyboard" in raw:
        rows = raw["inline_keyboard"]
        if not isinstance(rows, list):
            raise bad_request("can't parse inline keyboard markup JSON object")
        for row in rows:
            for button in row:
                if not isinstance(button, dict) or not button.get("text"):
                    raise bad_request("text buttons are unallowed in the inline keyboard")
                if "callback_data" in button:
                    data = str(button["callback_data"]).encode()
                    if not 1 <= len(data) <= 64:
                        raise bad_request("BUTTON_DATA_INVALID")
                elif "web_app" in button:
                    if chat.type != "private":
                        raise bad_request("BUTTON_TYPE_INVALID")
                    if not str(button["web_app"].get("url", "")).startswith(("https:", "http:")):
                        raise bad_request("BUTTON_URL_INVALID")
                elif "url" in button:
                    if not str(button["url"]).startswith(("https:", "http:", "tg:")):
                        raise bad_request("BUTTON_URL_INVALID")
                elif not any(k in button for k in ("switch_inline_query", "pay", "copy_text")):
                    raise bad_request('can\'t find field "callback_data"')
    elif "keyboard" in raw:
        if not isinstance(raw["keyboard"], list):
            raise bad_request("can't parse reply keyboard markup JSON object")
    elif not ("remove_keyboard" in raw or "force_reply" in raw):
        raise bad_request("can't parse reply keyboard markup JSON object")
    return raw


def parse_text(params: Params, key: str = "text", *, allow_empty: bool = False) -> tuple[str, list]:
    raw = params.get(key)
    text = "" if raw is None else str(raw)
    entity_key = "entities" if key == "text" else "caption_entities"
    plain, entities = markup.parse(text, params.get("parse_mode"), params.get(entity_key))
    if not allow_empty and not plain.strip():
        raise bad_request("message text is empty")
    if markup.utf16_len(plain) > markup.MAX_TEXT:
        raise bad_request("message is too long")
    return plain, entities


def _parse_or_400(fn: Callable[[], Any]) -> Any:
    try:
        return fn()
    except ApiError:
        raise
    except ValueError as exc:
        raise bad_request(str(exc)) from exc


def _record_bot_message(world: World, bot: Bot, chat: Chat, message: dict[str, Any]) -> None:
    # A real message ends the drafts shown in the chat.
    for key, draft in list(chat.drafts.items()):
        if key[0] == bot.id and draft["active"]:
            draft["active"] = False
    world.emit("bot_message", chat.id, message_id=message["message_id"], message=message)


def _reply_to(params: Params) -> int | None:
    """The message to reply to: ``reply_parameters.message_id`` or ``reply_to_message_id``."""
    reply = params.get("reply_parameters") or {}
    reply_to = reply.get("message_id") if isinstance(reply, dict) else None
    if reply_to is not None:
        try:
            return int(reply_to)
        except (TypeError, ValueError) as exc:
            raise bad_request("can't parse reply parameters JSON object") from exc
    return _int(params, "reply_to_message_id")


def _placement(world: World, bot: Bot, chat: Chat, params: Params) -> dict[str, Any]:
    """Thread and reply fields of a message the bot sends (see ``World.placement``)."""
    return world.placement(chat, bot.id, _int(params, "message_thread_id"), _reply_to(params))


def _keyboards(message: dict[str, Any], reply_markup: dict[str, Any] | None) -> None:
    """An inline keyboard is part of the message; a reply keyboard only of the transcript."""
    if reply_markup and "inline_keyboard" in reply_markup:
        message["reply_markup"] = reply_markup
    elif reply_markup:
        message["_reply_keyboard"] = reply_markup


def _sendable_chat(world: World, bot: Bot, params: Params, method_name: str) -> Chat:
    chat_id = params.get("chat_id")
    if chat_id is None or chat_id == "":
        raise bad_request("chat_id is empty")
    fault = world.take_fault(bot, method_name, chat_id)
    if fault is not None:
        raise fault
    return world.chat_for_bot(bot, chat_id)


@method("getMe")
async def get_me(world: World, bot: Bot, params: Params) -> Any:
    return {
        **bot.as_user(),
        "can_join_groups": True,
        "can_read_all_group_messages": False,
        "supports_inline_queries": False,
        "can_connect_to_business": False,
        "has_main_web_app": False,
    }


@method("logOut")
async def log_out(world: World, bot: Bot, params: Params) -> Any:
    return True


@method("close")
async def close(world: World, bot: Bot, params: Params) -> Any:
    return True


@method("getUpdates")
async def get_updates(world: World, bot: Bot, params: Params) -> Any:
    if bot.webhook:
        raise ApiError(
            409,
            "Conflict: can't use getUpdates method while webhook is active; "
            "use deleteWebhook to delete the webhook first",
        )
    offset = _int(params, "offset") or 0
    limit = _int(params, "limit") or 100
    limit = min(max(limit, 1), 100)
    timeout = float(params.get("timeout") or 0)
    timeout = min(max(timeout, 0.0), world.options.long_poll_max)
    if "allowed_updates" in params and params["allowed_updates"] is not None:
        allowed = params["allowed_updates"]
        if not isinstance(allowed, list):
            raise bad_request("can't parse allowed updates")
        bot.allowed_updates = [str(a) for a in allowed]
    if offset > 0:
        bot.updates = [u for u in bot.updates if u["update_id"] >= offset]
    elif offset < 0:
        bot.updates = bot.updates[offset:]
    # A newer request ends a held one, as on the real server.
    bot.poll_generation += 1
    generation = bot.poll_generation
    old_event = bot.poll_event
    bot.poll_event = asyncio.Event()
    old_event.set()
    deadline = time.monotonic() + timeout
    while not bot.updates and time.monotonic() < deadline:
        event = bot.poll_event
        try:
            await asyncio.wait_for(event.wait(), deadline - time.monotonic())
        except TimeoutError:
            break
        if bot.poll_generation != generation:
            raise ApiError(
                409,
                "Conflict: terminated by other getUpdates request; "
                "make sure that only one bot instance is running",
            )
        if bot.webhook:
            raise ApiError(409, "Conflict: terminated by setWebhook request")
        if not bot.updates:
            bot.poll_event = asyncio.Event()
    return bot.updates[:limit]


@method("setWebhook")
async def set_webhook(world: World, bot: Bot, params: Params) -> Any:
    url = str(params.get("url") or "")
    if not url:
        return await delete_webhook(world, bot, params)
    secret = params.get("secret_token")
    if secret is not None and not markup.re.fullmatch(r"[A-Za-z0-9_-]{1,256}", str(secret)):
        raise bad_request("secret token contains unallowed characters")
    if not url.startswith(("https://", "http://")):
        raise bad_request("bad webhook: HTTPS url must be provided for webhook")
    max_connections = _int(params, "max_connections") or 40
    if not 1 <= max_connections <= 100:
        raise bad_request("bad webhook: max_connections must be between 1 and 100")
    allowed = params.get("allowed_updates")
    new = {
        "url": url,
        "secret_token": secret,
        "max_connections": max_connections,
    }
    if allowed is not None:
        bot.allowed_updates = [str(a) for a in allowed]
    if _bool(params, "drop_pending_updates"):
        bot.updates.clear()
    if bot.webhook == new:
        return True, "Webhook is already set"
    now = time.monotonic()
    if now - bot.webhook_last_set < 1.0:
        raise ApiError(429, "Too Many Requests: retry after 1", {"retry_after": 1})
    bot.webhook_last_set = now
    bot.webhook = new
    bot.webhook_error = None
    bot.poll_event.set()
    return True, "Webhook was set"


@method("deleteWebhook")
async def delete_webhook(world: World, bot: Bot, params: Params) -> Any:
    was = bot.webhook is not None
    bot.webhook = None
    bot.webhook_error = None
    if _bool(params, "drop_pending_updates"):
        bot.updates.clear()
    return True, "Webhook was deleted" if was else "Webhook is already deleted"


@method("getWebhookInfo")
async def get_webhook_info(world: World, bot: Bot, params: Params) -> Any:
    info: dict[str, Any] = {
        "url": bot.webhook["url"] if bot.webhook else "",
        "has_custom_certificate": False,
        "pending_update_count": len(bot.updates),
    }
    if bot.webhook:
        info["max_connections"] = bot.webhook["max_connections"]
        if bot.allowed_updates:
            info["allowed_updates"] = bot.allowed_updates
    if bot.webhook_error:
        info["last_error_date"], info["last_error_message"] = bot.webhook_error
    return info


@method("getChat")
async def get_chat(world: World, bot: Bot, params: Params) -> Any:
    chat_id = params.get("chat_id")
    try:
        chat = world.chats[int(chat_id)]  # type: ignore[arg-type]
    except (KeyError, TypeError, ValueError) as exc:
        raise bad_request("chat not found") from exc
    return {
        **world.chat_dict(chat),
        "accent_color_id": 0,
        "max_reaction_count": 11,
        "accepted_gift_types": {
            "unlimited_gifts": False,
            "limited_gifts": False,
            "unique_gifts": False,
            "premium_subscription": False,
            "gifts_from_channels": False,
        },
    }


@method("sendMessage")
async def send_message(world: World, bot: Bot, params: Params) -> Any:
    chat = _sendable_chat(world, bot, params, "sendmessage")
    text, entities = _parse_or_400(lambda: parse_text(params))
    reply_markup = check_markup(chat, params.get("reply_markup"))
    placement = _placement(world, bot, chat, params)
    world.check_flood(bot, chat)
    message = world.new_message(
        chat, bot.as_user(), **placement, text=text, entities=entities or None
    )
    _keyboards(message, reply_markup)
    _record_bot_message(world, bot, chat, message)
    return _public(message)


_public = public


def _bot_message(world: World, bot: Bot, params: Params, method_name: str) -> tuple[Chat, dict]:
    inline_id = params.get("inline_message_id")
    if inline_id:
        # A message a person sent through the bot's inline mode.
        if method_name not in ("editmessagetext", "editmessagereplymarkup"):
            raise bad_request("MESSAGE_ID_INVALID")
        found = world.inline_messages.get(str(inline_id))
        if found is None or found[2] != bot.id:
            raise bad_request("MESSAGE_ID_INVALID")
        inline_chat = world.chats[found[0]]
        inline_message = inline_chat.messages.get(found[1])
        if inline_message is None or inline_message.get("_deleted"):
            raise bad_request("MESSAGE_ID_INVALID")
        return inline_chat, inline_message
    chat_id = params.get("chat_id")
    fault = world.take_fault(bot, method_name, chat_id)
    if fault is not None:
        raise fault
    chat = world.chat_for_bot(bot, chat_id)
    message_id = _int(params, "message_id", required=True)
    message = chat.messages.get(message_id or 0)
    if message is None or message.get("_deleted"):
        raise bad_request("message to edit not found")
    if message["from"].get("id") != bot.id:
        raise bad_request("message can't be edited")
    return chat, message


@method("editMessageText")
async def edit_message_text(world: World, bot: Bot, params: Params) -> Any:
    chat, message = _bot_message(world, bot, params, "editmessagetext")
    text, entities = _parse_or_400(lambda: parse_text(params))
    reply_markup = check_markup(chat, params.get("reply_markup"))
    if (
        text == message.get("text")
        and (entities or None) == message.get("entities")
        and reply_markup == message.get("reply_markup")
    ):
        raise bad_request(
            "message is not modified: specified new message content and reply markup are "
            "exactly the same as a current content and reply markup of the message"
        )
    world.check_flood(bot, chat)
    message.setdefault("_edits", []).append(
        {
            "text": message.get("text"),
            "entities": message.get("entities"),
            "date": message.get("edit_date") or message["date"],
        }
    )
    message["text"] = text
    if entities:
        message["entities"] = entities
    else:
        message.pop("entities", None)
    if reply_markup:
        message["reply_markup"] = reply_markup
    else:
        message.pop("reply_markup", None)
    message["edit_date"] = int(time.time())
    world.emit(
        "message_edited", chat.id, message_id=message["message_id"], message=_public(message)
    )
    # An inline message is edited blind: Telegram answers True.
    return True if params.get("inline_message_id") else _public(message)


@method("editMessageReplyMarkup")
async def edit_message_reply_markup(world: World, bot: Bot, params: Params) -> Any:
    chat, message = _bot_message(world, bot, params, "editmessagereplymarkup")
    reply_markup = check_markup(chat, params.get("reply_markup"))
    if reply_markup is not None and not reply_markup.get("inline_keyboard"):
        reply_markup = None
    if reply_markup == message.get("reply_markup"):
        raise bad_request(
            "message is not modified: specified new message content and reply markup are "
            "exactly the same as a current content and reply markup of the message"
        )
    if reply_markup:
        message["reply_markup"] = reply_markup
    else:
        message.pop("reply_markup", None)
    message["edit_date"] = int(time.time())
    world.emit("markup_edited", chat.id, message_id=message["message_id"], message=_public(message))
    return True if params.get("inline_message_id") else _public(message)


@method("editMessageCaption")
async def edit_message_caption(world: World, bot: Bot, params: Params) -> Any:
    chat, message = _bot_message(world, bot, params, "editmessagecaption")
    if not any(k in message for k in ("photo", "document", "video", "audio", "voice", "animation")):
        raise bad_request("there is no caption in the message to edit")
    caption, entities = _parse_or_400(lambda: parse_text(params, "caption", allow_empty=True))
    reply_markup = check_markup(chat, params.get("reply_markup"))
    if caption == (message.get("caption") or "") and reply_markup == message.get("reply_markup"):
        raise bad_request(
            "message is not modified: specified new message content and reply markup are "
            "exactly the same as a current content and reply markup of the message"
        )
    world.check_flood(bot, chat)
    if caption:
        message["caption"] = caption
    else:
        message.pop("caption", None)
    if entities:
        message["caption_entities"] = entities
    else:
        message.pop("caption_entities", None)
    if reply_markup:
        message["reply_markup"] = reply_markup
    message["edit_date"] = int(time.time())
    world.emit(
        "message_edited", chat.id, message_id=message["message_id"], message=_public(message)
    )
    return _public(message)


@method("deleteMessage")
async def delete_message(world: World, bot: Bot, params: Params) -> Any:
    chat = world.chat_for_bot(bot, params.get("chat_id"))
    message_id = _int(params, "message_id", required=True)
    message = chat.messages.get(message_id or 0)
    if message is None or message.get("_deleted"):
        raise bad_request("message to delete not found")
    if (
        chat.type != "private"
        and message["from"].get("id") != bot.id
        and not world.can(chat, bot.id, "can_delete_messages")
    ):
        raise bad_request("message can't be deleted")
    message["_deleted"] = True
    world.emit("message_deleted", chat.id, message_id=message_id)
    return True


@method("sendMessageDraft")
async def send_message_draft(world: World, bot: Bot, params: Params) -> Any:
    chat = _sendable_chat(world, bot, params, "sendmessagedraft")
    if chat.type != "private":
        raise bad_request("sendMessageDraft can be used only in private chats")
    draft_id = _int(params, "draft_id", required=True)
    if not draft_id:
        raise bad_request("draft_id must be non-zero")
    text, entities = _parse_or_400(lambda: parse_text(params, allow_empty=True))
    world.check_flood(bot, chat, draft=True)
    now = time.time()
    draft = {
        "draft_id": draft_id,
        "text": text,
        "entities": entities,
        "html": markup.to_html(text, entities),
        "updated_at": now,
        "expires_at": now + world.options.draft_ttl,
        "active": True,
    }
    chat.drafts[(bot.id, draft_id)] = draft
    world.emit("draft", chat.id, draft_id=draft_id, text=text, entities=entities)
    return True


CHAT_ACTIONS = {
    "typing",
    "upload_photo",
    "record_video",
    "upload_video",
    "record_voice",
    "upload_voice",
    "upload_document",
    "choose_sticker",
    "find_location",
    "record_video_note",
    "upload_video_note",
}


@method("sendChatAction")
async def send_chat_action(world: World, bot: Bot, params: Params) -> Any:
    chat = _sendable_chat(world, bot, params, "sendchataction")
    action = str(params.get("action") or "")
    if action not in CHAT_ACTIONS:
        raise bad_request("wrong parameter action in request")
    chat.chat_actions.append({"action": action, "at": time.time()})
    world.emit("chat_action", chat.id, action=action)
    return True


@method("answerCallbackQuery")
async def answer_callback_query(world: World, bot: Bot, params: Params) -> Any:
    query_id = str(params.get("callback_query_id") or "")
    query = bot.callbacks.get(query_id)
    too_old = (
        query is None
        or query["answered"]
        or time.monotonic() - query["at"] > world.options.callback_query_ttl
    )
    if too_old:
        raise bad_request("query is too old and response timeout expired or query ID is invalid")
    assert query is not None
    query["answered"] = True
    answer = {
        "callback_query_id": query_id,
        "text": params.get("text"),
        "show_alert": _bool(params, "show_alert"),
        "url": params.get("url"),
        "at": time.time(),
    }
    chat = world.chats[query["chat_id"]]
    chat.callback_answers.append(answer)
    world.emit("callback_answered", chat.id, **answer)
    return True


def _scope_key(params: Params) -> tuple[str, str]:
    scope = params.get("scope") or {"type": "default"}
    if not isinstance(scope, dict) or "type" not in scope:
        raise bad_request("can't parse BotCommandScope JSON object")
    return json.dumps(scope, sort_keys=True), str(params.get("language_code") or "")


@method("setMyCommands")
async def set_my_commands(world: World, bot: Bot, params: Params) -> Any:
    commands = params.get("commands")
    if not isinstance(commands, list) or len(commands) > 100:
        raise bad_request("can't parse commands JSON object")
    for command in commands:
        name = str(command.get("command", "")) if isinstance(command, dict) else ""
        if not markup.re.fullmatch(r"[a-z0-9_]{1,32}", name):
            raise bad_request("BOT_COMMAND_INVALID")
        if not 1 <= len(str(command.get("description", ""))) <= 256:
            raise bad_request("BOT_COMMAND_DESCRIPTION_INVALID")
    key = _scope_key(params)
    bot.commands[key] = [
        {"command": c["command"], "description": c["description"]} for c in commands
    ]
    world.emit("commands_set", None, bot_id=bot.id, scope=key[0], language_code=key[1])
    return True


@method("getMyCommands")
async def get_my_commands(world: World, bot: Bot, params: Params) -> Any:
    return bot.commands.get(_scope_key(params), [])


@method("deleteMyCommands")
async def delete_my_commands(world: World, bot: Bot, params: Params) -> Any:
    bot.commands.pop(_scope_key(params), None)
    return True


@method("setChatMenuButton")
async def set_chat_menu_button(world: World, bot: Bot, params: Params) -> Any:
    button = params.get("menu_button") or {"type": "default"}
    if not isinstance(button, dict) or button.get("type") not in ("commands", "web_app", "default"):
        raise bad_request("can't parse menu button JSON object")
    if button["type"] == "web_app":
        url = str((button.get("web_app") or {}).get("url", ""))
        if not url.startswith(("https://", "http://")):
            raise bad_request("BUTTON_URL_INVALID")
    chat_id = _int(params, "chat_id")
    if chat_id is None:
        bot.default_menu_button = button if button["type"] != "default" else {"type": "commands"}
    else:
        chat = world.chat_for_bot(bot, chat_id)
        if chat.type != "private":
            raise bad_request("chat not found")
        if button["type"] == "default":
            bot.menu_buttons.pop(chat_id, None)
        else:
            bot.menu_buttons[chat_id] = button
    world.emit("menu_button_set", chat_id, bot_id=bot.id, menu_button=button)
    return True


@method("getChatMenuButton")
async def get_chat_menu_button(world: World, bot: Bot, params: Params) -> Any:
    chat_id = _int(params, "chat_id")
    if chat_id is not None and chat_id in bot.menu_buttons:
        return bot.menu_buttons[chat_id]
    return bot.default_menu_button


def _voice_mime(content: bytes) -> str | None:
    if content.startswith(b"OggS"):
        return "audio/ogg"
    if content.startswith(b"ID3") or content[:2] in (b"\xff\xfb", b"\xff\xf3", b"\xff\xf2"):
        return "audio/mpeg"
    if content[4:8] == b"ftyp":
        return "audio/mp4"
    return None


async def _send_file(
    world: World,
    bot: Bot,
    params: Params,
    uploads: dict[str, tuple[bytes, str, str]],
    field_name: str,
) -> Any:
    chat = _sendable_chat(world, bot, params, f"send{field_name}")
    ref = params.get(field_name)
    # Clients upload as `<field>=attach://<part name>` plus that part, or as the field itself.
    part = str(ref)[len("attach://") :] if str(ref or "").startswith("attach://") else field_name
    if part in uploads:
        content, filename, mime = uploads[part]
        if len(content) > world.options.max_upload_bytes:
            raise ApiError(413, "Request Entity Too Large")
        stored = world.store_file(content, f"{field_name}s", mime, filename)
    else:
        if not ref:
            raise bad_request(f"there is no {field_name} in the request")
        found = world.files.get(str(ref))
        if found is None:
            raise bad_request("wrong file identifier/HTTP URL specified")
        stored = found
    caption, caption_entities = _parse_or_400(
        lambda: parse_text(params, "caption", allow_empty=True)
    )
    if markup.utf16_len(caption) > 1024:
        raise bad_request("message caption is too long")
    reply_markup = check_markup(chat, params.get("reply_markup"))
    placement = _placement(world, bot, chat, params)
    world.check_flood(bot, chat)
    info: Any
    if field_name == "photo":
        info = [
            {
                "file_id": stored.file_id,
                "file_unique_id": stored.file_unique_id,
                "width": 1280,
                "height": 1280,
                "file_size": len(stored.content),
            }
        ]
    else:
        info = {
            "file_id": stored.file_id,
            "file_unique_id": stored.file_unique_id,
            "file_name": stored.file_name,
            "mime_type": stored.mime_type,
            "file_size": len(stored.content),
        }
        if field_name in ("voice", "video", "audio", "animation"):
            info["duration"] = _int(params, "duration") or 1
        if field_name in ("video", "animation"):
            info["width"] = _int(params, "width") or 1280
            info["height"] = _int(params, "height") or 720
        if field_name == "voice":
            info.pop("file_name")
            # Telegram tells a voice note's format from its bytes, not from the upload's type.
            info["mime_type"] = _voice_mime(stored.content) or stored.mime_type or "audio/ogg"
    message = world.new_message(
        chat,
        bot.as_user(),
        **placement,
        **{field_name: info},
        caption=caption or None,
        caption_entities=caption_entities or None,
    )
    _keyboards(message, reply_markup)
    _record_bot_message(world, bot, chat, message)
    return _public(message)


@method("getFile")
async def get_file(world: World, bot: Bot, params: Params) -> Any:
    stored = world.files.get(str(params.get("file_id") or ""))
    if stored is None:
        raise bad_request("invalid file_id")
    if len(stored.content) > world.options.max_download_bytes:
        raise bad_request("file is too big")
    return {
        "file_id": stored.file_id,
        "file_unique_id": stored.file_unique_id,
        "file_size": len(stored.content),
        "file_path": stored.file_path,
    }


FILE_METHODS = {
    "senddocument": "document",
    "sendphoto": "photo",
    "sendvideo": "video",
    "sendvoice": "voice",
    "sendaudio": "audio",
    "sendanimation": "animation",
}


async def handle_method(request: web.Request) -> web.Response:
    world = request.app[WORLD]
    name = request.match_info["method"].lower()
    try:
        bot = world.bot_for_token(request.match_info["token"])
        if name not in METHODS and name not in FILE_METHODS:
            raise ApiError(404, "Not Found")
        params, uploads = await read_params(request)
        if name in FILE_METHODS:
            result = await _send_file(world, bot, params, uploads, FILE_METHODS[name])
        else:
            result = await METHODS[name](world, bot, params)
    except ApiError as error:
        return fail(error)
    if isinstance(result, tuple):
        return ok(result[0], result[1])
    return ok(result)


async def handle_file(request: web.Request) -> web.StreamResponse:
    world = request.app[WORLD]
    try:
        world.bot_for_token(request.match_info["token"])
    except ApiError as error:
        return fail(error)
    stored = world.files_by_path.get(request.match_info["path"])
    if stored is None:
        return fail(ApiError(404, "Not Found"))
    return web.Response(
        body=stored.content, content_type=stored.mime_type or "application/octet-stream"
    )


def new_callback_id() -> str:
    return str(secrets.randbits(63))


WORLD = web.AppKey("telegram_world", World)


def setup_botapi(app: web.Application) -> None:
    app.router.add_route("*", r"/bot{token}/{method}", handle_method)
    app.router.add_get(r"/file/bot{token}/{path:.+}", handle_file)
