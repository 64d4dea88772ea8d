"""The sandbox: local stand-ins for the outside world over real HTTP, in one aiohttp app."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from sandbox.mail import setup_mail
from sandbox.oauth import setup_oauth
from sandbox.providers import setup_providers
from sandbox.telegram import TELEGRAM, TelegramOptions, setup_telegram
from sandbox.telegram.persist import WorldStore
from sandbox.web import setup_page
from sandbox.yookassa import setup_yookassa


def create_app(*, options: TelegramOptions | None = None) -> web.Application:
    app = web.Application(client_max_size=60 * 1024 * 1024)
    setup_telegram(app, options)
    setup_providers(app)
    setup_page(app)
    setup_yookassa(app)
    setup_oauth(app)
    setup_mail(app)
    return app


@dataclass
class SandboxServer:
    url: str
    app: web.Application
    runner: web.AppRunner
    store: WorldStore | None = None

    async def stop(self) -> None:
        await self.runner.cleanup()
        if self.store is not None:
            await self.store.stop()


async def start_sandbox(
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    options: TelegramOptions | None = None,
    state_dir: Path | None = None,
) -> SandboxServer:
    """The sandbox on ``host:port``; with ``state_dir``, its Telegram (people, chats, bots) is
    kept there across restarts."""
    app = create_app(options=options)
    store = None
    if state_dir is not None:
        store = WorldStore(app[TELEGRAM], state_dir)
        store.restore()
        store.start()
    # Held long polls (the page's, a bot's) should not delay a stop.
    runner = web.AppRunner(app, access_log=None, handler_cancellation=True, shutdown_timeout=1)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound = port
    for address in runner.addresses:
        bound = address[1]
    return SandboxServer(url=f"http://{host}:{bound}", app=app, runner=runner, store=store)


async def _serve(host: str, port: int, state_dir: Path | None) -> None:
    server = await start_sandbox(host, port, state_dir=state_dir)
    print(f"Sandbox running at {server.url}/", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await server.stop()


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m sandbox")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8081)
    parser.add_argument(
        "--state-dir", type=Path, default=None, help="keep people, chats and bots here"
    )
    args = parser.parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(args.host, args.port, args.state_dir))
