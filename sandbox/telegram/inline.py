"""Inline mode: a person types ``@bot query`` in some chat, picks a result, sends it.

Bot API: ``answerInlineQuery`` (within ``inline_query_ttl`` seconds of the query, once), and the
``inline_message_id`` form of ``editMessageText`` / ``editMessageReplyMarkup`` (in ``botapi``).

Control API, JSON under ``/sandbox/api``:

- ``POST /inline-queries`` ``{from_user_id, query, chat_type?, bot_id?}`` → 201
  ``{inline_query_id, update_id}``: the bot gets ``inline_query``.
- ``GET /inline-queries/{id}`` → ``{query, answer}`` (``answer`` null until answered).
- ``POST /inline-queries/{id}/choose`` ``{result_id, chat_id?}`` → 201 ``{message,
  inline_message_id, update_id}``: the person sends the result into ``chat_id`` (default: their
  own chat with the bot) as a message "via @bot"; the bot gets ``chosen_inline_result`` (inline
  feedback is on in the sandbox), with ``inline_message_id`` when the result has an inline
  keyboard, as in Telegram. A chat the bot is in also gets the message itself.

Events: ``inline_answered`` (chat_id: the person) with the results and button, and
``inline_chosen`` (chat_id: where it was sent) with the message. Inline state is not kept across
restarts.
"""

from __future__ import annotations

import secrets
import time
from typing import Any

from aiohttp import web

from sandbox.telegram.botapi import WORLD, Params, _bool, _int, check_markup, method, parse_text
from sandbox.telegram.control import ControlError, _body, _bot, guarded
from sandbox.telegram.state import Bot, World, bad_request, public

MAX_RESULTS = 50
RESULT_TYPES = {
    "article",
    "photo",
    "gif",
    "mpeg4_gif",
    "video",
    "audio",
    "voice",
    "document",
    "location",
    "venue",
    "contact",
    "game",
    "sticker",
}


def _message_content(result: dict[str, Any]) -> tuple[str, list]:
    content = result.get("input_message_content")
    if not isinstance(content, dict) or "message_text" not in content:
        raise bad_request("RESULT_TYPE_INVALID" if content is None else "MESSAGE_EMPTY")
    return parse_text(
        {
            "text": content.get("message_text"),
            "parse_mode": content.get("parse_mode"),
            "entities": content.get("entities"),
        }
    )


def _check_results(raw: Any) -> list[dict[str, Any]]:
    if not isinstance(raw, list):
        raise bad_request("can't parse inline query results JSON object")
    if len(raw) > MAX_RESULTS:
        raise bad_request("RESULTS_TOO_MUCH")
    seen: set[str] = set()
    for result in raw:
        if not isinstance(result, dict) or result.get("type") not in RESULT_TYPES:
            raise bad_request("RESULT_TYPE_INVALID")
        result_id = str(result.get("id") or "")
        if not 1 <= len(result_id.encode()) <= 64:
            raise bad_request("RESULT_ID_INVALID")
        if result_id in seen:
            raise bad_request("RESULT_ID_DUPLICATE")
        seen.add(result_id)
        if result["type"] == "article":
            if not str(result.get("title") or "").strip():
                raise bad_request("RESULT_TITLE_EMPTY")
            _message_content(result)
    return raw


@method("answerInlineQuery")
async def answer_inline_query(world: World, bot: Bot, params: Params) -> Any:
    query_id = str(params.get("inline_query_id") or "")
    query = world.inline_queries.get(query_id)
    too_old = (
        query is None
        or query["bot_id"] != bot.id
        or query["answer"] is not None
        or time.monotonic() - query["at"] > world.options.inline_query_ttl
    )
    if too_old:
        raise bad_request("query is too old and response timeout expired or query ID is invalid")
    assert query is not None
    results = _check_results(params.get("results"))
    button = params.get("button")
    if button is not None:
        if not isinstance(button, dict) or not str(button.get("text") or ""):
            raise bad_request("can't parse inline query results button JSON object")
        start = button.get("start_parameter")
        if start is not None and not (
            1 <= len(str(start)) <= 64 and str(start).replace("_", "").replace("-", "").isalnum()
        ):
            raise bad_request("START_PARAM_INVALID")
    query["answer"] = {
        "results": results,
        "button": button,
        "cache_time": _int(params, "cache_time"),
        "is_personal": _bool(params, "is_personal"),
        "next_offset": params.get("next_offset") or "",
    }
    world.emit(
        "inline_answered",
        query["from"]["id"],
        inline_query_id=query_id,
        results=results,
        button=button,
    )
    return True


