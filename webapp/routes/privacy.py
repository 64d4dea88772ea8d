"""The privacy rights from the web app: a copy of one's data, and erasure of the account.
Documents uploaded from the web app live here too (the same store and index as the bot's)."""

from __future__ import annotations

from typing import Annotated, Literal

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from pydantic import Field

from core.documents import DocumentTooLarge
from core.errors import InvalidInput, NotFound, UnsupportedMediaType
from core.services import accounts, files, privacy, subscriptions, support
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
from webapp.i18n import request_language, translations
from webapp.keys import CONTEXT
from webapp.routes.api import user_id_of
from webapp.routes.chat_api import ConversationPath

TAGS = ("privacy",)
FILE_TAGS = ("documents",)


# --- the contract --------------------------------------------------------------------------------


class ExportQuery(Query):
    format: Literal["json", "zip", "html"] = Field(
        "json", description="json by default; html: the chats as a readable page."
    )


class DeleteToken(Out):
    confirm_token: str
    expires_in: int = Field(description="Seconds the token stays valid.")


class DeleteConfirmation(Body):
    confirm_token: Annotated[str, Field(min_length=1, max_length=4096)]


class Deleted(Out):
    deleted: bool


class File(Out):
    id: int
    name: str
    mime: str
    size: int = Field(description="Bytes.")
    status: Literal["queued", "indexing", "ready", "failed"]
    error: str | None
    error_message: str | None = Field(description="Why it failed, in the user's language.")
    pages: int | None
    chunks: int | None
    billed_tokens: int | None
    created_at: TIME


class Files(Out):
    files: list[File]


class Upload(Body):
    """multipart/form-data with the document in the field ``file``."""

    file: bytes


class FilePath(PathParams):
    file_id: Id


class FileTarget(Body):
    """Exactly one of the two."""

    conversation_id: BodyId | None = None
    preset_id: BodyId | None = None


