"""Memory of each process role after start-up, beside its target, and how long `netroom run`
takes to start on a warm install.

Each role is started as an operator starts it, on the defaults: the embedded Postgres and Redis
under a scratch DATA_DIR (their servers are child processes and not counted), the Telegram
sandbox for the bot (here, in this process, with a registered bot token; `netroom run` without a
token starts its own). A role is measured once it printed "NetRoom is running." and settled for
a moment: the resident set (VmRSS in /proc/<pid>/status) of the `netroom` process alone.

`netroom web` is measured as the web app alone and in webhook mode (where it also handles the
bot's updates: the scale-out layout). `netroom run` is measured twice: with the bot token (all
roles, the sandbox elsewhere, as in production) against the target, and bare (the demo, the
sandbox in the same process) for reference. The start-up time is the bare one's, from the spawn
to "NetRoom is running.", after the first start has created and migrated the database (a warm
install).

    python -m bench.memory [--settle 3]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from bench.faultkit import Service, free_port
from sandbox.app import start_sandbox
from sandbox.client import SandboxClient

MB = 1024 * 1024
TARGETS_MB = {"bot": 150, "web": 150, "run": 250}


@dataclass(frozen=True)
class Measured:
    label: str
    rss: int
    peak: int
    target_mb: int | None
    startup: float


def resident(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) of one process, in bytes: its own pages, not its children's."""
    fields: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            fields[name] = int(value.split()[0]) * 1024
    return fields["VmRSS"], fields["VmHWM"]


async def migrate(env: dict[str, str], work: Path) -> None:
    """`netroom migrate` once: the embedded Postgres is created and the schema built."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(_SETTINGS)}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "netroom",
        "migrate",
        cwd=work,
        env={**clean, **env},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await proc.communicate()
    if proc.returncode != 0:
        raise SystemExit(f"netroom migrate failed:\n{out.decode(errors='replace')[-3000:]}")


async def measure(
    label: str,
    command: tuple[str, ...],
    env: dict[str, str],
    work: Path,
    target_mb: int | None,
    settle: float,
) -> Measured:
    service = Service(env, work, label.replace(" ", "-"), command)
    try:
        await service.start()
        await asyncio.sleep(settle)
        assert service.proc is not None
        rss, peak = resident(service.proc.pid)
    finally:
        if service.proc is not None and service.proc.returncode is None:
            code, _ = await service.terminate(within=60)
            if code is None:
                await service.close()
    return Measured(label, rss, peak, target_mb, service.startup_seconds)


def row(m: Measured) -> str:
    target = f"≤ {m.target_mb} MB" if m.target_mb else "-"
    verdict = ""
    if m.target_mb is not None:
        verdict = "met" if m.rss <= m.target_mb * MB else "NOT met"
    return (
        f"{m.label:<34} {m.rss / MB:7.1f} MB   peak {m.peak / MB:7.1f} MB   "
        f"target {target:<10} {verdict}"
    )


async def run(settle: float) -> list[Measured]:
    with tempfile.TemporaryDirectory(prefix="netroom-memory-") as tmp:
        work = Path(tmp)
        sandbox = await start_sandbox("127.0.0.1", 0)
        try:
            token = f"{secrets.randbelow(9 * 10**8) + 10**8}:{secrets.token_urlsafe(27)}"
            async with SandboxClient(sandbox.url) as client:
                await client.register_bot(token, "netroom_memory_bot", "NetRoom")
            web_port = free_port()
            base = {
                "DATA_DIR": str(work / "data"),
                "WEB__PORT": str(web_port),
                "WEB__PUBLIC_URL": f"http://127.0.0.1:{web_port}",
                "LOG_LEVEL": "INFO",
            }
            with_bot = {**base, "BOT__TOKEN": token, "BOT__API_BASE": sandbox.url}
            # The scale-out layout: the web process also serves the bot's webhook.
            hooked = {
                **with_bot,
                "BOT__WEBHOOK_URL": f"http://127.0.0.1:{web_port}",
                "BOT__WEBHOOK_SECRET": secrets.token_urlsafe(24),
            }
            await migrate(base, work)
            measured = [
                await measure("netroom bot", ("bot",), with_bot, work, TARGETS_MB["bot"], settle),
                await measure("netroom web", ("web",), with_bot, work, TARGETS_MB["web"], settle),
                await measure(
                    "netroom web (webhook mode)", ("web",), hooked, work, TARGETS_MB["web"], settle
                ),
                await measure("netroom worker", ("worker",), with_bot, work, None, settle),
                await measure(
                    "netroom run (all roles)", ("run",), with_bot, work, TARGETS_MB["run"], settle
                ),
            ]
            demo = {**base, "SANDBOX__PORT": str(free_port())}
            measured.append(
                await measure("netroom run (demo, own sandbox)", ("run",), demo, work, None, settle)
            )
        finally:
            await sandbox.stop()
    return measured


_SETTINGS = ("BOT__", "DATABASE__", "REDIS__", "WEB__", "SANDBOX__", "DATA_DIR", "ENV")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--settle", type=float, default=3.0, help="seconds after start-up")
    args = parser.parse_args()
    measured = asyncio.run(run(args.settle))
    print("resident memory after start-up (the netroom process only):")
    for m in measured:
        print(row(m))
    demo = measured[-1]
    print(f"netroom run start-up on a warm install: {demo.startup:.2f} s (the demo, to ready)")
    missed = [m.label for m in measured if m.target_mb and m.rss > m.target_mb * MB]
    print("targets: " + ("all met" if not missed else "NOT met by " + ", ".join(missed)))


if __name__ == "__main__":
    main()
