"""Hostile documents: a decompression bomb, a document far over the text limit, and a reader
given too little memory or time, all refused with a reason and never read whole."""

from __future__ import annotations

import io
import zipfile

import pytest
from docx import Document

from core.documents import DocumentTooComplex, TooMuchText, detect, extract
from core.documents.extract import MAX_DOCX_PARAGRAPHS
from core.documents.isolated import ReadLimits, read_isolated

MB = 1024 * 1024
LIMITS = ReadLimits(max_bytes=20 * MB, max_pages=500, max_chars=2_000_000)


def docx_with_body(body: bytes) -> bytes:
    """A Word file whose body is ``body``, packed as tightly as Word's own format allows."""
    base = io.BytesIO()
    Document().save(base)
    source = zipfile.ZipFile(io.BytesIO(base.getvalue()))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        for info in source.infolist():
            data = source.read(info.filename)
            if info.filename == "word/document.xml":
                head, rest = data.split(b"<w:body>", 1)
                data = head + b"<w:body>" + body + rest
            archive.writestr(info.filename, data)
    return out.getvalue()


def paragraph_bomb() -> bytes:
    """About 65 KB that inflate to 20 MB of empty paragraphs."""
    return docx_with_body(b"<w:p/>" * (20 * MB // 6))


def long_docx(chars: int) -> bytes:
    sentence = "Every line of this report says the same thing at length. " * 4
    paragraph = f"<w:p><w:r><w:t>{sentence}</w:t></w:r></w:p>".encode()
    return docx_with_body(paragraph * (chars // len(sentence) + 1))


def test_docx_bomb_is_refused_as_too_complex_before_it_is_read_whole() -> None:
    bomb = paragraph_bomb()
    assert len(bomb) < 100_000
    with pytest.raises(DocumentTooComplex):
        extract(
            bomb,
            detect(bomb, "bomb.docx", max_bytes=20 * MB).kind,
            max_pages=500,
            max_chars=2_000_000,
        )


def test_docx_with_many_paragraphs_within_the_bound_is_read() -> None:
    body = b"<w:p/>" * (MAX_DOCX_PARAGRAPHS - 10) + b"<w:p><w:r><w:t>The end.</w:t></w:r></w:p>"
    data = docx_with_body(body)
    extracted = extract(
        data, detect(data, "x.docx", max_bytes=20 * MB).kind, max_pages=500, max_chars=2_000_000
    )
    assert [b.text for b in extracted.blocks] == ["The end."]


def test_docx_over_the_text_limit_is_refused_while_reading() -> None:
    data = long_docx(2_200_000)
    with pytest.raises(TooMuchText) as refused:
        extract(
            data,
            detect(data, "report.docx", max_bytes=20 * MB).kind,
            max_pages=500,
            max_chars=2_000_000,
        )
    assert refused.value.params == {"limit": 2_000_000}


async def test_isolated_reader_returns_the_passages_of_a_document() -> None:
    document = Document()
    document.add_heading("Guide", level=1)
    document.add_paragraph("Run the installer and follow the steps.")
    out = io.BytesIO()
    document.save(out)
    chunks, pages = await read_isolated(out.getvalue(), "guide.docx", LIMITS)
    assert pages is None
    assert [c.section for c in chunks] == ["Guide"]
    assert "Run the installer" in chunks[0].text


async def test_isolated_reader_refuses_the_bomb_with_its_reason() -> None:
    with pytest.raises(DocumentTooComplex):
        await read_isolated(paragraph_bomb(), "bomb.docx", LIMITS)


async def test_isolated_reader_passes_refusals_on_with_their_parameters() -> None:
    with pytest.raises(TooMuchText) as refused:
        await read_isolated(long_docx(2_200_000), "report.docx", LIMITS)
    assert refused.value.params == {"limit": 2_000_000}


async def test_isolated_reader_out_of_memory_refuses_as_too_complex() -> None:
    # The interpreter and the readers are loaded before the limit applies; 8 MB more is not
    # enough to hold a document of a few megabytes of text.
    starved = ReadLimits(
        max_bytes=20 * MB, max_pages=500, max_chars=2_000_000, memory_bytes=_loaded_size() + 8 * MB
    )
    with pytest.raises(DocumentTooComplex):
        await read_isolated(long_docx(1_900_000), "report.docx", starved)


async def test_isolated_reader_out_of_time_refuses_as_too_complex() -> None:
    hurried = ReadLimits(max_bytes=20 * MB, max_pages=500, max_chars=2_000_000, timeout=0.05)
    with pytest.raises(DocumentTooComplex):
        await read_isolated(long_docx(1_900_000), "report.docx", hurried)


def _loaded_size() -> int:
    """The address space of an interpreter that has loaded the document readers."""
    import subprocess
    import sys

    probe = (
        "import core.documents.isolated, resource, re;"
        "print(re.search(r'VmSize:\\s+(\\d+)', open('/proc/self/status').read()).group(1))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    return int(out.stdout) * 1024
