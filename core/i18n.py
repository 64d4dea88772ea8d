"""Helpers for translatable text that lives in the core.

The core never translates: it marks English msgids with ``N_`` so the catalogue extractor finds
them, and each transport translates them with the user's locale.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from babel.numbers import format_decimal

LOCALES_DIR = Path(__file__).resolve().parent.parent / "locales"
DOMAIN = "messages"
LANGUAGES = ("en", "ru")


def N_(msgid: str) -> str:
    return msgid


def money(kopecks: int, language: str) -> str:
    """Roubles as people write them: 1 300,00 ₽ in Russian, ₽1,300.00 in English."""
    value = format_decimal(
        Decimal(kopecks) / 100, format="#,##0.00", locale="ru" if language == "ru" else "en"
    )
    return f"{value} ₽" if language == "ru" else f"₽{value}"
