"""Documents users upload and ask questions about.

``upload`` checks the limits, decides the type by content, stores the bytes once per user and
content (SHA-256) and queues indexing. ``index`` (on the worker) extracts the text, cuts it into
passages that follow headings and paragraphs, and indexes them for full-text search in English
and Russian, and, where an embeddings model and pgvector are available and the user can pay
for it, by meaning as well (billed through the ledger). ``context_for`` finds the passages most
relevant to a request within a token budget (hybrid: reciprocal rank fusion of both rankings),
each with its citation.

Indexing survives crashes. ``index`` claims a file (``queued`` → ``indexing``, one more attempt)
before working on it and does nothing for a file that is finished or that another live worker
holds, so a job delivered twice indexes once and tells the owner once. A worker holding a file
keeps its ``updated_at`` fresh (``keep_claim``); ``reap_stuck`` puts a file whose holder stopped
(``queued`` or ``indexing`` untouched past ``FileLimits.index_deadline``) back in the queue, and
fails it, with a reason the user is shown, once ``index_attempts`` claims have been made.
Sending a failed file again queues it once more; a ready or unfinished one is kept as it is.
"""

from __future__ import annotations

import hashlib
import logging
import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from sqlalchemy import delete, func, or_, select, text, update
from sqlalchemy.dialects.postgresql import insert

from core.documents import (
    ArchiveRefused,
    BinaryFile,
    Chunk,
    CorruptDocument,
    DocumentTooComplex,
    DocumentTooLarge,
    EmptyDocument,
    EncryptedDocument,
    TooMuchText,
    UnsupportedDocument,
    citation,
    detect,
)
from core.documents.isolated import ReadLimits, read_isolated
from core.errors import DomainError, InvalidInput, NotFound
from core.i18n import N_
from core.media import MediaStore
from core.providers.embeddings import Embeddings
from core.providers.errors import ProviderError
from core.services import billing
from core.text import clean_file_name
from db.models import Conversation, File, FileChunk, FileLink, Preset, User
from db.uow import UnitOfWork

log = logging.getLogger(__name__)
RRF_K = 60
CANDIDATES = 40


class QuotaExceeded(DomainError):
    code = "files_quota"
    msgid = N_(
        "Your files take up all the space you have ({quota_mb} MB). Delete some with /files."
    )


class Embedder(Protocol):
    model: str

    async def embed(self, texts: list[str]) -> Embeddings: ...


@dataclass(frozen=True, slots=True)
class FileLimits:
    max_bytes: int = 20 * 1024 * 1024
    quota_bytes: int = 200 * 1024 * 1024
    max_pages: int = 500
    max_chars: int = 2_000_000
    context_tokens: int = 2_000
    # Kopecks per 1 000 embedded tokens.
    embeddings_price_1k: int = 1
    # A file left queued or indexing this long by a worker that stopped is queued again ...
    index_deadline: timedelta = timedelta(minutes=5)
    # ... and given up on (failed) after this many starts.
    index_attempts: int = 3
    # What reading one document may use: the reader's memory and CPU time.
    read_memory_mb: int = 768
    read_cpu_seconds: int = 20


@dataclass(frozen=True, slots=True)
class FileDTO:
    id: int
    name: str
    mime: str
    size: int
    status: str
    error: str | None
    pages: int | None
    chunks: int
    billed_tokens: int
    created_at: datetime
    # False when the same content had been uploaded before: nothing new was stored.
    new: bool = True
    attached: bool = False
    # True when a failed file was sent again and is queued once more: the caller queues it.
    retried: bool = False
    # True when this call of ``index`` finished the file: its owner is to be told.
    finished_here: bool = False


@dataclass(frozen=True, slots=True)
class Passage:
    file_id: int
    file_name: str
    text: str
    cite: str
    score: float


@dataclass(frozen=True, slots=True)
class Context:
    passages: tuple[Passage, ...]
    # "fts" or "hybrid": how they were found.
    method: str

    def prompt(self) -> str:
        """The passages as a block for the system prompt, numbered for citing."""
        lines = [
            "Answer using the excerpts from the user's documents below when they are relevant, "
            "and cite them by number like [1]. If they do not contain the answer, say so."
        ]
        for n, p in enumerate(self.passages, start=1):
            lines.append(f"[{n}] ({p.cite})\n{p.text}")
        return "\n\n".join(lines)

    def cites(self) -> tuple[str, ...]:
        """Each passage's source, in prompt order: passage ``[n]`` is ``cites()[n - 1]``."""
        return tuple(p.cite for p in self.passages)

    def sources(self) -> list[str]:
        seen: list[str] = []
        for p in self.passages:
            if p.cite not in seen:
                seen.append(p.cite)
        return seen


