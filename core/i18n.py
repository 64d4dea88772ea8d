"""Helpers for translatable text that lives in the core.

The core never translates: it marks English msgids with ``N_`` so the catalogue extractor finds
them, and each transport translates them with the user's locale.
"""

from __future__ import annotations

from pathlib import Path

LOCALES_DIR = Path(__file__).resolve().parent.parent / "locales"
DOMAIN = "messages"
LANGUAGES = ("en", "ru")


def N_(msgid: str) -> str:
    return msgid
