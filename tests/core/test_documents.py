"""Uploaded documents: detection by content, extraction with structure, chunking, citations.

Every sample is a real file built here with the same libraries users' tools produce them with.
"""

from __future__ import annotations

import gzip
import io
import tarfile
import zipfile
from itertools import pairwise

import pytest
from docx import Document
from fpdf import FPDF
from hypothesis import given, settings
from hypothesis import strategies as st
from pypdf import PdfReader, PdfWriter

from core.documents import (
    SECTION_SEPARATOR,
    ArchiveRefused,
    BinaryFile,
    Block,
    Chunk,
    CorruptDocument,
    DocumentKind,
    DocumentTooLarge,
    EmptyDocument,
    EncryptedDocument,
    Extracted,
    TooManyPages,
    TooMuchText,
    UnsupportedDocument,
    chunk,
    citation,
    count_tokens,
    detect,
    extract,
)
from core.documents.tokens import TOKEN

LIMITS = {"max_pages": 50, "max_chars": 200_000}
RUSSIAN = (
    "Привет, мир! Это документ на русском языке, сохранённый в старой кодировке Windows.\n\n"
    "Вторая строка текста о погоде и о жизни."
)


def make_pdf(pages: list[str], *, sections: dict[int, str] | None = None) -> bytes:
    pdf = FPDF()
    pdf.set_font("helvetica", size=12)
    for index, text in enumerate(pages):
        pdf.add_page()
        if sections and index in sections:
            pdf.start_section(sections[index])
        if text:
            pdf.multi_cell(0, 10, text)
        else:
            pdf.rect(20, 20, 100, 100)
    return bytes(pdf.output())


THREE_PAGES = make_pdf(
    [
        "Apples grow on trees in the orchard.",
        "Bananas are yellow and grow in bunches.",
        "Cherries are small, red and sweet.",
    ]
)


