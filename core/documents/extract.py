"""Text out of a document, as blocks that keep the document's structure.

Each block knows its page (PDF only) and the headings it sits under, so answers can cite
"report.pdf, p. 3" or "guide.docx › Installation". Parsers of untrusted files can fail in any
way; every such failure becomes ``CorruptDocument``.
"""

from __future__ import annotations

import csv
import io
import re
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from html.parser import HTMLParser
from typing import IO, TYPE_CHECKING, Any, Literal

from core.documents.detect import DocumentKind
from core.documents.errors import (
    BinaryFile,
    CorruptDocument,
    DocumentTooComplex,
    EmptyDocument,
    EncryptedDocument,
    TooManyPages,
    TooMuchText,
    UnsupportedDocument,
)
from core.documents.text import decode_text
from core.documents.tokens import count_tokens

if TYPE_CHECKING:
    from pypdf import PdfReader

# The readers (pypdf, lxml, markdown-it) are imported by the function reading their kind:
# only the process that reads documents loads them (netroom/lean.py).

BlockKind = Literal["heading", "paragraph", "code", "table", "list"]

# Rows of a table go into blocks of about this many tokens, each repeating the header row, so a
# chunk of a long table still says what its columns are.
TABLE_GROUP_TOKENS = 300
# A truncated upload ends before the PDF's end-of-file marker; a reader would patch the gap over
# and silently lose pages.
_PDF_TAIL = 16 * 1024
# The Word body's XML beyond this (counted as it is inflated) is a decompression bomb, not a
# document; its styles beyond the second figure likewise.
MAX_DOCX_XML = 256 * 1024 * 1024
MAX_DOCX_STYLES = 16 * 1024 * 1024
# Far more paragraphs than any document within the text limit has (empty ones included): a body
# of millions of empty paragraphs is a bomb that would otherwise be read to its end.
MAX_DOCX_PARAGRAPHS = 250_000
_READ_SIZE = 64 * 1024
_W = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"
_HEADING_STYLE = re.compile(r"heading\s*([1-9])", re.IGNORECASE)
_SENTENCE_END = re.compile(r"[.!?…:;][\"'»”)\]]*$")
# Control characters a database refuses (NUL) or a reader never sees; tabs and newlines stay.
_CONTROL = re.compile(r"[\x00-\x08\x0e-\x1f\x7f]")
_LINE_BREAKS = str.maketrans({"\r": "\n", "\f": "\n", "\v": "\n"})


@dataclass(frozen=True, slots=True)
class Block:
    text: str
    page: int | None
    # The headings above the block, outermost first; a heading's own path ends with itself.
    heading_path: tuple[str, ...]
    kind: BlockKind


@dataclass(frozen=True, slots=True)
class Extracted:
    kind: DocumentKind
    blocks: tuple[Block, ...]
    # Pages of a PDF; None for formats without pages.
    pages: int | None
    # Characters of text in all blocks, the figure ``max_chars`` limits.
    chars: int


def extract(data: bytes, kind: DocumentKind, *, max_pages: int, max_chars: int) -> Extracted:
    """The document's text as blocks, in reading order.

    Raises ``TooManyPages`` over ``max_pages`` (PDF), ``TooMuchText`` over ``max_chars``,
    ``EmptyDocument`` when there is no text (a scanned PDF), ``EncryptedDocument`` when a
    password is needed and ``CorruptDocument`` when the file cannot be parsed.
    """
    builder = _Builder(max_chars)
    pages: int | None = None
    if kind is DocumentKind.PDF:
        pages = _pdf(data, builder, max_pages)
    elif kind is DocumentKind.DOCX:
        _docx(data, builder)
    else:
        text = _text(data, max_chars)
        if kind is DocumentKind.HTML:
            _html(text, builder)
        elif kind is DocumentKind.MARKDOWN:
            _markdown(text, builder)
        elif kind is DocumentKind.CSV:
            _csv(text, builder)
        elif kind is DocumentKind.CODE:
            _code(text, builder)
        else:
            _plain(text, builder)
    if not builder.blocks:
        raise EmptyDocument("no text in the document")
    return Extracted(kind=kind, blocks=tuple(builder.blocks), pages=pages, chars=builder.chars)


