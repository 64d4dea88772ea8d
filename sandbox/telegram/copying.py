"""copyMessage, copyMessages, forwardMessage and forwardMessages.

A copy carries the content (text and entities, media, caption) and no link to the original; a
forward carries the content and ``forward_origin`` (Bot API 7 shape). Service messages cannot be
copied or forwarded; invoices can be forwarded but not copied. Bots never receive their own
messages as updates, so a copy or forward by the bot shows in the chat's transcript and events.
"""

from __future__ import annotations

import itertools
from typing import Any

from sandbox.telegram import markup
from sandbox.telegram.botapi import (
    Params,
    _int,
    _keyboards,
    _parse_or_400,
    _placement,
    _record_bot_message,
    _sendable_chat,
    check_markup,
    method,
    parse_text,
)
from sandbox.telegram.state import (
    CONTENT_FIELDS,
    MEDIA_KINDS,
    MESSAGE_KINDS,
    Bot,
    Chat,
    World,
    bad_request,
    public,
)


def is_service(message: dict[str, Any]) -> bool:
    return not any(kind in message for kind in MESSAGE_KINDS)


def is_media(message: dict[str, Any]) -> bool:
    return any(kind in message for kind in MEDIA_KINDS)


def content_of(message: dict[str, Any]) -> dict[str, Any]:
    return {k: message[k] for k in CONTENT_FIELDS if k in message}


def forward_origin(world: World, message: dict[str, Any]) -> dict[str, Any]:
    """Where a forward says the message came from; a forward of a forward keeps the first."""
    if "forward_origin" in message:
        return dict(message["forward_origin"])
    sender = message["from"]
    person = world.users.get(int(sender["id"])) if not sender.get("is_bot") else None
    if person is not None and person.hides_forwards:
        return {
            "type": "hidden_user",
            "date": message["date"],
            "sender_user_name": person.full_name,
        }
    return {"type": "user", "date": message["date"], "sender_user": sender}


def forwarded_content(world: World, message: dict[str, Any]) -> dict[str, Any]:
    """The fields of a forward of ``message`` (content, origin, an invoice's Pay button)."""
    fields = content_of(message)
    fields["forward_origin"] = forward_origin(world, message)
    if "invoice" in message:
        fields["invoice"] = message["invoice"]
        start = message["invoice"].get("start_parameter")
        if start:
            # A forwarded invoice with a start parameter opens the bot instead of paying.
            username = message["from"].get("username", "")
            url = f"https://t.me/{username}?start={start}"
            fields["reply_markup"] = {
                "inline_keyboard": [
                    [{"text": f"Pay ⭐️{message['invoice']['total_amount']}", "url": url}]
                ]
            }
        else:
            fields["reply_markup"] = message.get("reply_markup")
            fields["_invoice"] = message.get("_invoice")
    return fields


def _source_chat(world: World, bot: Bot, params: Params) -> Chat:
    from_chat_id = params.get("from_chat_id")
    if from_chat_id is None or from_chat_id == "":
        raise bad_request("chat not found")
    return world.readable_chat(bot, from_chat_id)


def _find(chat: Chat, message_id: int | None) -> dict[str, Any] | None:
    message = chat.messages.get(message_id) if message_id is not None else None
    if message is None or message.get("_deleted"):
        return None
    return message


def _message_ids(params: Params) -> list[int]:
    raw = params.get("message_ids")
    if not isinstance(raw, list) or not raw:
        raise bad_request("message_ids is empty")
    if len(raw) > 100:
        raise bad_request("too many messages")
    try:
        ids = [int(i) for i in raw]
    except (TypeError, ValueError) as exc:
        raise bad_request("can't parse message identifiers") from exc
    if any(b <= a for a, b in itertools.pairwise(ids)):
        raise bad_request("message identifiers must be in a strictly increasing order")
    return ids