def _dto(
    row: File,
    *,
    new: bool = True,
    attached: bool = False,
    retried: bool = False,
    finished_here: bool = False,
) -> FileDTO:
    return FileDTO(
        row.id,
        row.name,
        row.mime,
        row.size,
        row.status,
        row.error,
        row.pages,
        row.chunks,
        row.billed_tokens,
        row.created_at,
        new,
        attached,
        retried,
        finished_here,
    )


async def upload(
    uow: UnitOfWork,
    store: MediaStore,
    *,
    user_id: int,
    name: str,
    data: bytes,
    limits: FileLimits,
    now: datetime,
) -> FileDTO:
    """Check and keep a file; indexing is queued by the caller when ``new`` or ``retried``."""
    if len(data) > limits.max_bytes:
        raise DocumentTooLarge(f"{len(data)} bytes", limit_mb=limits.max_bytes // (1024 * 1024))
    detection = detect(data, name, max_bytes=limits.max_bytes)
    digest = hashlib.sha256(data).hexdigest()
    async with uow.reading():
        existing = (
            await uow.session.scalars(select(File).filter_by(user_id=user_id, sha256=digest))
        ).first()
        if existing is not None and existing.status != "failed":
            return _dto(existing, new=False)
        failed_id = existing.id if existing is not None else None
        used: int | None = 0
        if failed_id is None:
            used = await uow.session.scalar(
                select(func.coalesce(func.sum(File.size), 0)).where(File.user_id == user_id)
            )
    if failed_id is not None:
        return await _retry(uow, failed_id, now=now)
    if int(used or 0) + len(data) > limits.quota_bytes:
        raise QuotaExceeded(
            f"user {user_id} uses {used} bytes", quota_mb=limits.quota_bytes // (1024 * 1024)
        )
    key = await store.save(data, detection.mime)
    clean_name = clean_file_name(name)
    async with uow.transaction():
        inserted = await uow.session.scalar(
            insert(File)
            .values(
                user_id=user_id,
                name=clean_name,
                mime=detection.mime,
                size=len(data),
                sha256=digest,
                storage_key=key,
                created_at=now,
                updated_at=now,
            )
            .on_conflict_do_nothing(index_elements=["user_id", "sha256"])
            .returning(File.id)
        )
    if inserted is None:
        # The same file arrived twice at once: the other upload won.
        await store.delete(key)
        async with uow.reading():
            row = (
                await uow.session.scalars(select(File).filter_by(user_id=user_id, sha256=digest))
            ).one()
            return _dto(row, new=False)
    async with uow.reading():
        stored = await uow.session.get(File, inserted)
        assert stored is not None
        return _dto(stored)


async def _retry(uow: UnitOfWork, file_id: int, *, now: datetime) -> FileDTO:
    """A failed file sent again goes back to the queue with fresh attempts; of two such
    sends at once, one queues it."""
    async with uow.transaction():
        won = await uow.session.scalar(
            update(File)
            .where(File.id == file_id, File.status == "failed")
            .values(status="queued", error=None, attempts=0, updated_at=now)
            .returning(File.id)
        )
    async with uow.reading():
        row = await uow.session.get(File, file_id, populate_existing=True)
        assert row is not None
        return _dto(row, new=False, retried=won is not None)


async def vectors_available(uow: UnitOfWork) -> bool:
    found = await uow.session.scalar(text("SELECT to_regclass('file_chunk_vectors') IS NOT NULL"))
    return bool(found)


def read_limits(limits: FileLimits) -> ReadLimits:
    return ReadLimits(
        max_bytes=limits.max_bytes,
        max_pages=limits.max_pages,
        max_chars=limits.max_chars,
        memory_bytes=limits.read_memory_mb * 1024 * 1024,
        cpu_seconds=limits.read_cpu_seconds,
    )


async def index(
    uow: UnitOfWork,
    store: MediaStore,
    *,
    file_id: int,
    limits: FileLimits,
    embedder: Embedder | None,
    now: datetime,
) -> FileDTO:
    """Extract, cut and index one file. A file that cannot be read ends ``failed`` with the
    reason; a failing embeddings provider leaves full-text search working. A file finished,
    or held by a live worker, is returned as it is (``finished_here`` False)."""
    async with uow.transaction():
        row = await uow.session.get(File, file_id, with_for_update=True, populate_existing=True)
        if row is None:
            raise NotFound(f"file {file_id}")
        abandoned = row.status == "indexing" and row.updated_at <= now - limits.index_deadline
        if row.status != "queued" and not abandoned:
            return _dto(row)
        row.status, row.updated_at, row.attempts = "indexing", now, row.attempts + 1
        user_id, name, key = row.user_id, row.name, row.storage_key
    try:
        data = await store.load(key)
        # Read in a child process under memory and time limits: a hostile file costs this
        # process nothing.
        chunks, pages = await read_isolated(data, name, read_limits(limits))
    except UnsupportedDocument as exc:
        return await _finish(uow, file_id, status="failed", error=exc.code, now=now)
    async with uow.transaction():
        await uow.session.execute(delete(FileChunk).where(FileChunk.file_id == file_id))
        ids = list(
            await uow.session.scalars(
                insert(FileChunk)
                .values(
                    [
                        {
                            "file_id": file_id,
                            "user_id": user_id,
                            "ordinal": c.ordinal,
                            "text": c.text,
                            "page": c.page,
                            "section": c.section[:512] or None,
                            "token_count": c.token_count,
                        }
                        for c in chunks
                    ]
                )
                .returning(FileChunk.id)
            )
        )
    billed = 0
    if embedder is not None and chunks:
        async with uow.reading():
            available = await vectors_available(uow)
        if available:
            billed = await _embed(uow, embedder, user_id, file_id, ids, chunks, limits)
    return await _finish(
        uow,
        file_id,
        status="ready",
        error=None,
        now=now,
        pages=pages,
        count=len(chunks),
        billed=billed,
    )


async def _embed(
    uow: UnitOfWork,
    embedder: Embedder,
    user_id: int,
    file_id: int,
    ids: list[int],
    chunks: list[Chunk],
    limits: FileLimits,
) -> int:
    """Embeddings for every passage, paid from the balance first; when the user cannot pay or
    the provider fails, the file is searched by words only."""
    estimate = sum(c.token_count for c in chunks)
    price = math.ceil(estimate * limits.embeddings_price_1k / 1000)
    hold = None
    if price > 0:
        try:
            async with uow.transaction():
                hold = await billing.reserve(
                    uow,
                    user_id=user_id,
                    amount=price,
                    key=f"file:{file_id}:embed:hold",
                    model_id=embedder.model,
                )
        except billing.InsufficientFunds:
            log.info("file %d: no money for embeddings; full-text search only", file_id)
            return 0
    try:
        result = await embedder.embed([c.text for c in chunks])
    except ProviderError as exc:
        log.warning("file %d: embeddings failed (%s); full-text search only", file_id, exc.code)
        if hold is not None:
            async with uow.transaction():
                await billing.release(uow, reservation_id=hold.id)
        return 0
    literal = [
        {"chunk": chunk_id, "user": user_id, "v": "[" + ",".join(f"{x:.6f}" for x in v) + "]"}
        for chunk_id, v in zip(ids, result.vectors, strict=True)
    ]
    await uow.session.execute(
        text(
            "INSERT INTO file_chunk_vectors (chunk_id, user_id, embedding)"
            " VALUES (:chunk, :user, CAST(:v AS vector)) ON CONFLICT (chunk_id) DO NOTHING"
        ),
        literal,
    )
    tokens = result.tokens or estimate
    if hold is not None:
        await billing.settle(
            uow,
            reservation=hold,
            amount=math.ceil(tokens * limits.embeddings_price_1k / 1000),
            category="other",
            key=f"file:{file_id}:embed",
            charge=billing.Charge(
                input_tokens=tokens, model_id=embedder.model, meta={"file_id": file_id}
            ),
        )
    await uow.commit()
    return tokens


async def _finish(
    uow: UnitOfWork,
    file_id: int,
    *,
    status: str,
    error: str | None,
    now: datetime,
    pages: int | None = None,
    count: int = 0,
    billed: int = 0,
) -> FileDTO:
    async with uow.transaction():
        await uow.session.execute(
            update(File)
            .where(File.id == file_id)
            .values(
                status=status,
                error=error,
                pages=pages,
                chunks=count,
                billed_tokens=billed,
                updated_at=now,
            )
        )
    async with uow.reading():
        row = await uow.session.get(File, file_id, populate_existing=True)
        assert row is not None
        return _dto(row, finished_here=True)


async def keep_claim(uow: UnitOfWork, file_id: int, *, now: datetime, since: datetime) -> bool:
    """Mark a file a worker claimed at ``since`` or later as still in hand (a claim older than
    that is someone else's, left to go stale); False when there is no such claim."""
    touched = await uow.session.scalar(
        update(File)
        .where(File.id == file_id, File.status == "indexing", File.updated_at >= since)
        .values(updated_at=now)
        .returning(File.id)
    )
    await uow.commit()
    return touched is not None


@dataclass(frozen=True, slots=True)
class Reaped:
    # Put back in the queue: the caller queues an index job for each.
    requeued: tuple[int, ...]
    # Given up on after too many starts: the caller tells each owner.
    failed: tuple[FileDTO, ...]


INTERRUPTED = "interrupted"


async def reap_stuck(uow: UnitOfWork, *, limits: FileLimits, now: datetime) -> Reaped:
    """Files queued or indexing that nobody has touched for ``index_deadline``: queued again,
    or failed once ``index_attempts`` starts were made."""
    stale = (
        File.status.in_(("queued", "indexing")),
        File.updated_at <= now - limits.index_deadline,
    )
    failed_rows = (
        await uow.session.scalars(
            update(File)
            .where(*stale, File.attempts >= limits.index_attempts)
            .values(status="failed", error=INTERRUPTED, updated_at=now)
            .returning(File)
        )
    ).all()
    failed = tuple(_dto(r, finished_here=True) for r in failed_rows)
    requeued = tuple(
        await uow.session.scalars(
            update(File)
            .where(*stale, File.attempts < limits.index_attempts)
            .values(status="queued", updated_at=now)
            .returning(File.id)
        )
    )
    await uow.commit()
    if requeued or failed:
        log.warning(
            "files: stuck ones queued again %s, given up %s",
            list(requeued),
            [f.id for f in failed],
        )
    return Reaped(requeued, failed)


async def _own(uow: UnitOfWork, user_id: int, file_id: int) -> File:
    row = await uow.session.get(File, file_id)
    if row is None or row.user_id != user_id:
        raise NotFound(f"file {file_id} of user {user_id}")
    return row


async def get_file(uow: UnitOfWork, user_id: int, file_id: int) -> FileDTO:
    async with uow.reading():
        return _dto(await _own(uow, user_id, file_id))


async def list_files(
    uow: UnitOfWork, user_id: int, *, conversation_id: int | None = None
) -> list[FileDTO]:
    attached: set[int] = set()
    async with uow.reading():
        if conversation_id is not None:
            attached = set(
                await uow.session.scalars(
                    select(FileLink.file_id).where(
                        FileLink.user_id == user_id, FileLink.conversation_id == conversation_id
                    )
                )
            )
        rows = await uow.session.scalars(
            select(File).where(File.user_id == user_id).order_by(File.id.desc())
        )
        return [_dto(r, attached=r.id in attached) for r in rows]


async def conversation_files(uow: UnitOfWork, user_id: int, conversation_id: int) -> list[FileDTO]:
    """The files attached to one of the user's conversations, newest first; someone else's
    conversation is NotFound."""
    async with uow.reading():
        owner = await uow.session.scalar(
            select(Conversation.user_id).where(Conversation.id == conversation_id)
        )
        if owner != user_id:
            raise NotFound(f"conversation {conversation_id}")
        rows = await uow.session.scalars(
            select(File)
            .join(FileLink, FileLink.file_id == File.id)
            .where(FileLink.user_id == user_id, FileLink.conversation_id == conversation_id)
            .order_by(File.id.desc())
        )
        return [_dto(r, attached=True) for r in rows]


async def attach(
    uow: UnitOfWork,
    *,
    user_id: int,
    file_id: int,
    conversation_id: int | None = None,
    preset_id: int | None = None,
) -> None:
    """Attach one of the user's files to one of their conversations or presets."""
    await _own(uow, user_id, file_id)
    if (conversation_id is None) == (preset_id is None):
        raise InvalidInput("attach to a conversation or a preset")
    owner = (
        await uow.session.scalar(
            select(Conversation.user_id).where(Conversation.id == conversation_id)
        )
        if conversation_id is not None
        else await uow.session.scalar(select(Preset.user_id).where(Preset.id == preset_id))
    )
    if owner != user_id:
        raise NotFound("conversation or preset")
    await uow.session.execute(
        insert(FileLink)
        .values(
            file_id=file_id, user_id=user_id, conversation_id=conversation_id, preset_id=preset_id
        )
        .on_conflict_do_nothing()
    )
    # A flag on the account, so requests of users without documents skip the lookup.
    await uow.session.execute(
        update(User)
        .where(User.id == user_id)
        .values(features=User.features.op("||")(text("""'{"files": true}'::jsonb""")))
    )
    await uow.commit()


async def detach(
    uow: UnitOfWork,
    *,
    user_id: int,
    file_id: int,
    conversation_id: int | None = None,
    preset_id: int | None = None,
) -> None:
    if (conversation_id is None) == (preset_id is None):
        raise InvalidInput("detach from a conversation or a preset")
    await uow.session.execute(
        delete(FileLink).where(
            FileLink.user_id == user_id,
            FileLink.file_id == file_id,
            FileLink.conversation_id == conversation_id
            if conversation_id is not None
            else FileLink.preset_id == preset_id,
        )
    )
    await uow.commit()


async def delete_file(uow: UnitOfWork, store: MediaStore, *, user_id: int, file_id: int) -> None:
    """The file, its passages, their vectors and its links, then the stored bytes."""
    row = await _own(uow, user_id, file_id)
    key = row.storage_key
    await uow.session.execute(delete(File).where(File.id == file_id))
    await uow.commit()
    await store.delete(key)


async def linked_files(
    uow: UnitOfWork, user_id: int, *, conversation_id: int | None, preset_id: int | None
) -> list[int]:
    conditions = []
    if conversation_id is not None:
        conditions.append(FileLink.conversation_id == conversation_id)
    if preset_id is not None:
        conditions.append(FileLink.preset_id == preset_id)
    if not conditions:
        return []
    ids = sorted(
        set(
            await uow.session.scalars(
                select(FileLink.file_id)
                .join(File, File.id == FileLink.file_id)
                .where(FileLink.user_id == user_id, File.status == "ready", or_(*conditions))
            )
        )
    )
    return ids


_FTS = text(
    """
    WITH q AS (
        -- Any of the question's words (a question rarely repeats the text word for word);
        -- passages matching more of them, closer together, rank higher.
        SELECT NULLIF(replace(plainto_tsquery('english', :query)::text, '&', '|'), '')::tsquery
                   AS en,
               NULLIF(replace(plainto_tsquery('russian', :query)::text, '&', '|'), '')::tsquery
                   AS ru
    )
    SELECT c.id,
           coalesce(ts_rank_cd(c.tsv_en, q.en), 0) + coalesce(ts_rank_cd(c.tsv_ru, q.ru), 0)
               AS score
    FROM file_chunks c, q
    WHERE c.user_id = :user_id AND c.file_id = ANY(:file_ids)
      AND (c.tsv_en @@ q.en OR c.tsv_ru @@ q.ru)
    ORDER BY score DESC, c.id
    LIMIT :limit
    """
)
_VECTOR = text(
    """
    SELECT v.chunk_id, 1 - (v.embedding <=> CAST(:v AS vector)) AS score
    FROM file_chunk_vectors v JOIN file_chunks c ON c.id = v.chunk_id
    WHERE v.user_id = :user_id AND c.file_id = ANY(:file_ids)
    ORDER BY v.embedding <=> CAST(:v AS vector)
    LIMIT :limit
    """
)


async def search(
    uow: UnitOfWork,
    *,
    user_id: int,
    file_ids: list[int],
    query: str,
    budget_tokens: int,
    query_vector: tuple[float, ...] | None = None,
) -> Context:
    """The passages most relevant to ``query`` among the given files, best first, within the
    token budget. With a query vector (and stored vectors) the word and meaning rankings are
    fused; otherwise the word ranking alone decides."""
    if not file_ids or not query.strip():
        return Context((), "fts")
    params = {"user_id": user_id, "file_ids": file_ids, "query": query, "limit": CANDIDATES}
    async with uow.reading():
        words = [(int(r[0]), float(r[1])) for r in (await uow.session.execute(_FTS, params)).all()]
        method = "fts"
        fused: dict[int, float] = {}
        for rank, (chunk_id, _) in enumerate(words):
            fused[chunk_id] = fused.get(chunk_id, 0.0) + 1.0 / (RRF_K + rank + 1)
        if query_vector is not None and await vectors_available(uow):
            literal = "[" + ",".join(f"{x:.6f}" for x in query_vector) + "]"
            meaning = (await uow.session.execute(_VECTOR, {**params, "v": literal})).all()
            if meaning:
                method = "hybrid"
            for rank, row in enumerate(meaning):
                fused[int(row[0])] = fused.get(int(row[0]), 0.0) + 1.0 / (RRF_K + rank + 1)
        ranked = sorted(fused.items(), key=lambda item: (-item[1], item[0]))
        if not ranked:
            return Context((), method)
        chunk_rows: dict[int, FileChunk] = {
            r.id: r
            for r in await uow.session.scalars(
                select(FileChunk).where(FileChunk.id.in_([cid for cid, _ in ranked]))
            )
        }
        names: dict[int, str] = {
            int(file_id): str(name)
            for file_id, name in (
                await uow.session.execute(select(File.id, File.name).where(File.id.in_(file_ids)))
            ).all()
        }
        passages: list[Passage] = []
        spent = 0
        for chunk_id, score in ranked:
            hit = chunk_rows[chunk_id]
            if spent + hit.token_count > budget_tokens and passages:
                continue
            spent += hit.token_count
            piece = Chunk(hit.ordinal, hit.text, hit.page, hit.section or "", hit.token_count)
            passages.append(
                Passage(
                    hit.file_id,
                    names[hit.file_id],
                    hit.text,
                    citation(piece, names[hit.file_id]),
                    score,
                )
            )
            if spent >= budget_tokens:
                break
        return Context(tuple(passages), method)


async def context_for(
    uow: UnitOfWork,
    *,
    user_id: int,
    conversation_id: int | None,
    preset_id: int | None,
    query: str,
    limits: FileLimits,
    embedder: Embedder | None,
) -> Context | None:
    """Passages for a request in a conversation (files attached to it or to its preset).
    None when nothing is attached. No transaction stays open during the embeddings call."""
    file_ids = await linked_files(
        uow, user_id, conversation_id=conversation_id, preset_id=preset_id
    )
    if not file_ids:
        # The common case costs one indexed query, in the transaction the turn goes on with.
        return None
    vector = None
    if embedder is not None:
        # Ends the read begun above: no transaction stays open during the call.
        async with uow.reading():
            available = await vectors_available(uow)
        if available:
            try:
                vector = (await embedder.embed([query])).vectors[0]
            except ProviderError as exc:
                log.info("query embedding failed (%s); words only", exc.code)
    return await search(
        uow,
        user_id=user_id,
        file_ids=file_ids,
        query=query,
        budget_tokens=limits.context_tokens,
        query_vector=vector,
    )


NOTICE_READY = N_(
    "📄 {name} is ready: {chunks} passages indexed. Ask about it here; answers cite the pages "
    "and sections they use. /files lists your documents."
)
TOO_MANY_PAGES = N_("The document has more pages than the limit of {limit}.")
INTERRUPTED_REASON = N_(
    "Reading the document was interrupted {attempts} times, so I stopped trying. Send it again "
    "to retry."
)
_REASONS = {
    cls.code: cls.msgid
    for cls in (
        ArchiveRefused,
        BinaryFile,
        CorruptDocument,
        DocumentTooComplex,
        DocumentTooLarge,
        EmptyDocument,
        EncryptedDocument,
        TooMuchText,
        UnsupportedDocument,
    )
}


def failure_reason(code: str | None, limits: FileLimits) -> tuple[str, dict[str, object]]:
    """The message (msgid and its parameters) that tells the user why a file was refused."""
    if code == "too_many_pages":
        return TOO_MANY_PAGES, {"limit": limits.max_pages}
    if code == "too_much_text":
        return TooMuchText.msgid, {"limit": limits.max_chars}
    if code == INTERRUPTED:
        return INTERRUPTED_REASON, {"attempts": limits.index_attempts}
    if code == "too_large":
        return DocumentTooLarge.msgid, {"limit_mb": limits.max_bytes // (1024 * 1024)}
    return _REASONS.get(code or "", UnsupportedDocument.msgid), {}


async def owner_of(uow: UnitOfWork, file_id: int) -> tuple[int, str] | None:
    """(Telegram id, language) of a file's owner, when they use Telegram."""
    async with uow.reading():
        row = (
            await uow.session.execute(
                select(User.telegram_id, User.language)
                .join(File, File.user_id == User.id)
                .where(File.id == file_id)
            )
        ).first()
    if row is None or row[0] is None:
        return None
    return int(row[0]), str(row[1])
