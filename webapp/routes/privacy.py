"""The privacy rights from the web app: a copy of one's data, and erasure of the account.
Documents uploaded from the web app live here too (the same store and index as the bot's)."""

from __future__ import annotations

from aiohttp import web

from core.documents import DocumentTooLarge
from core.errors import InvalidInput, NotFound, UnsupportedMediaType
from core.services import accounts, files, privacy, subscriptions, support
from webapp.i18n import request_language, translations
from webapp.keys import CONTEXT
from webapp.routes.api import json_body, object_id, user_id_of


async def export(request: web.Request) -> web.StreamResponse:
    """``GET /api/privacy/export?format=json|zip|html``: everything we hold, or the chats as a
    readable page, as a download (each format once an hour, like the bot's /export)."""
    ctx = request.app[CONTEXT]
    user_id = user_id_of(request)
    fmt = request.query.get("format", "json")
    language = request_language(request)
    async with ctx.uow_factory() as uow:
        result = await privacy.export_user(
            uow,
            user_id,
            fmt=fmt,
            now=ctx.clock(),
            translate=translations(language).gettext,
            language=language,
        )
    response = web.StreamResponse(
        headers={
            "Content-Type": result.mime,
            "Content-Disposition": f'attachment; filename="{result.file_name}"',
            "Cache-Control": "no-store",
        }
    )
    await response.prepare(request)
    with result.data:
        result.data.seek(0)
        while block := result.data.read(64 * 1024):
            await response.write(block)
    await response.write_eof()
    return response


async def start_delete(request: web.Request) -> web.Response:
    """``POST /api/privacy/delete``: step one, a confirmation token valid for 10 minutes."""
    ctx = request.app[CONTEXT]
    user_id = user_id_of(request)
    token = privacy.delete_token(user_id, secret=ctx.jwt_secret, now=ctx.clock())
    return web.json_response(
        {"confirm_token": token, "expires_in": int(privacy.DELETE_TOKEN_TTL.total_seconds())}
    )


async def confirm_delete(request: web.Request) -> web.Response:
    """``POST /api/privacy/delete/confirm`` ``{"confirm_token"}``: the account is erased in
    one transaction, its files removed, and every session ends."""
    ctx = request.app[CONTEXT]
    user_id = user_id_of(request)
    token = (await json_body(request)).get("confirm_token")
    if not isinstance(token, str):
        raise InvalidInput('expected {"confirm_token": ...}', fields=["confirm_token"])
    privacy.check_delete_token(token, user_id, secret=ctx.jwt_secret, now=ctx.clock())
    async with ctx.uow_factory() as uow:
        telegram_id = (await accounts.get_user(uow, user_id)).telegram_id
        renewing = await subscriptions.renewing(uow, user_id, ctx.clock())
        if renewing and ctx.jobs is not None:
            # Telegram would go on renewing a subscription: the bot's worker cancels it.
            for telegram_id, charge_id in renewing:
                await ctx.jobs.enqueue(
                    "subscriptions.cancel", telegram_id=telegram_id, charge_id=charge_id
                )
        trace = await support.trace_of(uow, user_id)
        await privacy.delete_user(uow, user_id, now=ctx.clock(), store=ctx.media_store)
    if trace is not None and ctx.jobs is not None:
        # Their support conversation leaves the admin chat too (the bot's worker does it).
        await ctx.jobs.enqueue(
            "support.erase",
            admin_chat_id=trace.admin_chat_id,
            topic_id=trace.topic_id,
            message_ids=list(trace.message_ids),
        )
    if telegram_id is not None:
        # The bot's conversation state for this person (kept in Redis) goes too.
        async for key in ctx.redis.scan_iter(match=f"fsm:*:{telegram_id}:*"):
            await ctx.redis.delete(key)
    return web.json_response({"deleted": True})


def _file(request: web.Request, f: files.FileDTO) -> dict[str, object]:
    reason = None
    if f.status == "failed":
        msgid, params = files.failure_reason(f.error, request.app[CONTEXT].file_limits)
        reason = translations(request_language(request)).gettext(msgid).format(**params)
    return {
        "id": f.id,
        "name": f.name,
        "mime": f.mime,
        "size": f.size,
        "status": f.status,
        "error": f.error,
        "error_message": reason,
        "pages": f.pages,
        "chunks": f.chunks,
        "billed_tokens": f.billed_tokens,
        "created_at": f.created_at.isoformat(),
    }


async def list_files(request: web.Request) -> web.Response:
    ctx = request.app[CONTEXT]
    user_id = user_id_of(request)
    async with ctx.uow_factory() as uow:
        found = await files.list_files(uow, user_id)
    return web.json_response({"files": [_file(request, f) for f in found]})


