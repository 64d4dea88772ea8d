"""What an uploaded file is, judged by its content.

The file name is never trusted to pick the type: a PDF named ``notes.txt`` is a PDF and a program
named ``notes.txt`` is refused. Only among text files does the extension choose between plain
text, Markdown, CSV and source code, since their bytes look alike.
"""

from __future__ import annotations

import enum
import io
import re
import zipfile
from dataclasses import dataclass
from pathlib import PurePosixPath

from core.documents.errors import (
    ArchiveRefused,
    BinaryFile,
    CorruptDocument,
    DocumentTooLarge,
    EmptyDocument,
    UnsupportedDocument,
)
from core.documents.text import decode_text


class DocumentKind(enum.StrEnum):
    PDF = "pdf"
    DOCX = "docx"
    HTML = "html"
    TEXT = "text"
    MARKDOWN = "markdown"
    CSV = "csv"
    CODE = "code"


@dataclass(frozen=True, slots=True)
class Detection:
    kind: DocumentKind
    mime: str
    # For text kinds: the encoding the bytes were decoded with.
    encoding: str | None = None
    # For source code: the language the extension names ("python", "javascript", ...).
    language: str | None = None


PDF_MIME = "application/pdf"
DOCX_MIME = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
_DOCX_MAIN = b"application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"

_ARCHIVES = (
    b"Rar!\x1a\x07",
    b"7z\xbc\xaf\x27\x1c",
    b"\x1f\x8b",  # gzip
    b"\xfd7zXZ\x00",
    b"\x28\xb5\x2f\xfd",  # zstandard
    b"MSCF",  # cabinet
)
_ZIP = (b"PK\x03\x04", b"PK\x05\x06", b"PK\x07\x08")
_EXECUTABLES = (
    b"\x7fELF",
    b"\xfe\xed\xfa\xce",
    b"\xfe\xed\xfa\xcf",
    b"\xce\xfa\xed\xfe",
    b"\xcf\xfa\xed\xfe",
    b"\xca\xfe\xba\xbe",
    b"\x00asm",
)
_OTHER_FORMATS = (
    b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1",  # legacy Office (.doc, .xls, .ppt)
    b"{\\rtf",
    b"\x89PNG",
    b"\xff\xd8\xff",
    b"GIF8",
    b"%!PS",
    b"OggS",
    b"ID3",
    b"fLaC",
)
# Enough of the file to see an HTML document's head.
_HTML_WINDOW = 2048
_HTML_START = re.compile(r"<!doctype\s+html|<html[\s>]", re.IGNORECASE)
_HTML_EARLY = re.compile(r"<(?:head|body)[\s>]", re.IGNORECASE)

_MARKDOWN = frozenset({".md", ".markdown", ".mdown", ".mkd"})
_CSV = {".csv": "text/csv", ".tsv": "text/tab-separated-values"}
_CODE = {
    ".py": "python",
    ".pyi": "python",
    ".js": "javascript",
    ".mjs": "javascript",
    ".cjs": "javascript",
    ".jsx": "javascript",
    ".ts": "typescript",
    ".tsx": "typescript",
    ".java": "java",
    ".kt": "kotlin",
    ".kts": "kotlin",
    ".go": "go",
    ".rs": "rust",
    ".c": "c",
    ".h": "c",
    ".cc": "c++",
    ".cpp": "c++",
    ".cxx": "c++",
    ".hpp": "c++",
    ".cs": "csharp",
    ".rb": "ruby",
    ".php": "php",
    ".swift": "swift",
    ".scala": "scala",
    ".sh": "shellscript",
    ".bash": "shellscript",
    ".sql": "sql",
    ".lua": "lua",
    ".css": "css",
    ".json": "json",
    ".yaml": "yaml",
    ".yml": "yaml",
    ".toml": "toml",
    ".xml": "xml",
}
_SHEBANG = re.compile(r"#!\S*?(?:/env\s+)?(?:\S*/)?(python|node|bash|sh|ruby|perl|php)")
_SHEBANG_LANGUAGES = {
    "python": "python",
    "node": "javascript",
    "bash": "shellscript",
    "sh": "shellscript",
    "ruby": "ruby",
    "perl": "perl",
    "php": "php",
}


