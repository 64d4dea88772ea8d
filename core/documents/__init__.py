"""Uploaded documents: what a file is, its text with structure, and chunks that cite their
place. Pure functions over bytes; the worker runs them on untrusted files in a child process under
memory and time limits (``core.documents.isolated``)."""

from core.documents.chunking import SECTION_SEPARATOR, Chunk, chunk, count_tokens
from core.documents.citation import citation
from core.documents.detect import Detection, DocumentKind, detect
from core.documents.errors import (
    ArchiveRefused,
    BinaryFile,
    CorruptDocument,
    DocumentTooComplex,
    DocumentTooLarge,
    EmptyDocument,
    EncryptedDocument,
    TooManyPages,
    TooMuchText,
    UnsupportedDocument,
)
from core.documents.extract import Block, BlockKind, Extracted, extract

__all__ = [
    "SECTION_SEPARATOR",
    "ArchiveRefused",
    "BinaryFile",
    "Block",
    "BlockKind",
    "Chunk",
    "CorruptDocument",
    "Detection",
    "DocumentKind",
    "DocumentTooComplex",
    "DocumentTooLarge",
    "EmptyDocument",
    "EncryptedDocument",
    "Extracted",
    "TooManyPages",
    "TooMuchText",
    "UnsupportedDocument",
    "chunk",
    "citation",
    "count_tokens",
    "detect",
    "extract",
]
