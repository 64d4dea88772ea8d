"""Finding and naming conversations from the web app: search over titles and messages, and a
conversation's own name, model and preset.

``GET /api/conversations/search?q=`` answers the user's conversations whose title or messages
match (``core.services.search``: both languages, quotes for a phrase, ``-word`` to leave out),
most recently active first, each with a plain-text fragment of its newest matching message.

``PATCH /api/conversations/{id}`` ``{"title"?, "model_id"?, "preset_id"?}`` changes what is
given: a new name; a model of the menu (null: follow the user's default); a preset of the
user's (null: none). What is left out stays.
"""

from __future__ import annotations

from typing import Annotated

from aiohttp import web
from pydantic import Field

from core.services import conversations, search
from webapp.contract import (
    TIME,
    Answer,
    Body,
    BodyId,
    Id,
    Out,
    PathParams,
    Query,
    add_routes,
    operation,
)
from webapp.keys import CONTEXT
from webapp.routes.api import user_id_of
from webapp.routes.chat_api import Conversation, _conversation, _menu

TAGS = ("chat",)


class SearchQuery(Query):
    q: Annotated[str, Field(min_length=1, max_length=search.MAX_QUERY_CHARS)] = Field(
        description="Words to find; quotes for a phrase, -word to leave one out."
    )


class SearchHit(Out):
    conversation_id: int
    title: str | None
    model_id: str | None = Field(description="Its own model; null: the user's default.")
    model_name: str | None = Field(
        description="Its own model as people read it (display name; id once no longer in the "
        "catalogue); null: the user's default."
    )
    updated_at: TIME
    message_id: int | None = Field(description="The newest matching message; null: the title.")
    snippet: str | None = Field(description="Plain text around the match in that message.")


class SearchResults(Out):
    results: list[SearchHit]


class ConversationChange(Body):
    title: Annotated[str, Field(min_length=1, max_length=conversations.MAX_TITLE_CHARS)] | None = (
        Field(None, description="A new name, one line; null or left out: unchanged.")
    )
    model_id: Annotated[str, Field(max_length=200)] | None = Field(
        None, description="A model of the menu for this conversation; null: the user's default."
    )
    preset_id: BodyId | None = Field(
        None, description="One of the user's presets for this conversation; null: none."
    )


class ConversationPath(PathParams):
    conversation_id: Id


@operation(
    "GET",
    "/api/conversations/search",
    summary="Find the user's conversations by their titles and messages",
    responses={200: Answer("Most recently active first (at most 30).", SearchResults)},
    tags=TAGS,
)
async def search_conversations(request: web.Request, query: SearchQuery) -> web.Response:
    ctx = request.app[CONTEXT]
    user_id = user_id_of(request)
    async with ctx.uow_factory() as uow:
        hits = await search.search_conversations(uow, user_id, query=query.q, now=ctx.clock())
    return web.json_response(
        {
            "results": [
                {
                    "conversation_id": h.conversation_id,
                    "title": h.title,
                    "model_id": h.model_id,
                    "model_name": ctx.model_name(h.model_id),
                    "updated_at": h.updated_at.isoformat(),
                    "message_id": h.message_id,
                    "snippet": h.snippet,
                }
                for h in hits
            ]
        }
    )


@operation(
    "PATCH",
    r"/api/conversations/{conversation_id:\d+}",
    summary="Rename a conversation, or give it a model or preset of its own",
    responses={200: Answer("The conversation.", Conversation)},
    errors={404: "No such conversation, model or preset of the user."},
    tags=TAGS,
)
async def update_conversation(
    request: web.Request, path: ConversationPath, body: ConversationChange
) -> web.Response:
    ctx = request.app[CONTEXT]
    user_id = user_id_of(request)
    changes: dict[str, object] = {name: getattr(body, name) for name in body.model_fields_set}
    if changes.get("title", "") is None:
        del changes["title"]
    async with ctx.uow_factory() as uow:
        changed = await conversations.update_conversation(
            uow, user_id, path.conversation_id, models=_menu(ctx), **changes
        )
    return web.json_response(_conversation(changed, ctx))


def setup(app: web.Application) -> None:
    add_routes(app, search_conversations, update_conversation)
