"""Forum supergroups: topics, administrators and their rights.

Bot API: ``createForumTopic``, ``editForumTopic``, ``closeForumTopic``, ``reopenForumTopic``,
``deleteForumTopic``, ``getChatMember``, ``getChatAdministrators``, ``getChatMemberCount``.
A topic's ``message_thread_id`` is the id of its ``forum_topic_created`` service message. Topic
names are cleaned and cut to 128 characters as Telegram does; an empty name is refused. Managing
a topic takes ``can_manage_topics`` (deleting one ``can_delete_messages``), except for the
topic's own creator.

Control API (JSON under ``/sandbox/api``):

- ``POST /chats/{chat_id}/admins`` ``{user_id? | bot_id?, rights?, is_admin?}`` → ``{member}``:
  promote a person or a bot (default: the most recently active bot) with ``rights`` (a subset
  of ChatAdministratorRights set to true; default all), or demote with ``is_admin: false``.
- ``POST /chats/{chat_id}/topics`` ``{from_user_id, name, icon_color?, bot_id?}`` → 201
  ``{topic, message, update_id}``: a person creates a topic.
- ``POST /chats/{chat_id}/topics/{thread_id}/{edit|close|reopen|delete}`` ``{from_user_id,
  name?, icon_custom_emoji_id?, bot_id?}`` → ``{topic, message?, update_id?}``: a person
  manages a topic; the service message reaches the bot as a ``message`` update.
"""

from __future__ import annotations

import time
from typing import Any

from aiohttp import web

from sandbox.telegram.botapi import (
    WORLD,
    Params,
    _int,
    _record_bot_message,
    _sendable_chat,
    method,
)
from sandbox.telegram.control import ControlError, _body, _bot, _chat, _sender, guarded
from sandbox.telegram.state import (
    FULL_ADMIN_RIGHTS,
    TOPIC_ICON_COLORS,
    ApiError,
    Bot,
    Chat,
    ForumTopic,
    World,
    bad_request,
    public,
    quoted,
)

MAX_TOPIC_NAME = 128


def clean_name(raw: Any) -> str:
    """A topic name as Telegram keeps it: line breaks become spaces, other control characters
    go, surrounding spaces are trimmed and the name is cut to 128 characters."""
    text = "".join(
        " " if ch in "\r\n\t" else ch for ch in str(raw or "") if ch.isprintable() or ch in "\r\n\t"
    )
    return text.strip()[:MAX_TOPIC_NAME].strip()


def _emit_topic(world: World, chat: Chat, kind: str, topic: ForumTopic, actor_id: int) -> None:
    world.emit(
        kind,
        chat.id,
        message_thread_id=topic.message_thread_id,
        topic={**topic.as_dict(), "closed": topic.closed, "deleted": topic.deleted},
        by=actor_id,
    )


def _service(
    world: World, chat: Chat, actor: dict[str, Any], topic: ForumTopic, **content: Any
) -> dict[str, Any]:
    """A service message inside a topic."""
    root = chat.messages.get(topic.message_thread_id)
    return world.new_message(
        chat,
        actor,
        message_thread_id=topic.message_thread_id,
        is_topic_message=True,
        reply_to_message=quoted(root) if root is not None else None,
        **content,
    )


def create_topic(
    world: World,
    chat: Chat,
    actor: dict[str, Any],
    name: Any,
    icon_color: int | None,
    icon_custom_emoji_id: str | None,
) -> tuple[ForumTopic, dict[str, Any]]:
    actor_id = int(actor["id"])
    if not chat.is_forum:
        raise bad_request("the chat is not a forum")
    if not world.can(chat, actor_id, "can_manage_topics"):
        raise bad_request("not enough rights to create a topic")
    title = clean_name(name)
    if not title:
        raise bad_request("title must be non-empty")
    if icon_color is None:
        icon_color = TOPIC_ICON_COLORS[0]
    elif icon_color not in TOPIC_ICON_COLORS:
        raise bad_request("invalid icon color specified")
    topic = ForumTopic(
        message_thread_id=chat.next_message_id,
        name=title,
        icon_color=icon_color,
        creator_id=actor_id,
        icon_custom_emoji_id=icon_custom_emoji_id or None,
    )
    created: dict[str, Any] = {"name": title, "icon_color": icon_color}
    if topic.icon_custom_emoji_id:
        created["icon_custom_emoji_id"] = topic.icon_custom_emoji_id
    message = world.new_message(
        chat,
        actor,
        message_thread_id=topic.message_thread_id,
        is_topic_message=True,
        forum_topic_created=created,
    )
    chat.topics[topic.message_thread_id] = topic
    _emit_topic(world, chat, "forum_topic_created", topic, actor_id)
    return topic, message