async def conversation_files(request: web.Request) -> web.Response:
    """``GET /api/conversations/{id}/files``: the files attached to one of the user's chats."""
    ctx = request.app[CONTEXT]
    user_id = user_id_of(request)
    async with ctx.uow_factory() as uow:
        found = await files.conversation_files(uow, user_id, object_id(request, "conversation_id"))
    return web.json_response({"files": [_file(request, f) for f in found]})


async def upload_file(request: web.Request) -> web.Response:
    """``POST /api/files`` (multipart, field ``file``): stored, then indexed on the worker."""
    ctx = request.app[CONTEXT]
    user_id = user_id_of(request)
    if ctx.media_store is None or ctx.jobs is None:
        raise NotFound("uploads are not available")
    limits = ctx.file_limits
    if not request.content_type.startswith("multipart/"):
        raise UnsupportedMediaType(f"content type {request.content_type!r}")
    reader = await request.multipart()
    part = await reader.next()
    if part is None or getattr(part, "name", None) != "file":
        raise InvalidInput("expected a multipart field named file")
    data = bytearray()
    while chunk := await part.read_chunk(64 * 1024):  # type: ignore[union-attr]
        data.extend(chunk)
        if len(data) > limits.max_bytes:
            raise DocumentTooLarge(
                "upload over the limit", limit_mb=limits.max_bytes // (1024 * 1024)
            )
    name = getattr(part, "filename", None) or "document"
    async with ctx.uow_factory() as uow:
        stored = await files.upload(
            uow,
            ctx.media_store,
            user_id=user_id,
            name=name,
            data=bytes(data),
            limits=limits,
            now=ctx.clock(),
        )
    if stored.new or stored.retried:
        await ctx.jobs.enqueue("files.index", file_id=stored.id)
    return web.json_response(_file(request, stored), status=201 if stored.new else 200)


async def get_file(request: web.Request) -> web.Response:
    ctx = request.app[CONTEXT]
    user_id = user_id_of(request)
    async with ctx.uow_factory() as uow:
        found = await files.get_file(uow, user_id, object_id(request, "file_id"))
    return web.json_response(_file(request, found))


async def delete_file(request: web.Request) -> web.Response:
    ctx = request.app[CONTEXT]
    user_id = user_id_of(request)
    if ctx.media_store is None:
        raise NotFound("uploads are not available")
    async with ctx.uow_factory() as uow:
        await files.delete_file(
            uow, ctx.media_store, user_id=user_id, file_id=object_id(request, "file_id")
        )
    return web.Response(status=204)


async def _link_target(request: web.Request) -> tuple[int | None, int | None]:
    body = await json_body(request)
    try:
        conversation = body.get("conversation_id")
        preset = body.get("preset_id")
        return (
            int(conversation) if conversation is not None else None,
            int(preset) if preset is not None else None,
        )
    except (ValueError, TypeError, AttributeError) as exc:
        raise InvalidInput('expected {"conversation_id"} or {"preset_id"}') from exc


async def attach_file(request: web.Request) -> web.Response:
    """``POST /api/files/{id}/links`` ``{"conversation_id"}`` or ``{"preset_id"}``: its
    passages are searched for every request in that chat, or in chats using that preset."""
    ctx = request.app[CONTEXT]
    user_id = user_id_of(request)
    conversation_id, preset_id = await _link_target(request)
    async with ctx.uow_factory() as uow:
        await files.attach(
            uow,
            user_id=user_id,
            file_id=object_id(request, "file_id"),
            conversation_id=conversation_id,
            preset_id=preset_id,
        )
    return web.Response(status=204)


async def detach_file(request: web.Request) -> web.Response:
    ctx = request.app[CONTEXT]
    user_id = user_id_of(request)
    conversation_id, preset_id = await _link_target(request)
    async with ctx.uow_factory() as uow:
        await files.get_file(uow, user_id, object_id(request, "file_id"))
        await files.detach(
            uow,
            user_id=user_id,
            file_id=object_id(request, "file_id"),
            conversation_id=conversation_id,
            preset_id=preset_id,
        )
    return web.Response(status=204)


def setup(app: web.Application) -> None:
    app.router.add_get("/api/privacy/export", export)
    app.router.add_post("/api/privacy/delete", start_delete)
    app.router.add_post("/api/privacy/delete/confirm", confirm_delete)
    app.router.add_get("/api/files", list_files)
    app.router.add_get(r"/api/conversations/{conversation_id:\d+}/files", conversation_files)
    app.router.add_post("/api/files", upload_file)
    app.router.add_get(r"/api/files/{file_id:\d+}", get_file)
    app.router.add_delete(r"/api/files/{file_id:\d+}", delete_file)
    app.router.add_post(r"/api/files/{file_id:\d+}/links", attach_file)
    app.router.add_delete(r"/api/files/{file_id:\d+}/links", detach_file)
