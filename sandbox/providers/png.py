"""Real PNG images from the standard library: a colour gradient of any size, cheap to make.

The first row carries a horizontal gradient; every later row uses PNG's "Up" filter with a small
constant step, so large images stay fast to build and tiny once compressed.
"""

from __future__ import annotations

import struct
import zlib


def _chunk(kind: bytes, data: bytes) -> bytes:
    crc = zlib.crc32(kind + data) & 0xFFFFFFFF
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)


def make_png(width: int, height: int, *, seed: int = 0) -> bytes:
    if not (1 <= width <= 8192 and 1 <= height <= 8192):
        raise ValueError("width and height must be 1-8192")
    hue = seed % 256
    first = bytearray([0])  # filter: None
    for x in range(width):
        shade = x * 255 // max(1, width - 1)
        first += bytes((shade, (hue + 64) % 256, (255 - shade + hue) % 256))
    # Filter "Up": each pixel is the one above plus this step, a slow vertical gradient.
    step = bytes([2]) + bytes((0, 1, 0)) * width
    raw = bytes(first) + step * (height - 1)
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", zlib.compress(raw, 6))
        + _chunk(b"IEND", b"")
    )
