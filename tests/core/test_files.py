"""Uploaded documents: limits, dedupe, indexing states, retrieval with citations (full-text on
every server), ownership, and deletion that leaves nothing behind."""

from __future__ import annotations

import io
import zipfile
from datetime import UTC, datetime
from pathlib import Path

import pytest
from docx import Document
from sqlalchemy import func, select

from core.documents import BinaryFile, DocumentTooLarge
from core.errors import NotFound
from core.media import LocalMediaStore
from core.services import conversations, files
from core.services.files import FileLimits, QuotaExceeded
from db.models import File, FileChunk
from db.uow import UnitOfWork
from tests.core.test_documents import make_pdf
from tests.factories import register

NOW = datetime(2026, 12, 1, tzinfo=UTC)
LIMITS = FileLimits(max_bytes=200_000, quota_bytes=400_000, max_pages=20, max_chars=200_000)

# A small corpus with questions whose answers are known: (question, file, expected citation).
CORPUS = {
    "handbook.pdf": make_pdf(
        [
            "Vacation policy. Every employee receives twenty eight days of paid vacation per year.",
            "Remote work. Staff may work from home on Mondays and Fridays with manager approval.",
            "Expenses. Taxi receipts must be submitted within thirty days through the portal.",
        ]
    ),
    "servers.md": (
        b"# Deployment\n\nThe production cluster runs in the Frankfurt region on twelve nodes.\n\n"
        b"# Backups\n\nDatabase snapshots are taken every six hours and kept for ninety days.\n\n"
        b"# Monitoring\n\nAlerts page the on-call engineer through the escalation rota.\n"
    ),
    "recipes.txt": (
        "Borscht needs beetroot, cabbage, potatoes and a spoon of sour cream.\n\n"
        "Blini are thin pancakes made from flour, milk and eggs.\n\n"
        "Пельмени лепят из теста и фарша, варят в подсоленной воде.\n"
    ).encode(),
}
QUESTIONS = [
    ("How many vacation days does an employee get?", "handbook.pdf, p. 1"),
    ("Can I work from home on Fridays?", "handbook.pdf, p. 2"),
    ("Deadline for taxi receipts?", "handbook.pdf, p. 3"),
    ("Which region hosts the production cluster?", "servers.md › Deployment"),
    ("How long are database snapshots kept?", "servers.md › Backups"),
    ("Who gets paged by alerts?", "servers.md › Monitoring"),
    ("What goes into borscht?", "recipes.txt"),
    ("Как варят пельмени?", "recipes.txt"),
]


def _docx() -> bytes:
    document = Document()
    document.add_heading("Onboarding", level=1)
    document.add_paragraph("New colleagues receive a laptop on their first morning.")
    table = document.add_table(rows=2, cols=2)
    table.cell(0, 0).text = "Badge"
    table.cell(0, 1).text = "Reception desk"
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


@pytest.fixture
def store(tmp_path: Path) -> LocalMediaStore:
    return LocalMediaStore(tmp_path / "store")


async def _upload_and_index(
    uow: UnitOfWork, store: LocalMediaStore, user_id: int, name: str, data: bytes
) -> files.FileDTO:
    uploaded = await files.upload(
        uow, store, user_id=user_id, name=name, data=data, limits=LIMITS, now=NOW
    )
    assert uploaded.status == "queued"
    return await files.index(uow, store, file_id=uploaded.id, limits=LIMITS, embedder=None, now=NOW)


async def test_each_type_is_indexed_and_a_disguised_file_is_judged_by_content(
    uow: UnitOfWork, store: LocalMediaStore
) -> None:
    user = (await register(uow)).user
    pdf = await _upload_and_index(uow, store, user.id, "handbook.pdf", CORPUS["handbook.pdf"])
    assert (pdf.status, pdf.mime, pdf.pages) == ("ready", "application/pdf", 3)
    docx = await _upload_and_index(uow, store, user.id, "welcome.docx", _docx())
    assert docx.status == "ready" and docx.mime.endswith("wordprocessingml.document")
    # A PDF named .txt is still a PDF.
    disguised = await _upload_and_index(
        uow, store, user.id, "notes.txt", make_pdf(["Disguised but readable."])
    )
    assert disguised.mime == "application/pdf" and disguised.status == "ready"
    # A program named .txt is refused at upload, before anything is stored.
    with pytest.raises(BinaryFile):
        await files.upload(
            uow,
            store,
            user_id=user.id,
            name="x.txt",
            data=b"MZ\x90\x00" + bytes(600),
            limits=LIMITS,
            now=NOW,
        )
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("a.txt", "hello")
    with pytest.raises(files.UnsupportedDocument) as refused:
        await files.upload(
            uow,
            store,
            user_id=user.id,
            name="a.zip",
            data=archive.getvalue(),
            limits=LIMITS,
            now=NOW,
        )
    assert refused.value.code == "archive"