@operation(
    "GET",
    "/api/privacy/export",
    summary="Download everything held about the account (once an hour)",
    responses={
        200: Answer(
            "An attachment: JSON, a zip archive of CSV files, or an HTML transcript.",
            schema={"type": "object"},
            extra_media={
                "application/zip": {"type": "string", "format": "binary"},
                "text/html": {"type": "string"},
            },
        )
    },
    errors={429: "This format was exported less than an hour ago; see Retry-After."},
    tags=TAGS,
)
async def export(request: web.Request, query: ExportQuery) -> web.StreamResponse:
    """``GET /api/privacy/export?format=json|zip|html``: everything we hold, or the chats as a
    readable page, as a download (each format once an hour, like the bot's /export)."""
    ctx = request.app[CONTEXT]
    user_id = user_id_of(request)
    language = request_language(request)
    async with ctx.uow_factory() as uow:
        result = await privacy.export_user(
            uow,
            user_id,
            fmt=query.format,
            now=ctx.clock(),
            translate=translations(language).gettext,
            language=language,
            model_names=ctx.model_names,
            fallback_zone=ctx.tariffs.timezone if ctx.tariffs else "UTC",
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


@operation(
    "POST",
    "/api/privacy/delete",
    summary="Step one of erasure: a confirmation token (10 minutes)",
    responses={200: Answer("The token to confirm with.", DeleteToken)},
    tags=TAGS,
)
async def start_delete(request: web.Request) -> web.Response:
    """``POST /api/privacy/delete``: step one, a confirmation token valid for 10 minutes."""
    ctx = request.app[CONTEXT]
    user_id = user_id_of(request)
    token = privacy.delete_token(user_id, secret=ctx.jwt_secret, now=ctx.clock())
    return web.json_response(
        {"confirm_token": token, "expires_in": int(privacy.DELETE_TOKEN_TTL.total_seconds())}
    )


@operation(
    "POST",
    "/api/privacy/delete/confirm",
    summary="Erase the account; every session ends",
    responses={200: Answer("Erased.", Deleted)},
    tags=TAGS,
)
async def confirm_delete(request: web.Request, body: DeleteConfirmation) -> web.Response:
    """``POST /api/privacy/delete/confirm`` ``{"confirm_token"}``: the account is erased in
    one transaction, its files removed, and every session ends."""
    ctx = request.app[CONTEXT]
    user_id = user_id_of(request)
    privacy.check_delete_token(body.confirm_token, user_id, secret=ctx.jwt_secret, now=ctx.clock())
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


@operation(
    "GET",
    "/api/files",
    summary="The user's documents",
    responses={200: Answer("OK.", Files)},
    tags=FILE_TAGS,
)
async def list_files(request: web.Request) -> web.Response:
    ctx = request.app[CONTEXT]
    user_id = user_id_of(request)
    async with ctx.uow_factory() as uow:
        found = await files.list_files(uow, user_id)
    return web.json_response({"files": [_file(request, f) for f in found]})


@operation(
    "GET",
    r"/api/conversations/{conversation_id:\d+}/files",
    summary="The documents attached to a conversation, newest first",
    responses={200: Answer("OK.", Files)},
    tags=FILE_TAGS,
)
async def conversation_files(request: web.Request, path: ConversationPath) -> web.Response:
    """``GET /api/conversations/{id}/files``: the files attached to one of the user's chats."""
    ctx = request.app[CONTEXT]
    user_id = user_id_of(request)
    async with ctx.uow_factory() as uow:
        found = await files.conversation_files(uow, user_id, path.conversation_id)
    return web.json_response({"files": [_file(request, f) for f in found]})


@operation(
    "POST",
    "/api/files",
    summary="Upload a document (indexed in the background)",
    raw_body=Upload,
    body_media="multipart/form-data",
    responses={
        200: Answer("The same content was stored before.", File),
        201: Answer("Stored.", File),
    },
    errors={
        404: "Uploads are not available here.",
        415: "The body is not multipart/form-data.",
    },
    tags=FILE_TAGS,
)
async def upload_file(request: web.Request) -> web.Response:
    """``POST /api/files`` (multipart, field ``file``): stored, then indexed on the worker."""
    ctx = request.app[CONTEXT]
    user_id = user_id_of(request)
    if ctx.media_store is None or ctx.jobs is None:
        raise NotFound("uploads are not available")
    limits = ctx.file_limits
    if not request.content_type.startswith("multipart/"):
        raise UnsupportedMediaType(f"content type {request.content_type!r}")
    try:
        reader = await request.multipart()
        part = await reader.next()
        if part is None or getattr(part, "name", None) != "file":
            raise InvalidInput("expected a multipart field named file", fields=["file"])
        data = bytearray()
        while chunk := await part.read_chunk(64 * 1024):  # type: ignore[union-attr]
            data.extend(chunk)
            if len(data) > limits.max_bytes:
                raise DocumentTooLarge(
                    "upload over the limit", limit_mb=limits.max_bytes // (1024 * 1024)
                )
        name = getattr(part, "filename", None) or "document"
    except (ValueError, HttpProcessingError) as exc:
        # No boundary, broken part headers, a body cut short: not a form we can read.
        raise InvalidInput(f"unreadable multipart body: {exc}", fields=["file"]) from None
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


@operation(
    "GET",
    r"/api/files/{file_id:\d+}",
    summary="One of the user's documents",
    responses={200: Answer("OK.", File)},
    tags=FILE_TAGS,
)
async def get_file(request: web.Request, path: FilePath) -> web.Response:
    ctx = request.app[CONTEXT]
    user_id = user_id_of(request)
    async with ctx.uow_factory() as uow:
        found = await files.get_file(uow, user_id, path.file_id)
    return web.json_response(_file(request, found))


@operation(
    "DELETE",
    r"/api/files/{file_id:\d+}",
    summary="Delete a document",
    responses={204: Answer("Deleted.")},
    tags=FILE_TAGS,
)
async def delete_file(request: web.Request, path: FilePath) -> web.Response:
    ctx = request.app[CONTEXT]
    user_id = user_id_of(request)
    if ctx.media_store is None:
        raise NotFound("uploads are not available")
    async with ctx.uow_factory() as uow:
        await files.delete_file(uow, ctx.media_store, user_id=user_id, file_id=path.file_id)
    return web.Response(status=204)


@operation(
    "POST",
    r"/api/files/{file_id:\d+}/links",
    summary="Attach a document to a conversation or a preset: its passages answer there",
    responses={204: Answer("Attached.")},
    tags=FILE_TAGS,
)
async def attach_file(request: web.Request, path: FilePath, body: FileTarget) -> web.Response:
    """``POST /api/files/{id}/links`` ``{"conversation_id"}`` or ``{"preset_id"}``: its
    passages are searched for every request in that chat, or in chats using that preset."""
    ctx = request.app[CONTEXT]
    user_id = user_id_of(request)
    async with ctx.uow_factory() as uow:
        await files.attach(
            uow,
            user_id=user_id,
            file_id=path.file_id,
            conversation_id=body.conversation_id,
            preset_id=body.preset_id,
        )
    return web.Response(status=204)


@operation(
    "DELETE",
    r"/api/files/{file_id:\d+}/links",
    summary="Detach a document from a conversation or a preset",
    responses={204: Answer("Detached.")},
    tags=FILE_TAGS,
)
async def detach_file(request: web.Request, path: FilePath, body: FileTarget) -> web.Response:
    ctx = request.app[CONTEXT]
    user_id = user_id_of(request)
    async with ctx.uow_factory() as uow:
        await files.get_file(uow, user_id, path.file_id)
        await files.detach(
            uow,
            user_id=user_id,
            file_id=path.file_id,
            conversation_id=body.conversation_id,
            preset_id=body.preset_id,
        )
    return web.Response(status=204)


def setup(app: web.Application) -> None:
    add_routes(
        app,
        export,
        start_delete,
        confirm_delete,
        list_files,
        conversation_files,
        upload_file,
        get_file,
        delete_file,
        attach_file,
        detach_file,
    )