class _Builder:
    """Collects blocks, keeps the heading outline and stops as soon as there is too much text."""

    def __init__(self, max_chars: int) -> None:
        self.max_chars = max_chars
        self.blocks: list[Block] = []
        self.chars = 0
        self.page: int | None = None
        self._outline: list[tuple[int, str]] = []

    @property
    def path(self) -> tuple[str, ...]:
        return tuple(text for _, text in self._outline)

    def set_path(self, path: tuple[str, ...]) -> None:
        self._outline = list(enumerate(path, start=1))

    def heading(self, level: int, text: str) -> None:
        text = _inline(_clean(text))
        if not text:
            return
        while self._outline and self._outline[-1][0] >= level:
            self._outline.pop()
        self._outline.append((level, text))
        self._add(Block(text, self.page, self.path, "heading"))

    def paragraph(self, text: str) -> None:
        self.add("paragraph", _inline(text))

    def add(self, kind: BlockKind, text: str) -> None:
        text = _clean(text)
        if text.strip():
            self._add(Block(text, self.page, self.path, kind))

    def table(self, rows: list[str], *, header: bool = True) -> None:
        rows = [row for row in rows if row.strip()]
        if not rows:
            return
        head = rows[0] if header and len(rows) > 1 else None
        body = rows[1:] if head is not None else rows
        head_tokens = count_tokens(head) if head else 0
        group: list[str] = []
        tokens = head_tokens
        for row in body:
            row_tokens = count_tokens(row)
            if group and tokens + row_tokens > TABLE_GROUP_TOKENS:
                self._table_group(head, group)
                group, tokens = [], head_tokens
            group.append(row)
            tokens += row_tokens
        self._table_group(head, group)

    def _table_group(self, head: str | None, rows: list[str]) -> None:
        self.add("table", "\n".join([head, *rows] if head else rows))

    def _add(self, block: Block) -> None:
        self.chars += len(block.text)
        if self.chars > self.max_chars:
            raise TooMuchText(f"over {self.max_chars} characters", limit=self.max_chars)
        self.blocks.append(block)


def _clean(text: str) -> str:
    return _CONTROL.sub("", text.replace("\r\n", "\n").translate(_LINE_BREAKS))


def _inline(text: str) -> str:
    return " ".join(text.split())


def _lines(text: str) -> str:
    """Text with line breaks kept, trailing spaces and surrounding blank lines dropped."""
    return "\n".join(line.rstrip() for line in text.strip("\n").split("\n")).strip("\n")


def _text(data: bytes, max_chars: int) -> str:
    decoded = decode_text(data)
    if decoded is None:
        raise BinaryFile("the bytes do not decode as text")
    text = decoded.text.lstrip("\ufeff").replace("\r\n", "\n").replace("\r", "\n")
    # Blocks keep nearly every visible character, so a text with far more of them than the
    # limit is refused before any parsing.
    if len(text) > 2 * max_chars and len("".join(text.split())) > 2 * max_chars:
        raise TooMuchText(f"over {max_chars} characters", limit=max_chars)
    return text


# PDF


def _pdf(data: bytes, builder: _Builder, max_pages: int) -> int:
    if b"%%EOF" not in data[-_PDF_TAIL:]:
        raise CorruptDocument("the PDF has no end-of-file marker: the upload was cut short")
    from pypdf import PdfReader

    try:
        reader = PdfReader(io.BytesIO(data), strict=False)
        if reader.is_encrypted:
            _decrypt(reader)
        pages = len(reader.pages)
        if pages > max_pages:
            raise TooManyPages(f"{pages} pages", pages=pages, limit=max_pages)
        outline = _pdf_outline(reader)
        for index, page in enumerate(reader.pages):
            builder.page = index + 1
            builder.set_path(_path_at(outline, index))
            for paragraph in _pdf_paragraphs(page.extract_text() or ""):
                builder.add("paragraph", paragraph)
    except UnsupportedDocument:
        raise
    except Exception as exc:
        raise CorruptDocument(f"the PDF cannot be parsed: {exc!r}") from exc
    return pages


def _decrypt(reader: PdfReader) -> None:
    """Open a PDF whose only protection is an owner password (printing or copying limits):
    anyone can read those. One that needs a password to open is refused."""
    from pypdf import PasswordType
    from pypdf.errors import DependencyError

    try:
        opened = reader.decrypt("")
    except (DependencyError, NotImplementedError) as exc:
        raise EncryptedDocument(f"unsupported PDF encryption: {exc}") from exc
    if opened == PasswordType.NOT_DECRYPTED:
        raise EncryptedDocument("the PDF needs a password to open")