def _new_caption(params: Params) -> tuple[str, list[Any]] | None:
    if params.get("caption") is None:
        return None
    caption, entities = _parse_or_400(lambda: parse_text(params, "caption", allow_empty=True))
    if markup.utf16_len(caption) > 1024:
        raise bad_request("message caption is too long")
    return caption, entities


def _copy_into(
    world: World,
    bot: Bot,
    chat: Chat,
    original: dict[str, Any],
    placement: dict[str, Any],
    *,
    caption: tuple[str, list[Any]] | None = None,
    remove_caption: bool = False,
) -> dict[str, Any]:
    content = content_of(original)
    if is_media(original) and (caption is not None or remove_caption):
        for key in ("caption", "caption_entities"):
            content.pop(key, None)
        if caption is not None and caption[0]:
            content["caption"] = caption[0]
            if caption[1]:
                content["caption_entities"] = caption[1]
    message = world.new_message(chat, bot.as_user(), **placement, **content)
    _record_bot_message(world, bot, chat, message)
    return message


def _forward_into(
    world: World, bot: Bot, chat: Chat, original: dict[str, Any], placement: dict[str, Any]
) -> dict[str, Any]:
    message = world.new_message(
        chat, bot.as_user(), **placement, **forwarded_content(world, original)
    )
    _record_bot_message(world, bot, chat, message)
    return message


@method("copyMessage")
async def copy_message(world: World, bot: Bot, params: Params) -> Any:
    chat = _sendable_chat(world, bot, params, "copymessage")
    original = _find(_source_chat(world, bot, params), _int(params, "message_id"))
    if original is None:
        raise bad_request("message to copy not found")
    if is_service(original) or "invoice" in original:
        raise bad_request("the message can't be copied")
    caption = _new_caption(params)
    reply_markup = check_markup(chat, params.get("reply_markup"))
    placement = _placement(world, bot, chat, params)
    world.check_flood(bot, chat)
    message = _copy_into(world, bot, chat, original, placement, caption=caption)
    _keyboards(message, reply_markup)
    return {"message_id": message["message_id"]}


@method("copyMessages")
async def copy_messages(world: World, bot: Bot, params: Params) -> Any:
    chat = _sendable_chat(world, bot, params, "copymessages")
    from_chat = _source_chat(world, bot, params)
    originals = [_find(from_chat, i) for i in _message_ids(params)]
    found = [m for m in originals if m is not None and not is_service(m) and "invoice" not in m]
    if not found:
        raise bad_request("messages to copy not found")
    placement = world.placement(chat, bot.id, _int(params, "message_thread_id"), None)
    world.check_flood(bot, chat)
    remove = params.get("remove_caption") in (True, "true", "True", "1", 1)
    return [
        {
            "message_id": _copy_into(world, bot, chat, m, placement, remove_caption=remove)[
                "message_id"
            ]
        }
        for m in found
    ]


@method("forwardMessage")
async def forward_message(world: World, bot: Bot, params: Params) -> Any:
    chat = _sendable_chat(world, bot, params, "forwardmessage")
    original = _find(_source_chat(world, bot, params), _int(params, "message_id"))
    if original is None:
        raise bad_request("message to forward not found")
    if is_service(original) and "invoice" not in original:
        raise bad_request("the message can't be forwarded")
    placement = world.placement(chat, bot.id, _int(params, "message_thread_id"), None)
    world.check_flood(bot, chat)
    return public(_forward_into(world, bot, chat, original, placement))


@method("forwardMessages")
async def forward_messages(world: World, bot: Bot, params: Params) -> Any:
    chat = _sendable_chat(world, bot, params, "forwardmessages")
    from_chat = _source_chat(world, bot, params)
    originals = [_find(from_chat, i) for i in _message_ids(params)]
    found = [m for m in originals if m is not None and (not is_service(m) or "invoice" in m)]
    if not found:
        raise bad_request("messages to forward not found")
    placement = world.placement(chat, bot.id, _int(params, "message_thread_id"), None)
    world.check_flood(bot, chat)
    return [
        {"message_id": _forward_into(world, bot, chat, m, placement)["message_id"]} for m in found
    ]
