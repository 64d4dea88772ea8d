"""Why an uploaded document cannot be read.

Every refusal is an ``UnsupportedDocument`` with its own machine ``code``, so a transport can
answer with one message per condition or catch them all at once.
"""

from __future__ import annotations

from core.errors import DomainError
from core.i18n import N_


class UnsupportedDocument(DomainError):
    code = "unsupported"
    msgid = N_(
        "This file type is not supported. Send a PDF, a Word document (.docx), a web page "
        "or a text file."
    )


class ArchiveRefused(UnsupportedDocument):
    code = "archive"
    msgid = N_("Archives are not supported. Unpack the archive and send the documents one by one.")


class BinaryFile(UnsupportedDocument):
    code = "binary"
    msgid = N_("This file does not contain readable text. Send a PDF, a Word document or text.")


class CorruptDocument(UnsupportedDocument):
    code = "corrupt"
    msgid = N_("The document is damaged or incomplete and cannot be read.")


class EncryptedDocument(CorruptDocument):
    """Password protected: the text cannot be read without the password."""

    code = "encrypted"
    msgid = N_("The document is password protected. Remove the password and send it again.")


class DocumentTooLarge(UnsupportedDocument):
    """``params["limit_mb"]``: the size limit in megabytes."""

    code = "too_large"
    msgid = N_("The file is too large. The limit is {limit_mb} MB.")


class DocumentTooComplex(UnsupportedDocument):
    """Reading it took more memory, time or structure than any real document of the allowed
    size needs (a decompression bomb, or a pathological file)."""

    code = "too_complex"
    msgid = N_(
        "This document is too large or complex to read. Split it into smaller documents and "
        "send them one by one."
    )


class TooManyPages(UnsupportedDocument):
    """``params["pages"]`` and ``params["limit"]``: the document's and the allowed page count."""

    code = "too_many_pages"
    msgid = N_("The document has {pages} pages; the limit is {limit}.")


class TooMuchText(UnsupportedDocument):
    """``params["limit"]``: the allowed number of characters."""

    code = "too_much_text"
    msgid = N_("The document has too much text; the limit is {limit} characters.")


class EmptyDocument(UnsupportedDocument):
    code = "empty"
    msgid = N_("No text was found in the document. Scanned pages and images are not supported yet.")