def _pdf_outline(reader: PdfReader) -> list[tuple[int, tuple[str, ...]]]:
    """The bookmarks as (page index, heading path), by page; empty when absent or broken,
    since a document reads fine without them."""
    from pypdf.generic import Destination

    found: list[tuple[int, tuple[str, ...]]] = []

    def walk(items: list[object], parents: tuple[str, ...]) -> None:
        last: tuple[str, ...] = parents
        for item in items:
            if len(found) > 10_000:
                return
            if isinstance(item, list):
                walk(item, last)
            elif isinstance(item, Destination):
                last = (*parents, _inline(_clean(str(item.title or ""))))
                page = reader.get_destination_page_number(item)
                if page is not None and page >= 0 and last[-1]:
                    found.append((page, last))

    try:
        walk(list(reader.outline), ())
    except Exception:
        return []
    found.sort(key=lambda entry: entry[0])
    return found


def _path_at(outline: list[tuple[int, tuple[str, ...]]], index: int) -> tuple[str, ...]:
    path: tuple[str, ...] = ()
    for page, entry in outline:
        if page > index:
            break
        path = entry
    return path


def _pdf_paragraphs(text: str) -> list[str]:
    """A page's lines regrouped into paragraphs: a blank line, or a line that ends a sentence
    well short of the page's full width, ends one."""
    lines = [line.strip() for line in text.replace("\r", "\n").split("\n")]
    widest = max((len(line) for line in lines), default=0)
    paragraphs: list[str] = []
    current = ""

    def flush() -> None:
        nonlocal current
        if current.strip():
            paragraphs.append(_inline(current))
        current = ""

    for line in lines:
        if not line:
            flush()
            continue
        if current.endswith("-") and current[-2:-1].isalpha() and line[:1].islower():
            current = current[:-1] + line  # a word hyphenated across the line break
        else:
            current = f"{current} {line}" if current else line
        if _SENTENCE_END.search(line) and len(line) < 0.8 * widest:
            flush()
    flush()
    return paragraphs


# DOCX


