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


# The free-tier classes of the model catalogue, as people read them; an id not listed here is
# shown as it is.
TIER_NAMES = {"basic": N_("basic"), "standard": N_("standard")}
# What each class holds, told next to its name wherever a class appears; a class with no hint
# is shown by its name alone.
TIER_HINTS = {"basic": N_("light, fast models"), "standard": N_("stronger models")}

# A plan's (or the free tier's) allowance per class, one text for each free-tier period.
FREE_PER_PERIOD = {
    "day": N_("{count} free {tier} requests a day"),
    "week": N_("{count} free {tier} requests a week"),
    "month": N_("{count} free {tier} requests a month"),
}