async def test_a_corrupt_pdf_ends_failed_with_its_reason(
    uow: UnitOfWork, store: LocalMediaStore
) -> None:
    user = (await register(uow)).user
    broken = CORPUS["handbook.pdf"][: len(CORPUS["handbook.pdf"]) // 2]
    done = await _upload_and_index(uow, store, user.id, "broken.pdf", broken)
    assert (done.status, done.error, done.chunks) == ("failed", "corrupt", 0)
    msgid, params = files.failure_reason(done.error, LIMITS)
    assert "damaged" in msgid and params == {}


async def test_limits_duplicates_and_quota(uow: UnitOfWork, store: LocalMediaStore) -> None:
    user = (await register(uow)).user
    with pytest.raises(DocumentTooLarge):
        await files.upload(
            uow,
            store,
            user_id=user.id,
            name="big.txt",
            data=b"a " * 150_000,
            limits=LIMITS,
            now=NOW,
        )
    first = await files.upload(
        uow,
        store,
        user_id=user.id,
        name="r.txt",
        data=CORPUS["recipes.txt"],
        limits=LIMITS,
        now=NOW,
    )
    again = await files.upload(
        uow,
        store,
        user_id=user.id,
        name="copy.txt",
        data=CORPUS["recipes.txt"],
        limits=LIMITS,
        now=NOW,
    )
    assert again.id == first.id and not again.new
    count = await uow.session.scalar(
        select(func.count()).select_from(File).where(File.user_id == user.id)
    )
    assert count == 1
    # Another user uploading the same content gets a file of their own.
    other = (await register(uow)).user
    theirs = await files.upload(
        uow,
        store,
        user_id=other.id,
        name="r.txt",
        data=CORPUS["recipes.txt"],
        limits=LIMITS,
        now=NOW,
    )
    assert theirs.id != first.id and theirs.new
    filler = b"word " * 39_000
    for n in range(2):
        await files.upload(
            uow,
            store,
            user_id=user.id,
            name=f"f{n}.txt",
            data=filler + bytes([65 + n]),
            limits=LIMITS,
            now=NOW,
        )
    # A third would pass the quota: refused, and nothing is stored for it.
    with pytest.raises(QuotaExceeded):
        await files.upload(
            uow,
            store,
            user_id=user.id,
            name="f3.txt",
            data=filler + b"?",
            limits=LIMITS,
            now=NOW,
        )
    count = await uow.session.scalar(
        select(func.count()).select_from(File).where(File.user_id == user.id)
    )
    assert count == 3


async def test_retrieval_finds_the_known_answers_and_cites_them(
    uow: UnitOfWork, store: LocalMediaStore
) -> None:
    user = (await register(uow)).user
    ids = []
    for name, data in CORPUS.items():
        done = await _upload_and_index(uow, store, user.id, name, data)
        assert done.status == "ready", (name, done.error)
        ids.append(done.id)
    hits = 0
    for question, expected in QUESTIONS:
        found = await files.search(
            uow, user_id=user.id, file_ids=ids, query=question, budget_tokens=2_000
        )
        assert found.method == "fts"
        if expected in [p.cite for p in found.passages[:5]]:
            hits += 1
    recall = hits / len(QUESTIONS)
    print(f"recall@5 (full-text): {recall:.2f}")
    assert recall >= 0.75
    # The prompt block numbers passages and names their sources.
    found = await files.search(
        uow, user_id=user.id, file_ids=ids, query="vacation days", budget_tokens=2_000
    )
    block = found.prompt()
    assert "[1] (handbook.pdf, p. 1)" in block and "twenty eight days" in block
    assert found.sources()[0] == "handbook.pdf, p. 1"


async def test_attached_files_give_context_and_nobody_else_reaches_them(
    uow: UnitOfWork, store: LocalMediaStore
) -> None:
    owner = (await register(uow)).user
    intruder = (await register(uow)).user
    done = await _upload_and_index(uow, store, owner.id, "servers.md", CORPUS["servers.md"])
    conversation = await conversations.current_conversation(
        uow, owner.id, title="docs", model_id="m"
    )
    assert (
        await files.context_for(
            uow,
            user_id=owner.id,
            conversation_id=conversation,
            preset_id=None,
            query="backups",
            limits=LIMITS,
            embedder=None,
        )
        is None
    )
    await files.attach(uow, user_id=owner.id, file_id=done.id, conversation_id=conversation)
    context = await files.context_for(
        uow,
        user_id=owner.id,
        conversation_id=conversation,
        preset_id=None,
        query="How often are snapshots taken?",
        limits=LIMITS,
        embedder=None,
    )
    assert context is not None and context.sources()[0] == "servers.md › Backups"
    # Another user can neither read, attach, detach nor delete it, nor search it.
    with pytest.raises(NotFound):
        await files.get_file(uow, intruder.id, done.id)
    other_conversation = await conversations.current_conversation(
        uow, intruder.id, title="mine", model_id="m"
    )
    with pytest.raises(NotFound):
        await files.attach(
            uow, user_id=intruder.id, file_id=done.id, conversation_id=other_conversation
        )
    with pytest.raises(NotFound):
        await files.attach(
            uow, user_id=owner.id, file_id=done.id, conversation_id=other_conversation
        )
    with pytest.raises(NotFound):
        await files.delete_file(uow, store, user_id=intruder.id, file_id=done.id)
    assert (
        await files.context_for(
            uow,
            user_id=intruder.id,
            conversation_id=conversation,
            preset_id=None,
            query="snapshots",
            limits=LIMITS,
            embedder=None,
        )
        is None
    )
    listed = await files.list_files(uow, owner.id, conversation_id=conversation)
    assert [(f.id, f.attached) for f in listed] == [(done.id, True)]


async def test_deleting_a_file_leaves_nothing_behind(
    uow: UnitOfWork, store: LocalMediaStore, tmp_path: Path
) -> None:
    user = (await register(uow)).user
    done = await _upload_and_index(uow, store, user.id, "recipes.txt", CORPUS["recipes.txt"])
    assert done.chunks > 0
    stored = [p for p in (tmp_path / "store").rglob("*") if p.is_file()]
    assert stored
    await files.delete_file(uow, store, user_id=user.id, file_id=done.id)
    assert await uow.session.get(File, done.id) is None
    left = await uow.session.scalar(
        select(func.count()).select_from(FileChunk).where(FileChunk.file_id == done.id)
    )
    assert left == 0
    assert not [p for p in (tmp_path / "store").rglob("*") if p.is_file()]
