"""The image's HEALTHCHECK (deploy/healthcheck.py, run the way Docker runs it) against the real
web app: healthy while it answers /healthz, unhealthy when nothing answers on WEB__PORT."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from aiohttp import web
from aiohttp.test_utils import TestClient

from tests.netroom.own_redis import free_port

SCRIPT = Path(__file__).resolve().parents[2] / "deploy" / "healthcheck.py"


async def health_check(port: int) -> tuple[int, str]:
    # Run without blocking the loop: the app under test answers on this same loop.
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(SCRIPT),
        env={**os.environ, "WEB__PORT": str(port)},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode is not None
    return proc.returncode, out.decode()


async def test_container_health_check_passes_while_the_web_app_answers(
    client: TestClient[web.Request, web.Application],
) -> None:
    assert client.server.host == "127.0.0.1"
    code, out = await health_check(client.server.port)
    assert (code, out) == (0, "")


async def test_container_health_check_fails_when_nothing_answers() -> None:
    code, out = await health_check(free_port())
    assert code == 1
    assert "/healthz" in out