def detect(data: bytes, filename: str, *, max_bytes: int | None = None) -> Detection:
    """The document's kind and MIME type; raises ``UnsupportedDocument`` for anything the product
    cannot read (archives, programs, images, damaged files)."""
    if not data:
        raise EmptyDocument("the file is empty")
    if max_bytes is not None and len(data) > max_bytes:
        raise DocumentTooLarge(
            f"{len(data)} bytes over the limit of {max_bytes}",
            limit_mb=max(1, max_bytes // (1024 * 1024)),
        )
    head = data[:1024]
    if head.lstrip(b" \t\r\n").startswith(b"%PDF-"):
        return Detection(DocumentKind.PDF, PDF_MIME)
    if head.startswith(_ZIP):
        return _zip(data)
    if head.startswith(_ARCHIVES) or _is_bzip2(head) or _is_tar(data):
        raise ArchiveRefused("an archive")
    if head.startswith(_EXECUTABLES) or (head.startswith(b"MZ") and b"\x00" in head[:64]):
        raise BinaryFile("an executable")
    if head.startswith(_OTHER_FORMATS) or (head[:4] == b"RIFF" and head[8:12] == b"WEBP"):
        raise UnsupportedDocument(f"a binary format starting {head[:8]!r}")
    decoded = decode_text(data)
    if decoded is None:
        raise BinaryFile("the bytes do not decode as text")
    return _text_kind(decoded.text, decoded.encoding, filename)


def _zip(data: bytes) -> Detection:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            names = set(archive.namelist())
            if "word/document.xml" not in names or "[Content_Types].xml" not in names:
                if "[Content_Types].xml" in names or "mimetype" in names:
                    # Other office formats (spreadsheets, slides, OpenDocument, EPUB) are
                    # packaged as ZIP too; calling them archives would confuse the user.
                    raise UnsupportedDocument("an office or e-book package other than DOCX")
                raise ArchiveRefused("a ZIP archive")
            types = archive.getinfo("[Content_Types].xml")
            if types.file_size > 1024 * 1024:
                raise CorruptDocument("an oversized [Content_Types].xml")
            content_types = archive.read(types)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, ValueError, OSError) as exc:
        raise CorruptDocument(f"a damaged ZIP container: {exc}") from exc
    if _DOCX_MAIN not in content_types:
        # Macro-enabled documents and templates: Word files, but not ones we open.
        raise UnsupportedDocument("a Word package that is not a plain DOCX document")
    return Detection(DocumentKind.DOCX, DOCX_MIME)


def _is_bzip2(head: bytes) -> bool:
    return head[:3] == b"BZh" and head[3:4] in b"123456789" and head[4:10] == b"1AY&SY"


def _is_tar(data: bytes) -> bool:
    return data[257:262] == b"ustar"


def _text_kind(text: str, encoding: str, filename: str) -> Detection:
    suffix = PurePosixPath(filename.replace("\\", "/")).suffix.lower()
    start = text[:_HTML_WINDOW].lstrip("\ufeff \t\r\n")
    if start.startswith("<") and (
        _HTML_START.match(start)
        or _HTML_EARLY.search(start)
        or suffix in (".html", ".htm", ".xhtml")
    ):
        return Detection(DocumentKind.HTML, "text/html", encoding)
    if suffix in _MARKDOWN:
        return Detection(DocumentKind.MARKDOWN, "text/markdown", encoding)
    if suffix in _CSV:
        return Detection(DocumentKind.CSV, _CSV[suffix], encoding)
    language = _CODE.get(suffix)
    if language is None:
        shebang = _SHEBANG.match(start)
        if shebang:
            language = _SHEBANG_LANGUAGES[shebang.group(1)]
    if language is not None:
        return Detection(DocumentKind.CODE, f"text/x-{language}", encoding, language)
    return Detection(DocumentKind.TEXT, "text/plain", encoding)
