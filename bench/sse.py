"""The web app's SSE relay at 200 concurrent streams, beside reading the provider directly in the
same run. The bar: the relay adds under 2 ms per chunk at p50.

Processes as in production: the sandbox's provider fake (scripted, zero-delay chunks), the web
app exactly as ``netroom web`` wires it (``build_web_app`` over ``open_resources``, Postgres and
Redis), and this client. Between the fake and its readers sits a gate in this process: it holds
each round's provider requests until all of them have arrived, then lets every stream go at the
same instant. So both ways of reading really run ``--streams`` streams at once, and the work the
web app does before it asks the model (checking the token and session, storing the prompt) is
kept out of the per-chunk figure and shown on its own.

Each round, ``--streams`` streams of ``--chunks`` chunks are read straight from the gate with
httpx (the baseline), then as many ``POST /api/chat`` streams through the web app, each by its
own signed-in user. Per stream, the time per chunk is the time from the gate's release until
its last chunk arrives, divided by the chunks; the overhead is the p50 over the relayed streams
minus the p50 over the direct ones. Last, one stream alone each way shows the relay's own cost
per chunk, without any queueing behind other streams.

The web app's provider client is given room for every stream: the shared httpx client of
``open_resources`` keeps httpx's default limit of 100 connections, so beyond 100 concurrent
replies per process the rest would wait for a connection.

    python -m bench.sse [--streams 200] [--chunks 100] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import signal
import socket
import statistics
import sys
import tempfile
import time
from asyncio.subprocess import Process
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import httpx
from aiohttp import web
from pydantic import SecretStr

from bench._db import scratch_database
from core.config import DatabaseSettings, RedisSettings, Settings, WebSettings
from core.deeplinks import parse_start_payload
from core.dto import ClientInfo
from core.providers.registry import ProviderRegistry
from core.providers.settings import sandbox_providers
from core.security.tokens import issue_access_token
from core.services import accounts, sessions
from db.engine import UnitOfWorkFactory, create_engine
from netroom.deployment import Deployment
from netroom.processes import build_web_app
from netroom.resources import Endpoints, open_resources

# An OpenAI model of the catalogue: its id and its provider model are the same.
MODEL = "gpt-5.4-nano"
SECRET = "bench-sse-signing-secret-of-at-least-32-bytes"
REDIS_URL = "redis://127.0.0.1:6379/0"
POLICY = "2026-11-01"
CHUNK = 8
BAR_MS = 2.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --- the web app's process -------------------------------------------------------------------


async def serve_web(database_url: str, sandbox_url: str, port: int, connections: int) -> None:
    settings = Settings(
        _env_file=None,
        data_dir=Path(tempfile.mkdtemp(prefix="netroom-bench-sse-")),
        database=DatabaseSettings(url=database_url, pool_size=20, max_overflow=30),
        redis=RedisSettings(url=REDIS_URL),
        web=WebSettings(
            port=port, public_url=f"http://127.0.0.1:{port}", jwt_secret=SecretStr(SECRET)
        ),
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    endpoints = Endpoints(database_url=database_url, redis_url=REDIS_URL)
    # The shared httpx client keeps httpx's default of 100 connections: more concurrent streams
    # than that wait for one. Raised here, so all streams reach the model at once.
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    async with (
        open_resources(
            settings, endpoints, sandbox_providers(sandbox_url), sandbox_providers=True
        ) as resources,
        httpx.AsyncClient(timeout=httpx.Timeout(30.0, connect=10.0), limits=limits) as http,
    ):
        resources = dataclasses.replace(
            resources, http=http, providers=ProviderRegistry(sandbox_providers(sandbox_url), http)
        )
        runner = web.AppRunner(
            build_web_app(Deployment.build(settings, resources)), access_log=None
        )
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        await stop.wait()
        await runner.cleanup()


# --- the client ------------------------------------------------------------------------------


async def wait_ready(http: httpx.AsyncClient, url: str, process: Process) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.returncode is not None:
            raise RuntimeError(f"{url}: the process exited with {process.returncode}")
        with contextlib.suppress(httpx.HTTPError):
            if (await http.get(url)).status_code == 200:
                return
        await asyncio.sleep(0.1)
    raise RuntimeError(f"{url} did not answer")


class Gate:
    """A pass-through in front of the provider fake that releases a round's streams together."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.expected = 0
        self.arrived = 0
        self.open = asyncio.Event()
        self.released = 0.0
        self.session: aiohttp.ClientSession | None = None

    def arm(self, expected: int) -> None:
        self.expected, self.arrived = expected, 0
        self.open = asyncio.Event()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        assert self.session is not None
        body = await request.read()
        self.arrived += 1
        if self.arrived == self.expected:
            self.released = time.perf_counter()
            self.open.set()
        await asyncio.wait_for(self.open.wait(), 120)
        headers = {
            k: v
            for k, v in request.headers.items()
            if k.lower() in ("authorization", "content-type")
        }
        async with self.session.post(
            f"{self.upstream}{request.path}", data=body, headers=headers
        ) as upstream:
            response = web.StreamResponse(status=upstream.status)
            response.content_type = upstream.content_type
            await response.prepare(request)
            async for data in upstream.content.iter_any():
                await response.write(data)
            await response.write_eof()
            return response


