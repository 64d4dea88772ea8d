"""Extracted blocks packed into chunks sized for embedding and for a model's context.

Chunks follow the document's structure: a paragraph is never cut unless it alone is over
``max_tokens`` (then it is cut between sentences, then words), a new section starts a new chunk
once the current one is at least half the target size, and a chunk that continues the same
section repeats the last few words of the one before (``overlap_tokens``) so a sentence cut at a
boundary can still be found.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from itertools import pairwise

from core.documents.extract import Block, Extracted
from core.documents.tokens import TOKEN, count_tokens

__all__ = ["SECTION_SEPARATOR", "Chunk", "chunk", "count_tokens"]

SECTION_SEPARATOR = " › "


@dataclass(frozen=True, slots=True)
class Chunk:
    ordinal: int
    text: str
    # The page the chunk's own text starts on (PDF only).
    page: int | None
    # The heading path the chunk's own text starts under, joined with " › "; "" when none.
    section: str
    token_count: int
    # Leading characters of ``text`` that repeat the end of the previous chunk.
    overlap_chars: int = 0

    @property
    def own_text(self) -> str:
        """The text without the part repeated from the previous chunk."""
        return self.text[self.overlap_chars :]


@dataclass(frozen=True, slots=True)
class _Unit:
    """A whole block or, for a block over ``max_tokens``, one slice of it."""

    block: int
    start: int
    end: int
    tokens: int
    heading: bool


_Cuts = Callable[[str, int, int], Iterator[int]]


def _after(pattern: re.Pattern[str]) -> _Cuts:
    def cuts(text: str, start: int, end: int) -> Iterator[int]:
        for match in pattern.finditer(text, start, end):
            yield match.end()

    return cuts


def _between_tokens(text: str, start: int, end: int) -> Iterator[int]:
    for match in TOKEN.finditer(text, start, end):
        yield match.start()


_SENTENCES = _after(re.compile(r"[.!?…][\"'»”)\]]*\s+"))
_WORDS = _after(re.compile(r"\s+"))
_BLANK_LINES = _after(re.compile(r"\n[ \t]*\n\s*"))
_LINES = _after(re.compile(r"\n"))
_PROSE = (_SENTENCES, _WORDS, _between_tokens)
_STRUCTURED = (_BLANK_LINES, _LINES, _WORDS, _between_tokens)


def chunk(
    extracted: Extracted,
    *,
    target_tokens: int = 400,
    max_tokens: int = 600,
    overlap_tokens: int = 40,
) -> list[Chunk]:
    if not 0 < target_tokens <= max_tokens:
        raise ValueError("need 0 < target_tokens <= max_tokens")
    if not 0 <= overlap_tokens < max_tokens:
        raise ValueError("need 0 <= overlap_tokens < max_tokens")
    blocks = extracted.blocks
    units = [
        unit
        for index, block in enumerate(blocks)
        for unit in _units(index, block, target_tokens, max_tokens)
    ]
    packer = _Packer(blocks, target_tokens, max_tokens, overlap_tokens)
    for unit in units:
        packer.add(unit)
    packer.flush()
    return packer.chunks


def _units(index: int, block: Block, target: int, maximum: int) -> list[_Unit]:
    text = block.text
    heading = block.kind == "heading"
    tokens = count_tokens(text)
    if tokens <= maximum:
        return [_Unit(index, 0, len(text), tokens, heading)]
    strategies = _PROSE if block.kind in ("paragraph", "heading") else _STRUCTURED
    return [
        _Unit(index, start, end, count_tokens(text[start:end]), heading)
        for start, end in _split(text, 0, len(text), strategies, target, maximum)
    ]


def _split(
    text: str, start: int, end: int, strategies: tuple[_Cuts, ...], target: int, maximum: int
) -> list[tuple[int, int]]:
    """Slices covering text[start:end], each within ``maximum`` tokens, cut at the coarsest
    boundaries that allow it and regrouped up to ``target`` tokens."""
    if not strategies or count_tokens(text[start:end]) <= maximum:
        return [(start, end)]
    cuts, finer = strategies[0], strategies[1:]
    points = [start, *(p for p in cuts(text, start, end) if start < p < end), end]
    pieces: list[tuple[int, int]] = []
    for a, b in pairwise(points):
        pieces.extend(_split(text, a, b, finer, target, maximum))
    grouped: list[tuple[int, int]] = []
    group_start, group_end, group_tokens = start, start, 0
    for a, b in pieces:
        tokens = count_tokens(text[a:b])
        if group_end > group_start and group_tokens + tokens > target:
            grouped.append((group_start, group_end))
            group_start, group_tokens = a, 0
        group_end = b
        group_tokens += tokens
    grouped.append((group_start, group_end))
    return grouped


class _Packer:
    def __init__(self, blocks: tuple[Block, ...], target: int, maximum: int, overlap: int) -> None:
        self.blocks = blocks
        self.target = target
        self.maximum = maximum
        self.overlap = overlap
        self.chunks: list[Chunk] = []
        self._units: list[_Unit] = []
        self._tokens = 0
        self._overlap_text = ""
        self._overlap_tokens = 0
        self._last: _Unit | None = None
        self._previous_own = ""

    def add(self, unit: _Unit) -> None:
        if self._units:
            if unit.heading and self._tokens >= self.target / 2:
                self.flush()
            elif self._tokens + unit.tokens > self.maximum or self._tokens >= self.target:
                carried = self._trailing_headings(unit)
                self.flush()
                for heading in carried:
                    self._push(heading)
                if not carried:
                    self._start_overlap(unit)
        self._push(unit)

    def flush(self) -> None:
        if not self._units:
            return
        first = self.blocks[self._units[0].block]
        own = self._own_text()
        separator = ""
        if self._overlap_text:
            same_block = self._last is not None and self._last.block == self._units[0].block
            separator = " " if same_block else "\n\n"
        overlap = self._overlap_text + separator if self._overlap_text else ""
        text = overlap + own
        self.chunks.append(
            Chunk(
                ordinal=len(self.chunks),
                text=text,
                page=first.page,
                section=SECTION_SEPARATOR.join(first.heading_path),
                token_count=count_tokens(text),
                overlap_chars=len(overlap),
            )
        )
        self._last = self._units[-1]
        self._previous_own = own
        self._units = []
        self._tokens = 0
        self._overlap_text = ""
        self._overlap_tokens = 0

    def _push(self, unit: _Unit) -> None:
        self._units.append(unit)
        self._tokens += unit.tokens

    def _trailing_headings(self, unit: _Unit) -> list[_Unit]:
        """Headings at the end of the chunk being closed, moved on so they stay with their text
        (when that still fits and the chunk keeps some text of its own)."""
        count = 0
        while count < len(self._units) and self._units[-1 - count].heading:
            count += 1
        if count == 0 or count == len(self._units):
            return []
        carried = self._units[-count:]
        if sum(u.tokens for u in carried) + unit.tokens > self.maximum:
            return []
        self._units = self._units[:-count]
        self._tokens -= sum(u.tokens for u in carried)
        return carried

    def _start_overlap(self, unit: _Unit) -> None:
        """Begin the next chunk with the last words of the previous one, when it goes on in the
        same section and there is room."""
        last = self._last
        if last is None or unit.heading or self.overlap == 0:
            return
        if self.blocks[last.block].heading_path != self.blocks[unit.block].heading_path:
            return
        budget = min(self.overlap, self.maximum - unit.tokens)
        words: list[str] = []
        tokens = 0
        for word in reversed(self._previous_own.split()):
            word_tokens = count_tokens(word)
            if tokens + word_tokens > budget:
                break
            words.append(word)
            tokens += word_tokens
        if words:
            self._overlap_text = " ".join(reversed(words))
            self._overlap_tokens = tokens
            self._tokens = tokens

    def _own_text(self) -> str:
        parts: list[str] = []
        run_start = self._units[0]
        previous = run_start
        for unit in self._units[1:]:
            if unit.block == previous.block and unit.start == previous.end:
                previous = unit
                continue
            parts.append(self._slice(run_start, previous))
            run_start = previous = unit
        parts.append(self._slice(run_start, previous))
        return "\n\n".join(part for part in parts if part)

    def _slice(self, first: _Unit, last: _Unit) -> str:
        return self.blocks[first.block].text[first.start : last.end].strip()