def _may_manage(world: World, chat: Chat, actor_id: int, topic: ForumTopic, right: str) -> bool:
    return topic.creator_id == actor_id or world.can(chat, actor_id, right)


def edit_topic(
    world: World,
    chat: Chat,
    actor: dict[str, Any],
    thread_id: int | None,
    name: Any,
    icon_custom_emoji_id: str | None,
) -> tuple[ForumTopic, dict[str, Any] | None]:
    """``icon_custom_emoji_id`` None: keep the icon; "": remove it."""
    actor_id = int(actor["id"])
    topic = world.topic(chat, thread_id)
    if not _may_manage(world, chat, actor_id, topic, "can_manage_topics"):
        raise bad_request("not enough rights to edit the topic")
    edit_name = name is not None and str(name) != ""
    title = clean_name(name) if edit_name else topic.name
    if edit_name and not title:
        raise bad_request("title must be non-empty")
    if not edit_name and icon_custom_emoji_id is None:
        return topic, None
    new_icon = topic.icon_custom_emoji_id if icon_custom_emoji_id is None else icon_custom_emoji_id
    if title == topic.name and (new_icon or None) == topic.icon_custom_emoji_id:
        raise bad_request("TOPIC_NOT_MODIFIED")
    edited: dict[str, Any] = {}
    if title != topic.name:
        edited["name"] = title
    if (new_icon or None) != topic.icon_custom_emoji_id:
        edited["icon_custom_emoji_id"] = new_icon or ""
    topic.name = title
    topic.icon_custom_emoji_id = new_icon or None
    message = _service(world, chat, actor, topic, forum_topic_edited=edited)
    _emit_topic(world, chat, "forum_topic_edited", topic, actor_id)
    return topic, message


def toggle_topic(
    world: World, chat: Chat, actor: dict[str, Any], thread_id: int | None, closed: bool
) -> tuple[ForumTopic, dict[str, Any]]:
    actor_id = int(actor["id"])
    topic = world.topic(chat, thread_id)
    if not _may_manage(world, chat, actor_id, topic, "can_manage_topics"):
        raise bad_request("not enough rights to close or open the topic")
    if topic.closed == closed:
        raise bad_request("TOPIC_NOT_MODIFIED")
    topic.closed = closed
    kind = "forum_topic_closed" if closed else "forum_topic_reopened"
    message = _service(world, chat, actor, topic, **{kind: {}})
    _emit_topic(world, chat, kind, topic, actor_id)
    return topic, message


def delete_topic(
    world: World, chat: Chat, actor: dict[str, Any], thread_id: int | None
) -> ForumTopic:
    """The topic goes with all its messages."""
    actor_id = int(actor["id"])
    topic = world.topic(chat, thread_id)
    if not _may_manage(world, chat, actor_id, topic, "can_delete_messages"):
        raise bad_request("not enough rights to delete the topic")
    topic.deleted = True
    gone = []
    for message in chat.messages.values():
        if message.get("message_thread_id") == topic.message_thread_id:
            message["_deleted"] = True
            gone.append(message["message_id"])
    _emit_topic(world, chat, "forum_topic_deleted", topic, actor_id)
    world.emit("messages_deleted", chat.id, message_ids=gone)
    return topic


# --- Bot API ---------------------------------------------------------------------------------


def _icon(params: Params, key: str) -> str | None:
    value = params.get(key)
    return None if value is None else str(value)


def _bot_made(world: World, bot: Bot, chat: Chat, message: dict[str, Any] | None) -> None:
    if message is not None:
        _record_bot_message(world, bot, chat, message)


@method("createForumTopic")
async def create_forum_topic(world: World, bot: Bot, params: Params) -> Any:
    chat = _sendable_chat(world, bot, params, "createforumtopic")
    if params.get("name") is None:
        raise bad_request("name is empty")
    topic, message = create_topic(
        world,
        chat,
        bot.as_user(),
        params.get("name"),
        _int(params, "icon_color"),
        _icon(params, "icon_custom_emoji_id"),
    )
    _bot_made(world, bot, chat, message)
    return topic.as_dict()


