"""Text people send is stored cleaned wherever it comes from: NUL characters and lone surrogates
(which Postgres refuses) become U+FFFD in preset titles and prompts, conversation titles and file
names, so one odd character never loses a request."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import select

from core.media import LocalMediaStore
from core.services import conversations, files, presets
from core.services.chat import ModelMenu, ModelTerms
from core.services.files import FileLimits
from core.text import clean, clean_file_name
from db.models import Conversation, File, Preset
from db.uow import UnitOfWork
from tests.factories import register

NOW = datetime(2026, 12, 5, tzinfo=UTC)
ODD = "a\x00b\ud800c"
CLEANED = "a\ufffdb\ufffdc"


def test_clean_replaces_only_what_cannot_be_stored() -> None:
    assert clean(ODD) == CLEANED
    assert clean("Привет 👋\ttab") == "Привет 👋\ttab"
    assert clean_file_name("../x\x00.md") == ".._x\ufffd.md"
    assert clean_file_name("") == "document"


async def test_presets_conversations_and_file_names_are_stored_cleaned(
    uow: UnitOfWork, tmp_path: Path
) -> None:
    user_id = (await register(uow)).user.id
    preset = await presets.create_preset(uow, user_id, title=ODD, prompt=f"Be {ODD}")
    assert (preset.title, preset.system_prompt) == (CLEANED, f"Be {CLEANED}")
    edited = await presets.edit_preset(
        uow, user_id, preset.id, title=f"{ODD}!", prompt=ODD, now=NOW
    )
    assert (edited.title, edited.system_prompt) == (f"{CLEANED}!", CLEANED)
    stored = await uow.session.scalar(select(Preset.title).filter_by(id=preset.id))
    assert stored == f"{CLEANED}!"

    model = ModelTerms(
        id="m",
        provider="openai",
        provider_model="m",
        context_window=8000,
        input_per_1k=1,
        output_per_1k=1,
    )
    started = await conversations.start_conversation(
        uow, user_id, title=ODD, models=ModelMenu(models=(model,), default_id="m")
    )
    assert started.title == CLEANED
    title = await uow.session.scalar(select(Conversation.title).filter_by(id=started.id))
    assert title == CLEANED

    uploaded = await files.upload(
        uow,
        LocalMediaStore(tmp_path / "store"),
        user_id=user_id,
        name=f"{ODD}.txt",
        data=b"Plain notes about rivers and lakes.",
        limits=FileLimits(),
        now=NOW,
    )
    assert uploaded.name == f"{CLEANED}.txt"
    name = await uow.session.scalar(select(File.name).filter_by(id=uploaded.id))
    assert name == f"{CLEANED}.txt"
