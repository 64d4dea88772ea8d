"""Every user-visible text is in the catalogue and translated; the sample config is complete."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from babel.messages.pofile import read_po
from pydantic import BaseModel

from core.config import Settings

ROOT = Path(__file__).resolve().parent.parent
PLACEHOLDER = re.compile(r"\{(\w*)\}")


def _extract(tmp_path: Path) -> set[str]:
    out = tmp_path / "fresh.pot"
    subprocess.run(
        [
            str(Path(sys.executable).with_name("pybabel")),
            "-q",
            "extract",
            "-F",
            "babel.cfg",
            "-k",
            "N_",
            "-k",
            "__",
            "-k",
            "lazy_gettext",
            "--omit-header",
            "-o",
            str(out),
            ".",
        ],
        cwd=ROOT,
        check=True,
    )
    with out.open("rb") as f:
        return {m.id for m in read_po(f) if m.id and isinstance(m.id, str)}


def test_every_text_in_the_code_has_a_russian_translation(tmp_path: Path) -> None:
    in_code = _extract(tmp_path)
    with (ROOT / "locales/ru/LC_MESSAGES/messages.po").open("rb") as f:
        ru = {m.id: m.string for m in read_po(f) if m.id and not m.fuzzy}
    missing = sorted(msgid for msgid in in_code if not ru.get(msgid))
    assert missing == [], "untranslated: run `make catalogue` and translate"


def test_translations_keep_every_placeholder() -> None:
    with (ROOT / "locales/ru/LC_MESSAGES/messages.po").open("rb") as f:
        for message in read_po(f):
            if message.id and message.string and isinstance(message.id, str):
                assert sorted(PLACEHOLDER.findall(message.id)) == sorted(
                    PLACEHOLDER.findall(str(message.string))
                ), message.id


def _variables(model: type[BaseModel], prefix: str = "") -> set[str]:
    names: set[str] = set()
    for name, field in model.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            names |= _variables(annotation, f"{prefix}{name.upper()}__")
        else:
            names.add(f"{prefix}{name.upper()}")
    return names


def test_env_example_documents_every_setting() -> None:
    text = (ROOT / ".env.example").read_text()
    documented = set(re.findall(r"^#?\s?([A-Z][A-Z0-9_]*)=", text, flags=re.MULTILINE))
    assert _variables(Settings) - documented == set()
