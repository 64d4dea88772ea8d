"""Shared links: made, listed and revoked by their owner over the JSON API, opened by anyone as a
read-only page at ``/s/<token>``, and a shared preset copied into one's own presets.

The token is a secret that grants access: the request log records the route's pattern, never the
path, and the page asks browsers to send no referrer, keep no copy and not index it.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from datetime import datetime
from typing import Annotated, Any, Literal

from aiohttp import web
from markdown_it import MarkdownIt
from markdown_it.renderer import RendererHTML
from markdown_it.token import Token
from markdown_it.utils import EnvType, OptionsDict
from pydantic import Field

from core.errors import NotFound
from core.services import sharing
from core.services.presets import PresetDTO
from core.services.sharing import SharedLinkDTO, ShareLinkDTO
from webapp.contract import TIME, Answer, Id, Out, PathParams, add_routes, operation
from webapp.i18n import render_page
from webapp.keys import CONTEXT
from webapp.routes.account_api import Preset, PresetPath
from webapp.routes.api import user_id_of
from webapp.routes.chat_api import ConversationPath

PRIVATE = {"Cache-Control": "no-store"}
TAGS = ("sharing",)


class ShareCreated(Out):
    id: int
    url: str = Field(json_schema_extra={"format": "uri"})
    token: str


class ShareLink(Out):
    id: int
    kind: Literal["conversation", "preset"]
    target_id: int
    title: str | None
    created_at: TIME
    revoked_at: TIME | None
    disabled_at: TIME | None
    views: int
    active: bool


class ShareLinks(Out):
    links: list[ShareLink]


class LinkPath(PathParams):
    link_id: Id


class TokenPath(PathParams):
    token: Annotated[str, Field(max_length=128)]


def _link_open(
    self: RendererHTML, tokens: Sequence[Token], idx: int, options: OptionsDict, env: EnvType
) -> str:
    # Links a model wrote lead away from the page: search engines get no credit for them.
    tokens[idx].attrSet("rel", "nofollow noopener noreferrer")
    return self.renderToken(tokens, idx, options, env)


# Raw HTML in a message is shown as text, unsafe link schemes are refused by markdown-it, and
# pictures stay off (a remote picture would tell its host who reads the page).
_md = (
    MarkdownIt("commonmark", {"html": False, "linkify": False})
    .enable(["table", "strikethrough"])
    .disable("image")
)
_md.add_render_rule("link_open", _link_open)


def share_url(request: web.Request, token: str) -> str:
    return f"{request.app[CONTEXT].public_url.rstrip('/')}/s/{token}"


def _created(request: web.Request, link: SharedLinkDTO) -> web.Response:
    return web.json_response(
        {"id": link.id, "url": share_url(request, link.token), "token": link.token},
        status=201,
        headers=PRIVATE,
    )


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _link(link: ShareLinkDTO) -> dict[str, object]:
    return {
        "id": link.id,
        "kind": link.kind,
        "target_id": link.target_id,
        "title": link.title,
        "created_at": link.created_at.isoformat(),
        "revoked_at": _iso(link.revoked_at),
        "disabled_at": _iso(link.disabled_at),
        "views": link.views,
        "active": link.active,
    }


def _preset(preset: PresetDTO) -> dict[str, object]:
    # The shape of /api/presets; a copy is not the preset in use.
    return {
        "id": preset.id,
        "title": preset.title,
        "system_prompt": preset.system_prompt,
        "active": False,
    }


@operation(
    "POST",
    r"/api/conversations/{conversation_id:\d+}/share",
    summary="A public read-only link to a conversation",
    responses={201: Answer("Created.", ShareCreated)},
    tags=TAGS,
)
async def share_conversation(request: web.Request, path: ConversationPath) -> web.Response:
    """``POST /api/conversations/{id}/share`` → 201 ``{id, url, token}``."""
    ctx = request.app[CONTEXT]
    user_id = user_id_of(request)
    async with ctx.uow_factory() as uow:
        link = await sharing.share_conversation(
            uow, user_id=user_id, conversation_id=path.conversation_id, now=ctx.clock()
        )
    return _created(request, link)


@operation(
    "POST",
    r"/api/presets/{preset_id:\d+}/share",
    summary="A public link to a preset",
    responses={201: Answer("Created.", ShareCreated)},
    tags=TAGS,
)
async def share_preset(request: web.Request, path: PresetPath) -> web.Response:
    """``POST /api/presets/{id}/share`` → 201 ``{id, url, token}``."""
    ctx = request.app[CONTEXT]
    user_id = user_id_of(request)
    async with ctx.uow_factory() as uow:
        link = await sharing.share_preset(
            uow, user_id=user_id, preset_id=path.preset_id, now=ctx.clock()
        )
    return _created(request, link)


@operation(
    "GET",
    "/api/shares",
    summary="The user's share links, newest first",
    responses={200: Answer("OK.", ShareLinks)},
    tags=TAGS,
)
async def list_links(request: web.Request) -> web.Response:
    """``GET /api/shares``: the user's links, newest first."""
    ctx = request.app[CONTEXT]
    user_id = user_id_of(request)
    async with ctx.uow_factory() as uow:
        links = await sharing.list_links(uow, user_id)
    return web.json_response({"links": [_link(link) for link in links]})