@guarded
async def send_inline_query(request: web.Request) -> web.Response:
    world = request.app[WORLD]
    body = await _body(request)
    bot = _bot(world, body)
    user = world.users.get(int(body.get("from_user_id") or 0))
    if user is None:
        raise ControlError("from_user_id names no user")
    text = str(body.get("query") or "")
    if len(text) > 256:
        raise ControlError("an inline query holds at most 256 characters")
    query_id = str(secrets.randbelow(10**18) + 10**18)
    payload: dict[str, Any] = {"id": query_id, "from": user.as_user(), "query": text, "offset": ""}
    if body.get("chat_type"):
        payload["chat_type"] = str(body["chat_type"])
    world.inline_queries[query_id] = {
        "bot_id": bot.id,
        "from": user.as_user(),
        "query": text,
        "at": time.monotonic(),
        "answer": None,
    }
    update_id = world.push_update(bot, "inline_query", payload)
    return web.json_response({"inline_query_id": query_id, "update_id": update_id}, status=201)


def _query(world: World, request: web.Request) -> dict[str, Any]:
    query = world.inline_queries.get(request.match_info["query_id"])
    if query is None:
        raise ControlError("no such inline query")
    return query


@guarded
async def show_inline_query(request: web.Request) -> web.Response:
    query = _query(request.app[WORLD], request)
    return web.json_response({"query": query["query"], "answer": query["answer"]})


@guarded
async def choose_result(request: web.Request) -> web.Response:
    world = request.app[WORLD]
    query = _query(world, request)
    body = await _body(request)
    if query["answer"] is None:
        raise ControlError("the bot has not answered this query")
    result_id = str(body.get("result_id") or "")
    matching = [r for r in query["answer"]["results"] if str(r.get("id")) == result_id]
    if not matching:
        raise ControlError("the answer has no result with this id")
    result = matching[0]
    if result.get("type") != "article":
        raise ControlError("the sandbox sends only article results")
    bot = world.bots[query["bot_id"]]
    sender = query["from"]
    chat = world.chats.get(int(body.get("chat_id") or sender["id"]))
    if chat is None:
        raise ControlError("no such chat")
    if chat.type != "private" and sender["id"] not in chat.member_ids:
        raise ControlError("the person is not a member of that chat")
    text, entities = _message_content(result)
    markup = check_markup(chat, result.get("reply_markup"))
    message = world.new_message(
        chat,
        sender,
        text=text,
        entities=entities or None,
        via_bot=bot.as_user(),
        reply_markup=markup,
    )
    inline_message_id: str | None = None
    if markup and markup.get("inline_keyboard"):
        inline_message_id = secrets.token_urlsafe(18)
        world.inline_messages[inline_message_id] = (chat.id, message["message_id"], bot.id)
    shown = public(message)
    if chat.bot_member:
        world.push_update(bot, "message", shown)
    chosen: dict[str, Any] = {"result_id": result_id, "from": sender, "query": query["query"]}
    if inline_message_id is not None:
        chosen["inline_message_id"] = inline_message_id
    update_id = world.push_update(bot, "chosen_inline_result", chosen)
    world.emit(
        "inline_chosen",
        chat.id,
        message_id=message["message_id"],
        inline_message_id=inline_message_id,
        message=shown,
    )
    return web.json_response(
        {"message": shown, "inline_message_id": inline_message_id, "update_id": update_id},
        status=201,
    )


def setup_inline(app: web.Application) -> None:
    app.router.add_post("/sandbox/api/inline-queries", send_inline_query)
    app.router.add_get("/sandbox/api/inline-queries/{query_id}", show_inline_query)
    app.router.add_post("/sandbox/api/inline-queries/{query_id}/choose", choose_result)