async def direct(http: httpx.AsyncClient, gate: Gate, gate_url: str, n: int) -> tuple[float, float]:
    """One stream read straight from the provider: (0, ms per chunk after the release)."""
    chunks = 0
    last = 0.0
    async with http.stream(
        "POST",
        f"{gate_url}/openai/v1/chat/completions",
        headers={"Authorization": "Bearer sk-sandbox-openai"},
        json={
            "model": MODEL,
            "messages": [{"role": "user", "content": "Say something"}],
            "stream": True,
            "stream_options": {"include_usage": True},
        },
    ) as response:
        async for line in response.aiter_lines():
            if '"delta":{"content":"' in line and '"content":""' not in line:
                chunks += 1
                last = time.perf_counter()
    if chunks != n:
        raise RuntimeError(f"the provider sent {chunks} chunks, not {n}")
    return 0.0, (last - gate.released) * 1000 / n


async def relayed(
    http: httpx.AsyncClient, gate: Gate, web_url: str, token: str, n: int
) -> tuple[float, float]:
    """One stream through the web app: (ms until ``start``, ms per chunk after the release)."""
    started = time.perf_counter()
    begun = last = started
    chunks = 0
    async with http.stream(
        "POST",
        f"{web_url}/api/chat",
        headers={"Authorization": f"Bearer {token}"},
        json={"text": "Say something", "conversation_id": None, "model_id": MODEL},
    ) as response:
        failed = False
        async for line in response.aiter_lines():
            if line == "event: delta":
                chunks += 1
                last = time.perf_counter()
            elif line == "event: start":
                begun = time.perf_counter()
            elif line == "event: error":
                failed = True
            elif failed:
                raise RuntimeError(f"the web app answered with an error: {line}")
    if chunks != n:
        raise RuntimeError(f"the web app relayed {chunks} chunks, not {n}")
    return (begun - started) * 1000, (last - gate.released) * 1000 / n


async def users(database_url: str, count: int) -> list[str]:
    """Signed-in users, one per stream: their bearer tokens."""
    engine = create_engine(database_url)
    factory = UnitOfWorkFactory.for_engine(engine)
    tokens = []
    now = datetime.now(UTC)
    try:
        for n in range(count):
            async with factory() as uow:
                user = (
                    await accounts.register_telegram_user(
                        uow,
                        telegram_id=9_000_000_000 + n,
                        username=None,
                        first_name="Bench",
                        last_name=None,
                        language_code="en",
                        payload=parse_start_payload(None),
                        policy_version=POLICY,
                        client=ClientInfo(platform="web"),
                    )
                ).user
                opened = await sessions.open_session(
                    uow,
                    user_id=user.id,
                    client=ClientInfo(platform="web"),
                    now=now,
                    ttl=timedelta(days=1),
                )
            token, _ = issue_access_token(
                user.id,
                secret=SECRET,
                now=now,
                ttl=timedelta(hours=2),
                session_id=opened.session_id,
            )
            tokens.append(token)
    finally:
        await engine.dispose()
    return tokens


