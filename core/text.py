"""Text as it is stored: what people send (the bot's messages, captions and file names, or any
other way in) may carry NUL characters or lone surrogates, which Postgres and every encoder
refuse. The web API refuses them at its edge; everything that stores such text cleans it here
first, so one odd character never costs a user their request."""

from __future__ import annotations

import re
from typing import Any

UNSAFE = re.compile("[\x00\ud800-\udfff]")


def clean(text: str) -> str:
    """Text Postgres and every encoder accept: NUL and lone surrogates become U+FFFD."""
    return UNSAFE.sub("\ufffd", text) if UNSAFE.search(text) else text


def clean_file_name(name: str | None) -> str:
    """A file name to keep: cleaned, no path separators, at most 255 characters."""
    return clean(name or "document").replace("/", "_").strip()[:255] or "document"


def clean_json(value: Any) -> Any:
    """A JSON value (a Telegram update, say) with every string and key cleaned: Postgres's
    jsonb refuses NUL and lone surrogates as well."""
    if isinstance(value, str):
        return clean(value)
    if isinstance(value, dict):
        return {clean(str(k)): clean_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [clean_json(v) for v in value]
    return value
