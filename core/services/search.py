"""Finding conversations: the user's own, by their titles and by what was said in them.

Postgres full-text search over ``db.models.search_document`` (each text stemmed as Russian and
as English, GIN-indexed by migration 0024); a query is ``websearch_to_tsquery`` in both
languages, or-ed, so "котами" finds "кот" and "running" finds "run", and quotes, ``or`` and
``-word`` work as people expect from a search box.

Invariants: only the user's own conversations are searched (every statement is filtered by
``user_id``); a message past its retention (``expires_at``) is never found, even before the
purge removes it; a hit shows a snippet of the newest matching message, as plain text.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, literal_column, select
from sqlalchemy.sql.elements import ColumnElement

from core.errors import InvalidInput
from core.text import clean
from db.models import ChatMessageRow, Conversation, search_document
from db.uow import UnitOfWork

MAX_QUERY_CHARS = 200
# ts_headline's options: a short fragment around the match, no markup (the client renders it
# as text).
_HEADLINE = 'MaxWords=18, MinWords=6, StartSel="", StopSel="", ShortWord=2, MaxFragments=1'


@dataclass(frozen=True, slots=True)
class SearchHit:
    conversation_id: int
    title: str | None
    model_id: str | None
    updated_at: datetime
    # The newest matching message and a fragment of it; None when only the title matched.
    message_id: int | None
    snippet: str | None


RUSSIAN: ColumnElement[object] = literal_column("'russian'::regconfig")
ENGLISH: ColumnElement[object] = literal_column("'english'::regconfig")


def _query(words: str) -> ColumnElement[object]:
    return func.websearch_to_tsquery(RUSSIAN, words).op("||")(
        func.websearch_to_tsquery(ENGLISH, words)
    )


async def search_conversations(
    uow: UnitOfWork, user_id: int, *, query: str, now: datetime, limit: int = 30
) -> list[SearchHit]:
    """The user's conversations whose title or messages match ``query``, most recently active
    first, at most ``limit``. A query with no searchable word (only stop words) finds nothing."""
    words = " ".join(clean(query).split())[:MAX_QUERY_CHARS]
    if not words:
        raise InvalidInput("an empty search", fields=["q"])
    tsquery = _query(words)
    matching = (
        select(
            ChatMessageRow.conversation_id,
            ChatMessageRow.id,
            ChatMessageRow.content,
        )
        .where(
            ChatMessageRow.user_id == user_id,
            ChatMessageRow.expires_at > now,
            literal_column(search_document("messages.content")).op("@@")(tsquery),
        )
        .distinct(ChatMessageRow.conversation_id)
        .order_by(ChatMessageRow.conversation_id, ChatMessageRow.id.desc())
        .subquery("matching")
    )
    headline = func.ts_headline(
        RUSSIAN,
        matching.c.content,
        tsquery,
        _HEADLINE,
    )
    by_title = literal_column(search_document("coalesce(conversations.title, '')")).op("@@")(
        tsquery
    )
    statement = (
        select(
            Conversation.id,
            Conversation.title,
            Conversation.model_id,
            Conversation.updated_at,
            matching.c.id,
            headline,
        )
        .outerjoin(matching, matching.c.conversation_id == Conversation.id)
        .where(Conversation.user_id == user_id, (matching.c.id.is_not(None)) | by_title)
        .order_by(Conversation.updated_at.desc(), Conversation.id.desc())
        .limit(limit)
    )
    async with uow.reading():
        rows = (await uow.session.execute(statement)).tuples().all()
    return [
        SearchHit(
            conversation_id=cid,
            title=title,
            model_id=model_id,
            updated_at=updated_at,
            message_id=message_id,
            snippet=" ".join(snippet.split()) if snippet else None,
        )
        for cid, title, model_id, updated_at, message_id, snippet in rows
    ]
