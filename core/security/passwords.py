"""Password hashing: PBKDF2-HMAC-SHA256, 600 000 iterations, a 16-byte salt per password,
stored as ``pbkdf2_sha256$600000$<salt b64>$<hash b64>``.

Hashing takes a noticeable fraction of a second on purpose, so it runs in a worker thread and
never holds up the event loop. Passwords are compared in constant time; the stored iteration
count is honoured, so raising it later keeps old hashes working (``needs_rehash`` tells when to
store a fresh one).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import secrets
import unicodedata
from functools import cache

from core.errors import InvalidInput
from core.i18n import N_

ALGORITHM = "pbkdf2_sha256"
ITERATIONS = 600_000
SALT_BYTES = 16
MIN_LENGTH = 8
MAX_LENGTH = 128


class WeakPassword(InvalidInput):
    code = "weak_password"
    msgid = N_(
        "The password must be 8 to 128 characters long and not only spaces. "
        "A longer phrase is safer."
    )


def _normalize(password: str) -> bytes:
    # The same password typed on different keyboards yields the same bytes.
    return unicodedata.normalize("NFC", password).encode("utf-8")


def check_rules(password: str) -> None:
    """Length in characters, 8 to 128, and something besides whitespace."""
    length = len(unicodedata.normalize("NFC", password))
    if not MIN_LENGTH <= length <= MAX_LENGTH or not password.strip():
        raise WeakPassword(f"length {length}")


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def hash_password_sync(password: str, *, iterations: int = ITERATIONS) -> str:
    salt = secrets.token_bytes(SALT_BYTES)
    digest = hashlib.pbkdf2_hmac("sha256", _normalize(password), salt, iterations)
    return f"{ALGORITHM}${iterations}${_b64(salt)}${_b64(digest)}"


def verify_password_sync(password: str, stored: str) -> bool:
    try:
        algorithm, iterations_text, salt_b64, hash_b64 = stored.split("$")
        iterations = int(iterations_text)
        salt = base64.b64decode(salt_b64, validate=True)
        expected = base64.b64decode(hash_b64, validate=True)
    except (ValueError, binascii.Error):
        return False
    if algorithm != ALGORITHM or not 1 <= iterations <= 10_000_000 or not expected:
        return False
    digest = hashlib.pbkdf2_hmac("sha256", _normalize(password), salt, iterations)
    return hmac.compare_digest(digest, expected)


def needs_rehash(stored: str) -> bool:
    return not stored.startswith(f"{ALGORITHM}${ITERATIONS}$")


async def hash_password(password: str) -> str:
    return await asyncio.to_thread(hash_password_sync, password)


async def verify_password(password: str, stored: str | None) -> bool:
    """Whether the password matches; with nothing stored, a dummy hash is checked so that an
    unknown account answers in the same time as a wrong password."""
    return await asyncio.to_thread(_verify_or_dummy, password, stored)


def _verify_or_dummy(password: str, stored: str | None) -> bool:
    if stored is None:
        verify_password_sync(password, _dummy_hash())
        return False
    return verify_password_sync(password, stored)


@cache
def _dummy_hash() -> str:
    return hash_password_sync(secrets.token_urlsafe(16))
