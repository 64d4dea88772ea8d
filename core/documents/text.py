"""Bytes to text: byte order marks, UTF-8, UTF-16 without a mark, then charset detection.

Detection and extraction both decode through ``decode_text`` so they always agree on whether a
file is text and in which encoding.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_BOMS = (
    # UTF-32 first: its little-endian mark starts with UTF-16's.
    (b"\xff\xfe\x00\x00", "utf-32-le"),
    (b"\x00\x00\xfe\xff", "utf-32-be"),
    (b"\xef\xbb\xbf", "utf-8"),
    (b"\xff\xfe", "utf-16-le"),
    (b"\xfe\xff", "utf-16-be"),
)
# Control characters that real text does not carry (tab, newlines, form feed and escape sequences
# of terminal logs aside), C1 controls that only show up when bytes were decoded wrongly, and the
# replacement character.
_NOT_TEXT = re.compile(r"[\x00-\x08\x0e-\x1a\x1c-\x1f\x7f-\x9f\ufffd]")
MIN_PRINTABLE = 0.95
# charset-normalizer's "mess" score: above this its guess is noise, not an encoding.
MAX_CHAOS = 0.15
_SAMPLE = 8192


@dataclass(frozen=True, slots=True)
class DecodedText:
    text: str
    encoding: str


def decode_text(data: bytes) -> DecodedText | None:
    """The bytes as text and the encoding used, or None when they are not text."""
    decoded = _decode(data)
    if decoded is None or not _looks_like_text(decoded.text):
        return None
    return decoded


def _decode(data: bytes) -> DecodedText | None:
    for bom, marked in _BOMS:
        if data.startswith(bom):
            return _strict(data[len(bom) :], marked)
    if b"\x00" in data:
        utf16 = _utf16_without_bom(data)
        return _strict(data, utf16) if utf16 else None
    utf8 = _strict(data, "utf-8")
    if utf8 is not None:
        return utf8
    # Loaded by the first text that is not UTF-8 (netroom/lean.py).
    from charset_normalizer import from_bytes

    match = from_bytes(data, threshold=MAX_CHAOS).best()
    if match is None or match.encoding is None:
        return None
    return _strict(data, match.encoding)


def _strict(data: bytes, encoding: str) -> DecodedText | None:
    try:
        return DecodedText(data.decode(encoding), encoding)
    except (UnicodeDecodeError, LookupError):
        return None


def _utf16_without_bom(data: bytes) -> str | None:
    """UTF-16 saved without a byte order mark: mostly-Latin text leaves every other byte zero."""
    sample = data[:_SAMPLE]
    if len(sample) < 4 or len(data) % 2:
        return None
    pairs = len(sample) // 2
    even_zeros = sample[0::2].count(0) / pairs
    odd_zeros = sample[1::2].count(0) / pairs
    if odd_zeros >= 0.4 and even_zeros < 0.05:
        return "utf-16-le"
    if even_zeros >= 0.4 and odd_zeros < 0.05:
        return "utf-16-be"
    return None


def _looks_like_text(text: str) -> bool:
    if not text:
        return True
    bad = len(_NOT_TEXT.findall(text))
    return 1 - bad / len(text) >= MIN_PRINTABLE