@method("editForumTopic")
async def edit_forum_topic(world: World, bot: Bot, params: Params) -> Any:
    chat = _sendable_chat(world, bot, params, "editforumtopic")
    _, message = edit_topic(
        world,
        chat,
        bot.as_user(),
        _int(params, "message_thread_id", required=True),
        params.get("name"),
        _icon(params, "icon_custom_emoji_id"),
    )
    _bot_made(world, bot, chat, message)
    return True


@method("closeForumTopic")
async def close_forum_topic(world: World, bot: Bot, params: Params) -> Any:
    chat = _sendable_chat(world, bot, params, "closeforumtopic")
    thread_id = _int(params, "message_thread_id", required=True)
    _, message = toggle_topic(world, chat, bot.as_user(), thread_id, True)
    _bot_made(world, bot, chat, message)
    return True


@method("reopenForumTopic")
async def reopen_forum_topic(world: World, bot: Bot, params: Params) -> Any:
    chat = _sendable_chat(world, bot, params, "reopenforumtopic")
    thread_id = _int(params, "message_thread_id", required=True)
    _, message = toggle_topic(world, chat, bot.as_user(), thread_id, False)
    _bot_made(world, bot, chat, message)
    return True


@method("deleteForumTopic")
async def delete_forum_topic(world: World, bot: Bot, params: Params) -> Any:
    chat = _sendable_chat(world, bot, params, "deleteforumtopic")
    delete_topic(world, chat, bot.as_user(), _int(params, "message_thread_id", required=True))
    return True


def _member_chat(world: World, bot: Bot, params: Params) -> Chat:
    try:
        chat = world.chats.get(int(params.get("chat_id")))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        chat = None
    if chat is None or (chat.type != "private" and not chat.bot_member):
        raise bad_request("chat not found")
    return chat


def _person_or_bot(world: World, bot: Bot, user_id: int | None) -> dict[str, Any]:
    if user_id == bot.id:
        return bot.as_user()
    if user_id is not None and user_id in world.users:
        return world.users[user_id].as_user()
    if user_id is not None and user_id in world.bots:
        return world.bots[user_id].as_user()
    raise bad_request("user not found")


@method("getChatMember")
async def get_chat_member(world: World, bot: Bot, params: Params) -> Any:
    chat = _member_chat(world, bot, params)
    member = _person_or_bot(world, bot, _int(params, "user_id", required=True))
    if chat.type == "private":
        if member["id"] not in (chat.id, bot.id):
            raise bad_request("user not found")
        return {"status": "member", "user": member}
    return world.chat_member(chat, member)


@method("getChatAdministrators")
async def get_chat_administrators(world: World, bot: Bot, params: Params) -> Any:
    chat = _member_chat(world, bot, params)
    if chat.type == "private":
        raise bad_request("there are no administrators in the private chat")
    admins = []
    if chat.owner_id is not None and chat.owner_id in world.users:
        admins.append(world.chat_member(chat, world.users[chat.owner_id].as_user()))
    admins += [
        world.chat_member(chat, world.users[user_id].as_user())
        for user_id in chat.admins
        if user_id in world.users
    ]
    bots = {bot.id} | {b for b, rights in chat.bot_admins.items() if rights is not None}
    admins += [
        world.chat_member(chat, world.bots[b].as_user())
        for b in sorted(bots)
        if b in world.bots and world.rights(chat, b) is not None
    ]
    return admins


@method("getChatMemberCount")
async def get_chat_member_count(world: World, bot: Bot, params: Params) -> Any:
    chat = _member_chat(world, bot, params)
    if chat.type == "private":
        return 2
    return len(chat.member_ids) + (1 if chat.bot_member else 0)


# --- control API -----------------------------------------------------------------------------


def _rights(raw: Any) -> dict[str, bool]:
    if raw is None:
        return dict(FULL_ADMIN_RIGHTS)
    if not isinstance(raw, dict):
        raise ControlError("rights must be an object of ChatAdministratorRights flags")
    unknown = set(raw) - set(FULL_ADMIN_RIGHTS)
    if unknown:
        raise ControlError(f"unknown rights: {', '.join(sorted(unknown))}")
    return {key: bool(raw.get(key, False)) for key in FULL_ADMIN_RIGHTS}