async def run(database_url: str, streams: int, chunks: int, rounds: int) -> None:
    sandbox_port, web_port, gate_port = free_port(), free_port(), free_port()
    sandbox = f"http://127.0.0.1:{sandbox_port}"
    web_url = f"http://127.0.0.1:{web_port}"
    gate_url = f"http://127.0.0.1:{gate_port}"
    gate = Gate(sandbox)
    gate_app = web.Application()
    gate_app.router.add_post("/openai/v1/chat/completions", gate.handle)
    gate_runner = web.AppRunner(gate_app, access_log=None)
    await gate_runner.setup()
    await web.TCPSite(gate_runner, "127.0.0.1", gate_port).start()
    gate.session = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=streams * 2), timeout=aiohttp.ClientTimeout(120)
    )
    children = [
        await asyncio.create_subprocess_exec(
            sys.executable, "-m", "sandbox", "--port", str(sandbox_port)
        ),
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bench.sse",
            "--serve-web",
            "--database",
            database_url,
            "--sandbox",
            gate_url,
            "--port",
            str(web_port),
            "--connections",
            str(streams * 2),
        ),
    ]
    limits = httpx.Limits(max_connections=streams * 2, max_keepalive_connections=streams * 2)
    reply = "".join(f"w{n:06d} " for n in range(chunks))
    try:
        async with httpx.AsyncClient(timeout=120, limits=limits) as http:
            await wait_ready(http, f"{sandbox}/sandbox/api/providers/script", children[0])
            await wait_ready(http, f"{web_url}/readyz", children[1])
            tokens = await users(database_url, streams * (rounds + 1) + rounds)

            async def script() -> None:
                answer = await http.post(
                    f"{sandbox}/sandbox/api/providers/script",
                    json={
                        "provider": "openai",
                        "model": MODEL,
                        "reply": reply,
                        "chunk_size": CHUNK,
                        "chunk_delay_ms": 0,
                        "times": streams,
                    },
                )
                answer.raise_for_status()

            direct_rounds: list[list[tuple[float, float]]] = []
            relay_rounds: list[list[tuple[float, float]]] = []
            # Round 0 warms connections and caches on every side; it is not counted.
            for r in range(rounds + 1):
                batch = tokens[r * streams : (r + 1) * streams]
                await script()
                gate.arm(streams)
                d = await asyncio.gather(
                    *(direct(http, gate, gate_url, chunks) for _ in range(streams))
                )
                await script()
                gate.arm(streams)
                w = await asyncio.gather(
                    *(relayed(http, gate, web_url, token, chunks) for token in batch)
                )
                if r:
                    direct_rounds.append(d)
                    relay_rounds.append(w)
            # The same stream alone: the relay's own cost per chunk, with no queueing.
            alone: list[tuple[float, float]] = []
            for token in tokens[-rounds:]:
                await script()
                gate.arm(1)
                _, one_direct = await direct(http, gate, gate_url, chunks)
                await script()
                gate.arm(1)
                _, one_relayed = await relayed(http, gate, web_url, token, chunks)
                alone.append((one_direct, one_relayed))
    finally:
        await gate.session.close()
        await gate_runner.cleanup()
        for child in children:
            child.terminate()
        for child in children:
            try:
                await asyncio.wait_for(child.wait(), 10)
            except TimeoutError:
                child.kill()

    def p50(samples: list[tuple[float, float]], index: int) -> float:
        return statistics.median(s[index] for s in samples)

    direct_chunk = statistics.median(p50(d, 1) for d in direct_rounds)
    relay_chunk = statistics.median(p50(w, 1) for w in relay_rounds)
    relay_setup = statistics.median(p50(w, 0) for w in relay_rounds)
    overheads = [p50(w, 1) - p50(d, 1) for d, w in zip(direct_rounds, relay_rounds, strict=True)]
    overhead = statistics.median(overheads)
    print(
        f"streams={streams} concurrent, chunks/stream={chunks} ({CHUNK} characters, zero delay), "
        f"rounds={rounds}"
    )
    print(f"provider read directly (httpx): p50 {direct_chunk:.3f} ms per chunk")
    print(f"through the web app's SSE relay: p50 {relay_chunk:.3f} ms per chunk")
    print(
        f"  before the stream (token and session check, prompt stored): p50 {relay_setup:.1f} ms "
        "per message"
    )
    print(
        "relay overhead per chunk, p50: "
        + ", ".join(f"{o:.3f}" for o in overheads)
        + f" ms by round; median {overhead:.3f} ms; ratio relay / direct "
        f"{relay_chunk / direct_chunk:.2f}"
    )
    alone_direct = statistics.median(a[0] for a in alone)
    alone_relayed = statistics.median(a[1] for a in alone)
    print(
        f"one stream alone: directly {alone_direct:.3f} ms, relayed {alone_relayed:.3f} ms per "
        f"chunk; the relay's own cost {alone_relayed - alone_direct:.3f} ms per chunk"
    )
    print(f"bar {BAR_MS:.0f} ms at {streams} streams: {'met' if overhead < BAR_MS else 'NOT met'}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--streams", type=int, default=200)
    parser.add_argument("--chunks", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--serve-web", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--database", help=argparse.SUPPRESS)
    parser.add_argument("--sandbox", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--connections", type=int, default=100, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_web:
        asyncio.run(serve_web(args.database, args.sandbox, args.port, args.connections))
        return
    with scratch_database() as url:
        asyncio.run(run(url, args.streams, args.chunks, args.rounds))


if __name__ == "__main__":
    main()