def _docx(data: bytes, builder: _Builder) -> None:
    """Read the Word body as a stream: the XML is parsed as it is inflated, every inflated byte
    is counted (declared sizes in the archive can lie), and the text limit stops the reading the
    moment it is passed, so neither a decompression bomb nor a huge document is ever held whole
    in memory."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            styles = _docx_styles(archive)
            with archive.open("word/document.xml") as member:
                _docx_body(_Inflated(member, MAX_DOCX_XML), builder, styles)
    except UnsupportedDocument:
        raise
    except Exception as exc:
        raise CorruptDocument(f"the DOCX cannot be parsed: {exc!r}") from exc


class _Inflated(io.RawIOBase):
    """A member of an archive, read with a count of the bytes it really inflates to."""

    def __init__(self, member: IO[bytes], limit: int) -> None:
        self._member = member
        self._limit = limit
        self.inflated = 0

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        chunk = self._member.read(_READ_SIZE if size is None or size < 0 else size)
        self.inflated += len(chunk)
        if self.inflated > self._limit:
            raise CorruptDocument("the DOCX unpacks to an implausible size")
        return chunk


def _docx_styles(archive: zipfile.ZipFile) -> dict[str, str]:
    """Style ids to their names (headings and lists are known by name)."""
    from lxml import etree

    try:
        member = archive.open("word/styles.xml")
    except KeyError:
        return {}
    names: dict[str, str] = {}
    with member:
        for _, style in etree.iterparse(
            _Inflated(member, MAX_DOCX_STYLES),
            tag=_W + "style",
            resolve_entities=False,
            no_network=True,
        ):
            style_id = style.get(_W + "styleId")
            name = style.find(_W + "name")
            if style_id and name is not None:
                names[style_id] = name.get(_W + "val") or ""
            style.clear()
    return names


def _docx_body(stream: io.RawIOBase, builder: _Builder, styles: dict[str, str]) -> None:
    from lxml import etree

    in_list: list[str] = []
    tables = paragraphs = 0
    for event, element in etree.iterparse(
        stream,
        events=("start", "end"),
        tag=(_W + "p", _W + "tbl"),
        resolve_entities=False,
        no_network=True,
    ):
        if element.tag == _W + "tbl":
            tables += 1 if event == "start" else -1
            if event == "end" and tables == 0:
                if in_list:
                    builder.add("list", "\n".join(in_list))
                    in_list = []
                builder.table(_docx_table(element))
                _forget(element)
            continue
        if event == "start" or tables:
            # Paragraphs of a table are read with their table.
            continue
        paragraphs += 1
        if paragraphs > MAX_DOCX_PARAGRAPHS:
            raise DocumentTooComplex(f"over {MAX_DOCX_PARAGRAPHS} paragraphs")
        if not len(element):
            # An empty paragraph: nothing to read.
            _forget(element)
            continue
        text = _docx_text(element)
        style = _docx_style(element, styles)
        if text.strip() and (style.lower().startswith("list") or _numbered(element)):
            in_list.append("- " + _inline(text))
        else:
            if in_list:
                builder.add("list", "\n".join(in_list))
                in_list = []
            match = _HEADING_STYLE.fullmatch(style.strip())
            if match:
                builder.heading(int(match.group(1)), text)
            else:
                builder.paragraph(text)
        _forget(element)
    if in_list:
        builder.add("list", "\n".join(in_list))


def _forget(element: Any) -> None:
    """Free what was read: the element and the siblings before it."""
    element.clear()
    parent = element.getparent()
    if parent is not None:
        while element.getprevious() is not None:
            del parent[0]


def _docx_text(paragraph: Any) -> str:
    parts: list[str] = []
    for node in paragraph.iter(_W + "t", _W + "tab", _W + "br", _W + "cr"):
        if node.tag == _W + "t":
            parts.append(node.text or "")
        elif node.tag == _W + "tab":
            parts.append("\t")
        else:
            parts.append("\n")
    return "".join(parts)


def _docx_style(paragraph: Any, styles: dict[str, str]) -> str:
    style = paragraph.find(f"{_W}pPr/{_W}pStyle")
    if style is None:
        return ""
    style_id = style.get(_W + "val") or ""
    return styles.get(style_id, style_id)


def _numbered(paragraph: Any) -> bool:
    return paragraph.find(f"{_W}pPr/{_W}numPr") is not None


def _docx_table(table: Any) -> list[str]:
    rows: list[str] = []
    for row in table.iterchildren(_W + "tr"):
        cells = [
            _inline(" ".join(_docx_text(p) for p in cell.iter(_W + "p")))
            for cell in row.iterchildren(_W + "tc")
        ]
        rows.append(" | ".join(cells))
    return rows


# HTML

_SKIPPED = frozenset(
    {"script", "style", "noscript", "template", "svg", "math", "title", "iframe", "object"}
)
_VOID = frozenset(
    {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "wbr"}
)
_HEADINGS = {f"h{n}": n for n in range(1, 7)}
_BREAKS = frozenset(
    {
        "p",
        "div",
        "section",
        "article",
        "aside",
        "header",
        "footer",
        "main",
        "nav",
        "blockquote",
        "figure",
        "figcaption",
        "form",
        "fieldset",
        "address",
        "details",
        "summary",
        "dl",
        "dt",
        "dd",
        "hr",
        "body",
        "caption",
    }
)


class _HtmlBlocks(HTMLParser):
    def __init__(self, builder: _Builder) -> None:
        super().__init__(convert_charrefs=True)
        self.builder = builder
        self._buffer: list[str] = []
        self._skip = 0
        self._heading: int | None = None
        self._pre = 0
        self._list_depth = 0
        self._items: list[str] = []
        self._table_depth = 0
        self._rows: list[str] = []
        self._row: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIPPED and tag not in _VOID:
            self._skip += 1
            return
        if self._skip:
            return
        if tag == "br":
            self._buffer.append("\n" if self._pre else " ")
        elif self._table_depth:
            if tag == "table":
                self._table_depth += 1
            elif self._table_depth == 1 and tag in ("tr", "td", "th"):
                self._end_cell()
                if tag == "tr":
                    self._end_row()
            else:
                self._buffer.append(" ")
        elif tag == "table":
            self._flush()
            self._table_depth = 1
        elif tag in ("ul", "ol"):
            self._flush()
            self._list_depth += 1
        elif self._list_depth:
            if tag == "li":
                self._flush()
            else:
                self._buffer.append(" ")
        elif tag in _HEADINGS:
            self._flush()
            self._heading = _HEADINGS[tag]
        elif tag == "pre":
            self._flush()
            self._pre += 1
        elif tag in _BREAKS and not self._pre:
            self._flush()

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIPPED:
            self._skip = max(0, self._skip - 1)
            return
        if self._skip:
            return
        if self._table_depth:
            if tag == "table":
                self._table_depth -= 1
                if not self._table_depth:
                    self._end_cell()
                    self._end_row()
                    self.builder.table(self._rows)
                    self._rows = []
            elif self._table_depth == 1 and tag in ("td", "th"):
                self._end_cell()
            elif self._table_depth == 1 and tag == "tr":
                self._end_cell()
                self._end_row()
            else:
                self._buffer.append(" ")
        elif tag in ("ul", "ol") and self._list_depth:
            self._flush()
            self._list_depth -= 1
            if not self._list_depth:
                self.builder.add("list", "\n".join(self._items))
                self._items = []
        elif self._list_depth:
            if tag == "li":
                self._flush()
            else:
                self._buffer.append(" ")
        elif tag in _HEADINGS and self._heading is not None:
            self._flush()
        elif tag == "pre" and self._pre:
            self._pre -= 1
            if not self._pre:
                self._flush(pre=True)
        elif tag in _BREAKS and not self._pre:
            self._flush()

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self._buffer.append(data)

    def close(self) -> None:
        super().close()
        if self._table_depth:
            self._end_cell()
            self._end_row()
            self.builder.table(self._rows)
        else:
            self._flush()
            if self._items:
                self.builder.add("list", "\n".join(self._items))

    def _flush(self, *, pre: bool = False) -> None:
        text = "".join(self._buffer)
        self._buffer = []
        if self._list_depth:
            if text.strip():
                indent = "  " * (self._list_depth - 1)
                self._items.append(f"{indent}- {_inline(text)}")
        elif self._heading is not None:
            self.builder.heading(self._heading, text)
            self._heading = None
        elif pre:
            self.builder.add("code", _lines(text))
        else:
            self.builder.paragraph(text)

    def _end_cell(self) -> None:
        text = _inline("".join(self._buffer))
        self._buffer = []
        if text:
            self._row.append(text)

    def _end_row(self) -> None:
        if self._row:
            self._rows.append(" | ".join(self._row))
        self._row = []


def _html(text: str, builder: _Builder) -> None:
    parser = _HtmlBlocks(builder)
    parser.feed(text)
    parser.close()


# Markdown


def _markdown(text: str, builder: _Builder) -> None:
    from markdown_it import MarkdownIt

    lines = text.split("\n")
    tokens = MarkdownIt("commonmark").enable("table").parse(text)
    for i, token in enumerate(tokens):
        if token.level != 0 or token.nesting == -1 or token.map is None:
            continue
        start, end = token.map
        source = "\n".join(lines[start:end])
        if token.type == "heading_open":
            builder.heading(int(token.tag[1:]), tokens[i + 1].content)
        elif token.type == "paragraph_open":
            builder.add("paragraph", tokens[i + 1].content.strip())
        elif token.type in ("fence", "code_block"):
            builder.add("code", _lines(source))
        elif token.type in ("bullet_list_open", "ordered_list_open"):
            builder.add("list", _lines(source))
        elif token.type == "table_open":
            rows = _lines(source).split("\n")
            head, rows = rows[:2], rows[2:]
            builder.table(["\n".join(head), *rows])
        elif token.type in ("blockquote_open", "html_block"):
            builder.add("paragraph", _lines(source))


# CSV


def _csv(text: str, builder: _Builder) -> None:
    sample = text[:8192]
    try:
        dialect: type[csv.Dialect] | csv.Dialect = csv.Sniffer().sniff(sample, delimiters=",;\t|")
    except csv.Error:
        first = sample.split("\n", 1)[0]
        dialect = csv.excel_tab if first.count("\t") > first.count(",") else csv.excel
    try:
        rows = [
            " | ".join(cell.strip() for cell in row)
            for row in csv.reader(io.StringIO(text), dialect)
            if any(cell.strip() for cell in row)
        ]
    except csv.Error as exc:
        raise CorruptDocument(f"the CSV cannot be parsed: {exc}") from exc
    builder.table(rows)


# Source code and plain text


def _code(text: str, builder: _Builder) -> None:
    for block in _code_blocks(text):
        builder.add("code", block)


def _code_blocks(text: str) -> Iterator[str]:
    """Blocks that start at a top-level line after a blank one: a definition, with its comments
    and decorators, stays whole."""
    current: list[str] = []
    blank_before = False
    for line in text.expandtabs(4).split("\n"):
        top_level = bool(line) and not line[0].isspace()
        if top_level and blank_before and any(part.strip() for part in current):
            yield _lines("\n".join(current))
            current = []
        current.append(line)
        blank_before = not line.strip()
    if any(part.strip() for part in current):
        yield _lines("\n".join(current))


def _plain(text: str, builder: _Builder) -> None:
    for paragraph in re.split(r"\n[ \t]*\n", text):
        builder.add("paragraph", _lines(paragraph))