def encrypt(pdf: bytes, *, user_password: str) -> bytes:
    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(pdf)))
    writer.encrypt(user_password=user_password, owner_password="owner", algorithm="AES-256")
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def make_docx() -> bytes:
    document = Document()
    document.add_heading("Guide", level=1)
    document.add_paragraph("This guide explains the product.")
    document.add_heading("Installation", level=2)
    document.add_paragraph("Run the installer and follow the steps.")
    document.add_paragraph("Download the package", style="List Bullet")
    document.add_paragraph("Start the service", style="List Bullet")
    table = document.add_table(rows=3, cols=2)
    for row, (name, value) in enumerate([("Setting", "Default"), ("port", "8080"), ("log", "on")]):
        table.cell(row, 0).text = name
        table.cell(row, 1).text = value
    document.add_heading("Usage", level=1)
    document.add_paragraph("Open the app.")
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def make_zip(entries: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for name, content in entries.items():
            archive.writestr(name, content)
    return out.getvalue()


def make_tar() -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as archive:
        info = tarfile.TarInfo("notes.txt")
        info.size = 5
        archive.addfile(info, io.BytesIO(b"hello"))
    return out.getvalue()


HTML = b"""<!DOCTYPE html>
<html><head><title>Manual</title><style>p { color: red }</style>
<script>alert("never shown")</script></head>
<body>
<h1>Manual</h1>
<p>Read this <b>first</b> &amp; keep it.</p>
<ul><li>one<ul><li>nested</li></ul></li><li>two</li></ul>
<h2>Example</h2>
<pre>def main():
    return 1</pre>
<table><tr><th>Key</th><th>Value</th></tr><tr><td>a</td><td>1</td></tr></table>
</body></html>
"""
MARKDOWN = """Notes
=====

Intro paragraph
over two lines.

## Code

```python
def hello():

    return "hi"
```

- first
- second
"""
PYTHON = '''"""A module."""

import os


def first():
    value = 1

    return value


# The second one.
@decorator
def second():
    return os.sep
'''


def kinds(data: bytes, filename: str) -> tuple[DocumentKind, str]:
    found = detect(data, filename)
    return found.kind, found.mime


def blocks(data: bytes, filename: str, **limits: int) -> tuple[Block, ...]:
    return extract(data, detect(data, filename).kind, **{**LIMITS, **limits}).blocks


# Detection


def test_detect_pdf_by_content_when_named_txt() -> None:
    assert kinds(THREE_PAGES, "notes.txt") == (DocumentKind.PDF, "application/pdf")


def test_detect_text_when_named_pdf() -> None:
    assert kinds(b"Just some words.\n", "report.pdf") == (DocumentKind.TEXT, "text/plain")


def test_detect_docx_by_its_parts() -> None:
    assert kinds(make_docx(), "upload.bin") == (
        DocumentKind.DOCX,
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    )


@pytest.mark.parametrize(
    "data",
    [HTML, b"\xef\xbb\xbf  <html lang=en><p>x</p></html>", b"<!-- c -->\n<head></head><body>x"],
)
def test_detect_html_by_its_start(data: bytes) -> None:
    assert kinds(data, "page.txt") == (DocumentKind.HTML, "text/html")


@pytest.mark.parametrize(
    ("filename", "kind", "mime"),
    [
        ("notes.md", DocumentKind.MARKDOWN, "text/markdown"),
        ("table.csv", DocumentKind.CSV, "text/csv"),
        ("script.py", DocumentKind.CODE, "text/x-python"),
        ("app.ts", DocumentKind.CODE, "text/x-typescript"),
        ("README", DocumentKind.TEXT, "text/plain"),
    ],
)
def test_detect_text_kind_by_extension(filename: str, kind: DocumentKind, mime: str) -> None:
    assert kinds(b"a,b\n1,2\n", filename) == (kind, mime)


def test_detect_code_by_shebang_without_extension() -> None:
    found = detect(b"#!/usr/bin/env python3\nprint(1)\n", "tool")
    assert (found.kind, found.language) == (DocumentKind.CODE, "python")


def test_detect_utf16_with_bom() -> None:
    found = detect("Hello in UTF-16.".encode("utf-16"), "a.txt")
    assert (found.kind, found.encoding) == (DocumentKind.TEXT, "utf-16-le")


def test_detect_russian_in_cp1251() -> None:
    found = detect(RUSSIAN.encode("cp1251"), "письмо.txt")
    assert (found.kind, found.encoding) == (DocumentKind.TEXT, "cp1251")


def test_detect_refuses_windows_executable_named_txt() -> None:
    exe = b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff\x00\x00" + bytes(48)
    exe += b"This program cannot be run in DOS mode.\r\r\n$" + bytes(64)
    with pytest.raises(BinaryFile) as caught:
        detect(exe, "readme.txt")
    assert caught.value.code == "binary"


def test_detect_refuses_random_bytes_as_binary() -> None:
    data = bytes((i * 7919 + 13) % 256 for i in range(4000))
    with pytest.raises(BinaryFile):
        detect(data, "data.txt")


def test_detect_refuses_zip_as_archive() -> None:
    data = make_zip({"a.txt": b"hello", "b.txt": b"world"})
    with pytest.raises(ArchiveRefused) as caught:
        detect(data, "document.docx")
    assert caught.value.code == "archive"


@pytest.mark.parametrize(
    "data",
    [
        gzip.compress(b"hello"),
        b"Rar!\x1a\x07\x01\x00" + bytes(32),
        b"7z\xbc\xaf\x27\x1c\x00\x04" + bytes(32),
        b"\xfd7zXZ\x00\x00\x04" + bytes(32),
        b"BZh91AY&SY" + bytes(32),
        make_tar(),
    ],
    ids=["gzip", "rar", "7z", "xz", "bzip2", "tar"],
)
def test_detect_refuses_other_archives(data: bytes) -> None:
    with pytest.raises(ArchiveRefused):
        detect(data, "file.txt")


def test_detect_refuses_other_office_package_as_unsupported() -> None:
    data = make_zip({"[Content_Types].xml": b"<Types/>", "xl/workbook.xml": b"<workbook/>"})
    with pytest.raises(UnsupportedDocument) as caught:
        detect(data, "sheet.xlsx")
    assert caught.value.code == "unsupported"


def test_detect_refuses_truncated_docx_as_corrupt() -> None:
    data = make_docx()
    with pytest.raises(CorruptDocument):
        detect(data[: len(data) // 2], "guide.docx")


def test_detect_refuses_empty_file() -> None:
    with pytest.raises(EmptyDocument) as caught:
        detect(b"", "a.txt")
    assert caught.value.code == "empty"


def test_detect_refuses_file_over_max_bytes() -> None:
    with pytest.raises(DocumentTooLarge) as caught:
        detect(b"x" * (2 * 1024 * 1024 + 1), "a.txt", max_bytes=2 * 1024 * 1024)
    assert (caught.value.code, caught.value.params) == ("too_large", {"limit_mb": 2})


# Extraction


def test_extract_pdf_text_per_page() -> None:
    extracted = extract(THREE_PAGES, DocumentKind.PDF, **LIMITS)
    assert extracted.pages == 3
    assert [(b.page, b.text) for b in extracted.blocks] == [
        (1, "Apples grow on trees in the orchard."),
        (2, "Bananas are yellow and grow in bunches."),
        (3, "Cherries are small, red and sweet."),
    ]


def test_extract_pdf_bookmarks_become_heading_paths() -> None:
    pdf = make_pdf(["Intro text.", "Method text.", "More method text."], sections={1: "Methods"})
    paths = [b.heading_path for b in extract(pdf, DocumentKind.PDF, **LIMITS).blocks]
    assert paths == [(), ("Methods",), ("Methods",)]


def test_extract_truncated_pdf_is_corrupt() -> None:
    with pytest.raises(CorruptDocument) as caught:
        extract(THREE_PAGES[: len(THREE_PAGES) * 2 // 3], DocumentKind.PDF, **LIMITS)
    assert caught.value.code == "corrupt"


def test_extract_garbled_pdf_is_corrupt() -> None:
    with pytest.raises(CorruptDocument):
        extract(b"%PDF-1.7\n" + bytes(range(256)) * 4 + b"\n%%EOF\n", DocumentKind.PDF, **LIMITS)


def test_extract_password_protected_pdf_is_refused_as_encrypted() -> None:
    with pytest.raises(EncryptedDocument) as caught:
        extract(encrypt(THREE_PAGES, user_password="secret"), DocumentKind.PDF, **LIMITS)
    assert caught.value.code == "encrypted"
    assert isinstance(caught.value, CorruptDocument)


def test_extract_pdf_with_only_an_owner_password_reads() -> None:
    extracted = extract(encrypt(THREE_PAGES, user_password=""), DocumentKind.PDF, **LIMITS)
    assert extracted.blocks[0].text == "Apples grow on trees in the orchard."


def test_extract_pdf_over_max_pages_is_refused() -> None:
    with pytest.raises(TooManyPages) as caught:
        extract(THREE_PAGES, DocumentKind.PDF, max_pages=2, max_chars=10_000)
    assert caught.value.params == {"pages": 3, "limit": 2}


def test_extract_pdf_without_text_is_empty() -> None:
    with pytest.raises(EmptyDocument):
        extract(make_pdf(["", ""]), DocumentKind.PDF, **LIMITS)


def test_extract_docx_headings_lists_and_tables() -> None:
    found = [(b.kind, b.heading_path, b.text) for b in blocks(make_docx(), "guide.docx")]
    guide, install = ("Guide",), ("Guide", "Installation")
    assert found == [
        ("heading", guide, "Guide"),
        ("paragraph", guide, "This guide explains the product."),
        ("heading", install, "Installation"),
        ("paragraph", install, "Run the installer and follow the steps."),
        ("list", install, "- Download the package\n- Start the service"),
        ("table", install, "Setting | Default\nport | 8080\nlog | on"),
        ("heading", ("Usage",), "Usage"),
        ("paragraph", ("Usage",), "Open the app."),
    ]


def test_extract_html_structure_without_scripts_or_styles() -> None:
    found = [(b.kind, b.heading_path, b.text) for b in blocks(HTML, "manual.html")]
    assert found == [
        ("heading", ("Manual",), "Manual"),
        ("paragraph", ("Manual",), "Read this first & keep it."),
        ("list", ("Manual",), "- one\n  - nested\n- two"),
        ("heading", ("Manual", "Example"), "Example"),
        ("code", ("Manual", "Example"), "def main():\n    return 1"),
        ("table", ("Manual", "Example"), "Key | Value\na | 1"),
    ]


def test_extract_markdown_keeps_fenced_code_whole() -> None:
    found = [(b.kind, b.heading_path, b.text) for b in blocks(MARKDOWN.encode(), "notes.md")]
    assert found == [
        ("heading", ("Notes",), "Notes"),
        ("paragraph", ("Notes",), "Intro paragraph\nover two lines."),
        ("heading", ("Notes", "Code"), "Code"),
        ("code", ("Notes", "Code"), '```python\ndef hello():\n\n    return "hi"\n```'),
        ("list", ("Notes", "Code"), "- first\n- second"),
    ]


def test_extract_csv_groups_rows_under_the_header() -> None:
    rows = "\n".join(f"item {i};{i * 10};some description of item {i}" for i in range(100))
    found = blocks(f"name;price;note\n{rows}\n".encode(), "prices.csv")
    assert len(found) > 1
    assert all(b.kind == "table" for b in found)
    assert all(b.text.startswith("name | price | note\n") for b in found)
    body = [line for b in found for line in b.text.split("\n")[1:]]
    assert body == [f"item {i} | {i * 10} | some description of item {i}" for i in range(100)]


def test_extract_source_code_by_top_level_definition() -> None:
    found = [b.text for b in blocks(PYTHON.encode(), "module.py")]
    assert found == [
        '"""A module."""',
        "import os",
        "def first():\n    value = 1\n\n    return value",
        "# The second one.\n@decorator\ndef second():\n    return os.sep",
    ]


def test_extract_utf16_text() -> None:
    data = "First paragraph.\n\nSecond one.".encode("utf-16")
    assert [b.text for b in blocks(data, "a.txt")] == ["First paragraph.", "Second one."]


def test_extract_russian_cp1251_text() -> None:
    found = blocks(RUSSIAN.encode("cp1251"), "письмо.txt")
    assert [b.text for b in found] == RUSSIAN.split("\n\n")


def test_extract_drops_control_characters() -> None:
    text = "A tab\tstays, a nul\x00 and a bell\x07 go, a form feed\fbreaks the line."
    assert [b.text for b in blocks(text.encode("utf-16"), "a.txt")] == [
        "A tab\tstays, a nul and a bell go, a form feed\nbreaks the line."
    ]


def test_extract_text_over_max_chars_is_refused() -> None:
    with pytest.raises(TooMuchText) as caught:
        blocks(("A sentence of text.\n\n" * 100).encode(), "a.txt", max_chars=1000)
    assert (caught.value.code, caught.value.params) == ("too_much_text", {"limit": 1000})


def test_extract_pdf_over_max_chars_is_refused() -> None:
    with pytest.raises(TooMuchText):
        extract(THREE_PAGES, DocumentKind.PDF, max_pages=10, max_chars=50)


def test_extract_whitespace_only_text_is_empty() -> None:
    with pytest.raises(EmptyDocument):
        blocks(b"  \n\n\t\n", "a.txt")


# Chunking


def doc(*blocks: Block) -> Extracted:
    return Extracted(
        kind=DocumentKind.TEXT, blocks=blocks, pages=None, chars=sum(len(b.text) for b in blocks)
    )


def words(n: int, word: str = "word") -> str:
    return " ".join(f"{word}{i}" for i in range(n))


def test_chunk_keeps_a_paragraph_whole_when_it_fits() -> None:
    paragraphs = [Block(words(30, f"p{i}x") + ".", None, (), "paragraph") for i in range(5)]
    chunks = chunk(doc(*paragraphs), target_tokens=70, max_tokens=100, overlap_tokens=0)
    assert [c.text.count("\n\n") + 1 for c in chunks] == [3, 2]
    assert all(c.token_count <= 100 for c in chunks)


def test_chunk_splits_a_long_paragraph_between_sentences() -> None:
    sentences = [f"Sentence {i} {words(8)}." for i in range(20)]
    block = Block(" ".join(sentences), None, (), "paragraph")
    chunks = chunk(doc(block), target_tokens=40, max_tokens=60, overlap_tokens=0)
    assert len(chunks) > 1
    assert all(c.text.endswith(".") and c.text.startswith("Sentence") for c in chunks)


def test_chunk_starts_new_section_once_half_the_target_is_reached() -> None:
    chunks = chunk(
        doc(
            Block("One", None, ("One",), "heading"),
            Block(words(25), None, ("One",), "paragraph"),
            Block("Two", None, ("Two",), "heading"),
            Block(words(5), None, ("Two",), "paragraph"),
        ),
        target_tokens=40,
        max_tokens=60,
        overlap_tokens=5,
    )
    assert [(c.section, c.text.split()[0], c.overlap_chars) for c in chunks] == [
        ("One", "One", 0),
        ("Two", "Two", 0),
    ]


def test_chunk_merges_small_sections_below_half_the_target() -> None:
    chunks = chunk(
        doc(
            Block("One", None, ("One",), "heading"),
            Block(words(5), None, ("One",), "paragraph"),
            Block("Two", None, ("Two",), "heading"),
            Block(words(5), None, ("Two",), "paragraph"),
        ),
        target_tokens=40,
        max_tokens=60,
    )
    assert [c.section for c in chunks] == ["One"]


def test_chunk_moves_a_trailing_heading_to_its_text() -> None:
    chunks = chunk(
        doc(
            Block(words(10), None, (), "paragraph"),
            Block("Setup", None, ("Setup",), "heading"),
            Block(words(50), None, ("Setup",), "paragraph"),
        ),
        target_tokens=40,
        max_tokens=60,
    )
    assert [c.section for c in chunks] == ["", "Setup"]
    assert chunks[1].text.startswith("Setup\n\n")


def test_chunk_repeats_the_end_of_the_previous_chunk_within_a_section() -> None:
    paragraphs = [Block(f"{words(30, f'p{i}x')}.", 4, ("S",), "paragraph") for i in range(3)]
    chunks = chunk(doc(*paragraphs), target_tokens=30, max_tokens=40, overlap_tokens=5)
    assert chunks[1].overlap_chars > 0
    assert chunks[0].text.endswith(chunks[1].text[: chunks[1].overlap_chars].strip())
    assert chunks[1].own_text.startswith("p1x0")


def test_chunk_of_nothing_is_empty() -> None:
    assert chunk(doc()) == []


def test_chunk_refuses_a_target_over_the_maximum() -> None:
    with pytest.raises(ValueError, match="target_tokens"):
        chunk(doc(), target_tokens=700, max_tokens=600)


def test_count_tokens_counts_words_and_punctuation() -> None:
    assert count_tokens("Hello, world! Привет.") == 6
    assert count_tokens("x" * 45) == 3


VOCABULARY = [
    "the",
    "model",
    "answers",
    "документ",
    "страница",
    "3.14",
    "e.g.",
    "(see",
    "below)",
    "end.",
    "Why?",
    "«цитата»",
    "x" * 47,
    "a.b.c.d.e.f.g.h",
    "—",
]
text_strategy = st.lists(
    st.tuples(st.sampled_from(VOCABULARY), st.sampled_from([" ", " ", " ", "\n", "\n\n", "  "])),
    min_size=1,
    max_size=150,
).map(lambda pairs: "".join(w + s for w, s in pairs).strip())
block_strategy = st.builds(
    Block,
    text=text_strategy,
    page=st.one_of(st.none(), st.integers(1, 9)),
    heading_path=st.lists(st.sampled_from(["Intro", "Setup", "Usage"]), max_size=3).map(tuple),
    kind=st.sampled_from(["heading", "paragraph", "paragraph", "code", "table", "list"]),
)


@st.composite
def sizes(draw: st.DrawFn) -> tuple[int, int, int]:
    maximum = draw(st.integers(8, 120))
    target = draw(st.integers(4, maximum))
    overlap = draw(st.integers(0, maximum // 2))
    return target, maximum, overlap


def chunked(blocks: list[Block], size: tuple[int, int, int]) -> list[Chunk]:
    target, maximum, overlap = size
    return chunk(doc(*blocks), target_tokens=target, max_tokens=maximum, overlap_tokens=overlap)


@settings(max_examples=300, deadline=None)
@given(st.lists(block_strategy, max_size=12), sizes())
def test_chunks_never_exceed_max_tokens(blocks: list[Block], size: tuple[int, int, int]) -> None:
    for c in chunked(blocks, size):
        assert c.token_count == count_tokens(c.text) <= size[1]


@settings(max_examples=300, deadline=None)
@given(st.lists(block_strategy, max_size=12), sizes())
def test_chunks_cover_all_text_in_order(blocks: list[Block], size: tuple[int, int, int]) -> None:
    chunks = chunked(blocks, size)
    assert [c.ordinal for c in chunks] == list(range(len(chunks)))
    own = [token for c in chunks for token in TOKEN.findall(c.own_text)]
    assert own == [token for b in blocks for token in TOKEN.findall(b.text)]


@settings(max_examples=300, deadline=None)
@given(st.lists(block_strategy, max_size=12), sizes())
def test_chunk_overlap_repeats_the_previous_chunk(
    blocks: list[Block], size: tuple[int, int, int]
) -> None:
    chunks = chunked(blocks, size)
    for previous, current in pairwise(chunks):
        repeated = TOKEN.findall(current.text[: current.overlap_chars])
        assert count_tokens(current.text[: current.overlap_chars]) <= size[2]
        if repeated:
            assert TOKEN.findall(previous.own_text)[-len(repeated) :] == repeated


@settings(max_examples=300, deadline=None)
@given(st.lists(block_strategy, max_size=12), sizes())
def test_chunks_carry_the_section_and_page_they_start_in(
    blocks: list[Block], size: tuple[int, int, int]
) -> None:
    owner: list[Block] = [b for b in blocks for _ in TOKEN.findall(b.text)]
    position = 0
    for c in chunked(blocks, size):
        first = owner[position]
        assert c.section == SECTION_SEPARATOR.join(first.heading_path)
        assert c.page == first.page
        position += len(TOKEN.findall(c.own_text))


@settings(max_examples=300, deadline=None)
@given(st.lists(block_strategy, max_size=12), sizes())
def test_chunks_never_split_a_block_that_fits(
    blocks: list[Block], size: tuple[int, int, int]
) -> None:
    spans: list[tuple[int, int]] = []
    start = 0
    for c in chunked(blocks, size):
        end = start + len(TOKEN.findall(c.own_text))
        spans.append((start, end))
        start = end
    start = 0
    for b in blocks:
        end = start + count_tokens(b.text)
        if end - start <= size[1]:
            assert any(s <= start and end <= e for s, e in spans)
        start = end


# Citations


def a_chunk(*, page: int | None, section: str) -> Chunk:
    return Chunk(ordinal=0, text="x", page=page, section=section, token_count=1)


def test_citation_of_a_pdf_page() -> None:
    assert citation(a_chunk(page=3, section=""), "report.pdf") == "report.pdf, p. 3"


def test_citation_of_a_section() -> None:
    assert citation(a_chunk(page=None, section="Installation"), "guide.docx") == (
        "guide.docx › Installation"
    )


def test_citation_of_a_pdf_section_and_page() -> None:
    assert citation(a_chunk(page=2, section="Methods"), "paper.pdf") == "paper.pdf › Methods, p. 2"


def test_citation_without_page_or_section_is_the_file_name() -> None:
    assert citation(a_chunk(page=None, section=""), "notes.txt") == "notes.txt"


def test_citation_of_chunks_from_an_uploaded_docx() -> None:
    data = make_docx()
    extracted = extract(data, detect(data, "guide.docx").kind, **LIMITS)
    chunks = chunk(extracted, target_tokens=8, max_tokens=30, overlap_tokens=0)
    assert [citation(c, "guide.docx") for c in chunks] == [
        "guide.docx › Guide",
        "guide.docx › Guide › Installation",
        "guide.docx › Guide › Installation",
        "guide.docx › Guide › Installation",
        "guide.docx › Usage",
    ]