@guarded
async def set_admin(request: web.Request) -> web.Response:
    world = request.app[WORLD]
    chat = _chat(world, request)
    body = await _body(request)
    if chat.type == "private":
        raise ControlError("a private chat has no administrators")
    is_admin = bool(body.get("is_admin", True))
    rights = _rights(body.get("rights")) if is_admin else None
    bot: Bot | None
    if body.get("user_id") is not None:
        user = world.users.get(int(body["user_id"]))
        if user is None:
            raise ControlError(f"no user {body['user_id']}")
        if user.id == chat.owner_id:
            raise ControlError("the owner has every right")
        if user.id not in chat.member_ids:
            raise ControlError(f"user {user.id} is not a member of chat {chat.id}")
        old = world.chat_member(chat, user.as_user())
        if rights is None:
            chat.admins.pop(user.id, None)
        else:
            chat.admins[user.id] = rights
        member = world.chat_member(chat, user.as_user())
        kind = "chat_member"
        try:
            bot = _bot(world, body)
        except LookupError:
            bot = None
    else:
        bot = _bot(world, body)
        if not chat.bot_member:
            raise ControlError(f"the bot is not in chat {chat.id}")
        old = world.chat_member(chat, bot.as_user())
        chat.bot_admins[bot.id] = rights
        member = world.chat_member(chat, bot.as_user())
        kind = "my_chat_member"
    if bot is not None and chat.bot_member:
        owner = world.users.get(chat.owner_id) if chat.owner_id is not None else None
        world.push_update(
            bot,
            kind,
            {
                "chat": world.chat_dict(chat),
                "from": owner.as_user() if owner else member["user"],
                "date": int(time.time()),
                "old_chat_member": old,
                "new_chat_member": member,
            },
        )
    world.emit("admin_changed", chat.id, member=member)
    return web.json_response({"member": member})


def _thread(request: web.Request) -> int:
    try:
        return int(request.match_info["thread_id"])
    except ValueError as exc:
        raise ControlError("thread_id must be an integer") from exc


def _deliver_service(
    world: World, chat: Chat, body: dict[str, Any], message: dict[str, Any] | None
) -> int | None:
    """A person's service message reaches the bot (when it is in the group)."""
    if message is None:
        return None
    shown = public(message)
    update_id = None
    if chat.bot_member:
        update_id = world.push_update(_bot(world, body), "message", shown)
    world.emit("user_message", chat.id, message_id=message["message_id"], message=shown)
    return update_id


def _topic_info(topic: ForumTopic) -> dict[str, Any]:
    return {**topic.as_dict(), "closed": topic.closed, "deleted": topic.deleted}


@guarded
async def person_creates_topic(request: web.Request) -> web.Response:
    world = request.app[WORLD]
    chat = _chat(world, request)
    body = await _body(request)
    sender = _sender(world, chat, body)
    color = body.get("icon_color")
    topic, message = create_topic(
        world,
        chat,
        sender,
        body.get("name"),
        int(color) if color is not None else None,
        body.get("icon_custom_emoji_id"),
    )
    update_id = _deliver_service(world, chat, body, message)
    return web.json_response(
        {"topic": _topic_info(topic), "message": public(message), "update_id": update_id},
        status=201,
    )


@guarded
async def person_manages_topic(request: web.Request) -> web.Response:
    world = request.app[WORLD]
    chat = _chat(world, request)
    body = await _body(request)
    sender = _sender(world, chat, body)
    thread_id = _thread(request)
    action = request.match_info["action"]
    message: dict[str, Any] | None = None
    if action == "edit":
        icon = body.get("icon_custom_emoji_id")
        topic, message = edit_topic(
            world, chat, sender, thread_id, body.get("name"), None if icon is None else str(icon)
        )
    elif action in ("close", "reopen"):
        topic, message = toggle_topic(world, chat, sender, thread_id, action == "close")
    elif action == "delete":
        topic = delete_topic(world, chat, sender, thread_id)
    else:
        raise ControlError("action must be edit, close, reopen or delete")
    update_id = _deliver_service(world, chat, body, message)
    result: dict[str, Any] = {"topic": _topic_info(topic), "update_id": update_id}
    if message is not None:
        result["message"] = public(message)
    return web.json_response(result)


def setup_forum(app: web.Application) -> None:
    r = app.router
    r.add_post("/sandbox/api/chats/{chat_id}/admins", set_admin)
    r.add_post("/sandbox/api/chats/{chat_id}/topics", person_creates_topic)
    r.add_post("/sandbox/api/chats/{chat_id}/topics/{thread_id}/{action}", person_manages_topic)


__all__ = ["ApiError", "clean_name", "setup_forum"]
