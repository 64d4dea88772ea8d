"""The media store: generated images and videos as files behind long random keys.

The default keeps them on the local filesystem under ``DATA_DIR/media``, in directories and
files only the service's user can read (0700, 0600); an S3-compatible store can take its place
behind the same three operations.
"""

from __future__ import annotations

import asyncio
import os
import re
import secrets
from pathlib import Path
from typing import Protocol

EXTENSIONS = {"image/png": ".png", "image/jpeg": ".jpg", "image/webp": ".webp", "video/mp4": ".mp4"}
KEY = re.compile(r"^[a-f0-9]{32}\.[a-z0-9]{2,4}$")


class MediaStore(Protocol):
    async def save(self, data: bytes, mime: str) -> str: ...

    async def load(self, key: str) -> bytes: ...

    async def delete(self, key: str) -> None: ...


class LocalMediaStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, key: str) -> Path:
        if not KEY.fullmatch(key):
            raise ValueError("not a media key")
        return self.root / key[:2] / key

    async def save(self, data: bytes, mime: str) -> str:
        # 128 random bits: a key cannot be guessed.
        key = secrets.token_hex(16) + EXTENSIONS.get(mime, ".bin")
        path = self._path(key)

        def write() -> None:
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            tmp = path.with_suffix(path.suffix + ".part")
            # Readable by the service's own user only, whatever the umask.
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as out:
                out.write(data)
            tmp.replace(path)

        await asyncio.to_thread(write)
        return key

    async def load(self, key: str) -> bytes:
        return await asyncio.to_thread(self._path(key).read_bytes)

    async def delete(self, key: str) -> None:
        await asyncio.to_thread(self._path(key).unlink, True)