@operation(
    "DELETE",
    r"/api/shares/{link_id:\d+}",
    summary="Revoke a share link",
    responses={204: Answer("Revoked.")},
    tags=TAGS,
)
async def revoke_link(request: web.Request, path: LinkPath) -> web.Response:
    """``DELETE /api/shares/{id}`` → 204; the link answers 404 from now on."""
    ctx = request.app[CONTEXT]
    user_id = user_id_of(request)
    async with ctx.uow_factory() as uow:
        await sharing.revoke(uow, user_id=user_id, link_id=path.link_id, now=ctx.clock())
    return web.Response(status=204)


@operation(
    "POST",
    "/api/shared/{token}/copy",
    summary="Copy a shared preset into the user's presets",
    responses={201: Answer("Created.", Preset)},
    tags=TAGS,
)
async def copy_preset(request: web.Request, path: TokenPath) -> web.Response:
    """``POST /api/shared/{token}/copy`` → 201, the new preset of the signed-in user."""
    ctx = request.app[CONTEXT]
    user_id = user_id_of(request)
    async with ctx.uow_factory() as uow:
        preset = await sharing.copy_preset(uow, user_id=user_id, token=path.token, now=ctx.clock())
    return web.json_response(_preset(preset), status=201)


def _message(message: sharing.SharedMessage) -> dict[str, Any]:
    # Replies are Markdown; prompts are shown as typed.
    rendered = _md.render(message.content) if message.role == "assistant" else None
    return {
        "role": message.role,
        "content": message.content,
        "html": rendered,
        "created_at": message.created_at,
    }


async def show_shared(request: web.Request) -> web.Response:
    """``GET /s/{token}``: the public read-only page; 404 for a link that does not work."""
    ctx = request.app[CONTEXT]
    token = request.match_info["token"]
    context: dict[str, Any]
    try:
        async with ctx.uow_factory() as uow:
            view = await sharing.open_shared(uow, token)
    except NotFound:
        # The page answers in HTML, and the token is not written anywhere.
        status, context = 404, {"view": None}
    else:
        status = 200
        context = {
            "view": view,
            "messages": [_message(m) for m in view.messages],
            "token": token,
        }
    nonce = secrets.token_urlsafe(16)
    context["nonce"] = nonce
    response = render_page(request, "shared.html", context)
    response.set_status(status)
    response.headers.update(
        {
            "Cache-Control": "no-store",
            "Referrer-Policy": "no-referrer",
            "X-Robots-Tag": "noindex, nofollow",
            "Content-Security-Policy": (
                f"default-src 'none'; style-src 'self' 'nonce-{nonce}'; img-src 'self'; "
                "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
            ),
        }
    )
    return response


def setup(app: web.Application) -> None:
    add_routes(app, share_conversation, share_preset, list_links, revoke_link, copy_preset)
    app.router.add_get("/s/{token}", show_shared, name="shared")
