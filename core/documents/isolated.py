"""Reading untrusted documents in a process of their own, under hard limits.

Parsers of hostile files can be made to use any amount of memory or time. Each document is
therefore read by a fresh child process (``python -m core.documents.isolated``) that caps its
own address space (``RLIMIT_AS``) and CPU time (``RLIMIT_CPU``) before it touches the bytes, and
whose output the parent reads only up to a bound. Whatever the child does (runs out of memory,
is killed for CPU time, hangs, writes garbage), the parent gets either the passages or an
``UnsupportedDocument`` with a reason, and the process serving users never shares the child's
memory or its CPU-bound work.

The protocol: the parent writes one JSON line of limits and then the file's bytes to the child's
stdin; the child answers with one JSON object on stdout, either ``{"pages", "chunks"}`` or
``{"error", "params"}``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import os
import re
import sys
from dataclasses import dataclass

from core.documents import errors
from core.documents.chunking import Chunk, chunk
from core.documents.detect import detect
from core.documents.extract import Block, extract

log = logging.getLogger(__name__)
_SURROGATE = re.compile("[\ud800-\udfff]")

_ERRORS: dict[str, type[errors.UnsupportedDocument]] = {
    cls.code: cls
    for cls in (
        errors.UnsupportedDocument,
        errors.ArchiveRefused,
        errors.BinaryFile,
        errors.CorruptDocument,
        errors.EncryptedDocument,
        errors.DocumentTooLarge,
        errors.DocumentTooComplex,
        errors.TooManyPages,
        errors.TooMuchText,
        errors.EmptyDocument,
    )
}


@dataclass(frozen=True, slots=True)
class ReadLimits:
    """What one document may use while it is read."""

    max_bytes: int
    max_pages: int
    max_chars: int
    # The child's whole address space, interpreter included.
    memory_bytes: int = 768 * 1024 * 1024
    cpu_seconds: int = 20
    # Wall-clock bound, for a child that waits instead of computing.
    timeout: float = 60.0


def passages(
    data: bytes, name: str, *, max_bytes: int, max_pages: int, max_chars: int
) -> tuple[list[Chunk], int | None]:
    """The file's passages and its page count. A passage never spans two pages or two
    top-level sections, so its citation names where its text really is."""
    detection = detect(data, name, max_bytes=max_bytes)
    extracted = extract(data, detection.kind, max_pages=max_pages, max_chars=max_chars)
    groups: list[list[Block]] = []
    last: tuple[int | None, tuple[str, ...]] | None = None
    for block in extracted.blocks:
        key = (block.page, block.heading_path[:1])
        if key != last:
            groups.append([])
            last = key
        groups[-1].append(block)
    found: list[Chunk] = []
    for group in groups:
        for piece in chunk(dataclasses.replace(extracted, blocks=tuple(group))):
            found.append(dataclasses.replace(piece, ordinal=len(found)))
    return found, extracted.pages or None


async def read_isolated(
    data: bytes, name: str, limits: ReadLimits
) -> tuple[list[Chunk], int | None]:
    """``passages`` computed in a child process under ``limits``; any failure of the child is
    an ``UnsupportedDocument`` (``DocumentTooComplex`` when it ran out of memory or time)."""
    header = {
        "name": name,
        "max_bytes": limits.max_bytes,
        "max_pages": limits.max_pages,
        "max_chars": limits.max_chars,
        "memory_bytes": limits.memory_bytes,
        "cpu_seconds": limits.cpu_seconds,
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "core.documents.isolated",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    # Passages repeat a little of their neighbours and JSON escapes some characters: a few
    # times the text limit in UTF-8, and no more, is read from the child.
    output_limit = 16 * limits.max_chars + 1024 * 1024
    try:
        async with asyncio.timeout(limits.timeout):
            out = await _exchange(proc, json.dumps(header).encode() + b"\n" + data, output_limit)
            await proc.wait()
    except TimeoutError:
        raise errors.DocumentTooComplex(f"reading took over {limits.timeout} s") from None
    finally:
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
    if proc.returncode != 0 or not out:
        # Killed for CPU time (SIGXCPU/SIGKILL) or out of memory before it could answer.
        raise errors.DocumentTooComplex(f"the reader ended with {proc.returncode}")
    try:
        answer = json.loads(out)
        if "error" in answer:
            cls = _ERRORS.get(answer["error"], errors.UnsupportedDocument)
            raise cls("refused while reading", **answer.get("params", {}))
        chunks = [Chunk(*fields) for fields in answer["chunks"]]
        pages = answer["pages"]
    except errors.UnsupportedDocument:
        raise
    except (ValueError, KeyError, TypeError) as exc:
        raise errors.CorruptDocument(f"the reader's answer is not readable: {exc!r}") from exc
    return chunks, pages


async def _exchange(proc: asyncio.subprocess.Process, payload: bytes, limit: int) -> bytes:
    assert proc.stdin is not None and proc.stdout is not None

    async def feed() -> None:
        assert proc.stdin is not None
        # A child that refuses early (too large, a bomb) stops reading: that is no error.
        with contextlib.suppress(ConnectionError):
            proc.stdin.write(payload)
            await proc.stdin.drain()
            proc.stdin.close()

    writer = asyncio.create_task(feed())
    try:
        out = bytearray()
        while chunk_ := await proc.stdout.read(64 * 1024):
            out += chunk_
            if len(out) > limit:
                raise errors.DocumentTooComplex(f"the reader wrote over {limit} bytes")
        return bytes(out)
    finally:
        writer.cancel()
        with contextlib.suppress(BaseException):
            await writer


def _limit_self(memory_bytes: int, cpu_seconds: int) -> None:
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    resource.setrlimit(resource.RLIMIT_CPU, (cpu_seconds, cpu_seconds + 1))
    # The reader writes no files.
    resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0))
    # Reading is background work: the processes answering users come first for the CPU.
    os.nice(10)


def _child() -> int:
    stdin = sys.stdin.buffer
    header = json.loads(stdin.readline())
    # Limits first: nothing of the document is touched before they hold.
    _limit_self(int(header["memory_bytes"]), int(header["cpu_seconds"]))
    try:
        data = stdin.read(int(header["max_bytes"]) + 1)
        chunks, pages = passages(
            data,
            str(header["name"]),
            max_bytes=int(header["max_bytes"]),
            max_pages=int(header["max_pages"]),
            max_chars=int(header["max_chars"]),
        )
        answer: dict[str, object] = {
            "pages": pages,
            "chunks": [dataclasses.astuple(c) for c in chunks],
        }
    except errors.UnsupportedDocument as exc:
        answer = {"error": exc.code, "params": exc.params}
    except MemoryError:
        answer = {"error": errors.DocumentTooComplex.code, "params": {}}
    # A lone surrogate (some PDFs' text has them) cannot be written as UTF-8.
    text = _SURROGATE.sub("\ufffd", json.dumps(answer, ensure_ascii=False))
    sys.stdout.buffer.write(text.encode())
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(_child())
