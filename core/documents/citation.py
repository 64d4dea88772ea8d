"""How an answer names the place in a document it drew from."""

from __future__ import annotations

from core.documents.chunking import SECTION_SEPARATOR, Chunk


def citation(chunk: Chunk, filename: str) -> str:
    """``"report.pdf, p. 3"``, ``"guide.docx › Installation"``, both when a PDF has bookmarks, or
    the file name alone. The file name is the user's: escape the result before markup."""
    where = filename
    if chunk.section:
        where = f"{where}{SECTION_SEPARATOR}{chunk.section}"
    if chunk.page is not None:
        where = f"{where}, p. {chunk.page}"
    return where
