"""Documents through the real bot: send a file, wait until it is read, ask about it and get an
answer built from its passages with the sources named; /files to manage them."""

from __future__ import annotations

import io
import zipfile
from typing import Any

from sqlalchemy import select

from core.services import billing
from db.models import File
from tests.bot.conftest import BotHarness, Person, PersonFactory, buttons, text_of
from tests.core.test_documents import make_pdf

FACTS = (
    b"# Deployment\n\nThe production cluster runs in the Frankfurt region on twelve nodes.\n\n"
    b"# Backups\n\nDatabase snapshots are taken every six hours and kept for ninety days.\n"
)


async def _ready_person(harness: BotHarness, person: PersonFactory, name: str) -> Person:
    someone: Person = await person(name)
    [consent] = await someone.say("/start")
    await someone.accept(consent)
    async with harness.uow_factory() as uow:
        user = await uow.users.by_telegram_id(someone.id)
        assert user is not None
        async with uow.transaction():
            await billing.credit(
                uow, user_id=user.id, amount=100_000, category="bonus", key=f"files-{user.id}"
            )
    return someone


async def _send(harness: BotHarness, someone: Person, name: str, data: bytes) -> list[Any]:
    after = await harness.client.last_seq()
    await harness.client.send_document(someone.id, name, data)
    return await someone.replies(after, 1)


async def test_a_document_is_read_then_answers_come_from_it_with_sources(
    harness: BotHarness, person: PersonFactory
) -> None:
    rae = await _ready_person(harness, person, "Rae")
    after = await harness.client.last_seq()
    [got] = await _send(harness, rae, "servers.md", FACTS)
    assert "Got servers.md" in text_of(got)
    ready = await harness.client.wait_for(
        lambda e: (
            e["type"] == "bot_message" and "passages indexed" in (e["message"].get("text") or "")
        ),
        chat_id=rae.id,
        after=after,
        wait=20,
    )
    assert "servers.md" in text_of(ready)

    await harness.client._call("DELETE", "/providers/requests")
    await harness.client._call(
        "POST", "/providers/script", json={"provider": "openai", "reply": "Ninety days [1]."}
    )
    after = await harness.client.last_seq()
    await harness.client.send_text(rae.id, "How long are database snapshots kept?")
    sources = await harness.client.wait_for(
        lambda e: e["type"] == "bot_message" and "Sources:" in (e["message"].get("text") or ""),
        chat_id=rae.id,
        after=after,
        wait=20,
    )
    assert "servers.md › Backups" in text_of(sources)
    [request] = (await harness.client._call("GET", "/providers/requests?provider=openai"))[
        "requests"
    ]
    sent = str(request["json"]["messages"])
    assert "kept for ninety days" in sent and "[1] (servers.md › Backups)" in sent

    # The same file again is recognised, not stored twice.
    [again] = await _send(harness, rae, "copy.md", FACTS)
    assert "You sent servers.md before" in text_of(again)

    [listing] = await rae.say("/files")
    assert "servers.md" in text_of(listing) and "📎" in text_of(listing)
    delete = next(b for b in buttons(listing) if b["text"].startswith("🗑"))
    [after_delete] = await rae.tap(listing, delete["callback_data"])
    assert "no documents yet" in text_of(after_delete)


async def test_refused_and_unreadable_files_are_explained(
    harness: BotHarness, person: PersonFactory
) -> None:
    sol = await _ready_person(harness, person, "Sol")
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("a.txt", "hello")
    [refused] = await _send(harness, sol, "notes.txt", archive.getvalue())
    assert "Archives are not supported" in text_of(refused)

    pdf = make_pdf(["Page one of a report that was cut short."])
    after = await harness.client.last_seq()
    [got] = await _send(harness, sol, "report.pdf", pdf[: len(pdf) // 2])
    assert "Got report.pdf" in text_of(got)
    failed = await harness.client.wait_for(
        lambda e: e["type"] == "bot_message" and "damaged" in (e["message"].get("text") or ""),
        chat_id=sol.id,
        after=after,
        wait=20,
    )
    assert failed
    [listing] = await sol.say("/files")
    assert "❌ 📎 report.pdf" in text_of(listing)


async def test_a_file_that_failed_is_read_again_when_sent_again(
    harness: BotHarness, person: PersonFactory
) -> None:
    uma = await _ready_person(harness, person, "Uma")
    pdf = make_pdf(["A report whose first upload was cut short."])
    damaged = pdf[: len(pdf) // 2]

    async def failure_after(after: int) -> Any:
        return await harness.client.wait_for(
            lambda e: e["type"] == "bot_message" and "damaged" in (e["message"].get("text") or ""),
            chat_id=uma.id,
            after=after,
            wait=20,
        )

    after = await harness.client.last_seq()
    [got] = await _send(harness, uma, "report.pdf", damaged)
    assert "Got report.pdf" in text_of(got)
    assert await failure_after(after)

    # Not "you sent it before": it is queued and read once more, and the outcome told again.
    after = await harness.client.last_seq()
    [retry] = await _send(harness, uma, "report.pdf", damaged)
    assert "Trying again" in text_of(retry) and "report.pdf" in text_of(retry)
    assert await failure_after(after)


async def test_a_file_name_with_a_nul_is_stored_cleaned_not_refused(
    harness: BotHarness, person: PersonFactory
) -> None:
    kai = await _ready_person(harness, person, "Kai")
    [got] = await _send(harness, kai, "river\x00notes.md", FACTS)
    assert "Got river\ufffdnotes.md" in text_of(got)
    async with harness.uow_factory() as uow:
        user = await uow.users.by_telegram_id(kai.id)
        assert user is not None
        names = (await uow.session.scalars(select(File.name).filter_by(user_id=user.id))).all()
    assert list(names) == ["river\ufffdnotes.md"]
    # A message with one is answered too (the inbox keeps the update cleaned).
    [answer] = await kai.say("What about\x00 rivers?")
    assert "busy" not in text_of(answer) and "Something went wrong" not in text_of(answer)
