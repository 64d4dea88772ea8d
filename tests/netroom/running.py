"""A `netroom` subprocess under test, its output read as it comes (a full pipe would stall it)."""

from __future__ import annotations

import asyncio
import re
import signal


class Running:
    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.lines: list[str] = []
        self._more = asyncio.Event()
        self.reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.proc.stdout is not None
        while raw := await self.proc.stdout.readline():
            self.lines.append(raw.decode(errors="replace"))
            self._more.set()
        self._more.set()

    @property
    def output(self) -> str:
        return "".join(self.lines)

    async def wait_for_line(self, pattern: str, wait: float = 60) -> re.Match[str]:
        """The first line (already read or still to come) that matches ``pattern``."""
        regex = re.compile(pattern)
        seen = 0
        async with asyncio.timeout(wait):
            while True:
                for line in self.lines[seen:]:
                    if match := regex.search(line):
                        return match
                seen = len(self.lines)
                if self.reader.done():
                    raise AssertionError("exited early:\n" + "".join(self.lines[-60:]))
                self._more.clear()
                await self._more.wait()

    async def stop(self, wait: float = 30) -> int:
        """SIGTERM, then the exit code once the process and its output have ended."""
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
        async with asyncio.timeout(wait):
            await self.reader
            return await self.proc.wait()
