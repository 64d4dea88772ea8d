"""The bot beside the web app under test, for web tests where a payment made in the sandbox's
Telegram must reach the bot: `netroom bot` as the operator runs it, in a process of its own,
polling the sandbox, on the test database and Redis.

A process of its own, as in production, and also because a test process holds one dispatcher at
most: aiogram's routers are module-level and join one dispatcher only (the bot tests' harness).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path

from core.services.payments import PaymentTerms
from core.services.tariffs import Tariffs
from sandbox.client import SandboxClient

STARTUP_TIMEOUT = 60.0
# The operator's settings come from the environment and nothing else (no .env of the checkout).
SETTINGS_PREFIXES = (
    "BOT__",
    "DATABASE__",
    "REDIS__",
    "WEB__",
    "SANDBOX__",
    "PAYMENTS__",
    "FREE_TIER__",
    "POLICY__",
    "YOOKASSA__",
    "PROVIDERS__",
)


def bot_env(
    terms: PaymentTerms,
    tariffs: Tariffs,
    *,
    signing_secret: str,
    token: str,
    api_base: str,
    database_url: str,
    redis_url: str,
    web_url: str,
    data_dir: Path,
) -> dict[str, str]:
    """The settings that make the bot process sign and check invoices with ``terms`` and sell
    the plans of ``tariffs``, like the web app under test."""
    rebuilt = PaymentTerms.build(
        kopecks_per_star=terms.kopecks_per_star,
        star_packages=list(terms.star_packages),
        referral_level1_percent=terms.referral_percents[0],
        referral_level2_percent=terms.referral_percents[1],
        signing_secret=signing_secret,
    )
    assert rebuilt == terms, "the web app's terms are not signed with this secret"
    plans = [
        {
            "id": p.id,
            "stars": p.stars,
            "free_tier": dict(p.free_tier),
            "discount_percent": p.discount_percent,
        }
        for p in tariffs.plans
    ]
    return {
        "BOT__TOKEN": token,
        "BOT__API_BASE": api_base,
        "DATABASE__URL": database_url,
        "REDIS__URL": redis_url,
        "WEB__PUBLIC_URL": web_url,
        "WEB__JWT_SECRET": signing_secret,
        "PAYMENTS__KOPECKS_PER_STAR": str(terms.kopecks_per_star),
        "PAYMENTS__STAR_PACKAGES": json.dumps(list(terms.star_packages)),
        "PAYMENTS__REFERRAL_LEVEL1_PERCENT": str(terms.referral_percents[0]),
        "PAYMENTS__REFERRAL_LEVEL2_PERCENT": str(terms.referral_percents[1]),
        "PAYMENTS__PLANS": json.dumps(plans),
        "FREE_TIER__LIMITS": json.dumps(dict(tariffs.free_limits)),
        "FREE_TIER__PERIOD": tariffs.period,
        "FREE_TIER__TIMEZONE": tariffs.timezone,
        "DATA_DIR": str(data_dir),
    }


@contextlib.asynccontextmanager
async def running_bot(env: dict[str, str], workdir: Path) -> AsyncIterator[None]:
    """`netroom bot` with ``env``, run in ``workdir`` (an existing directory; its log goes to
    ``bot.log`` there); yields once its start-up is done (the commands are set at the sandbox),
    stops it with SIGTERM after."""
    log_path = workdir / "bot.log"
    clean = {k: v for k, v in os.environ.items() if not k.startswith(SETTINGS_PREFIXES)}
    clean = {k: v for k, v in clean.items() if k not in ("ENV", "DATA_DIR", "CATALOGUE_PATH")}
    async with SandboxClient(env["BOT__API_BASE"]) as control:
        after = await control.last_seq()
        with log_path.open("wb") as log:
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "netroom",
                "bot",
                cwd=workdir,
                env={**clean, **env},
                stdout=log,
                stderr=asyncio.subprocess.STDOUT,
            )
        try:
            # The bot sets its commands in each language at start-up, then polls.
            deadline = asyncio.get_running_loop().time() + STARTUP_TIMEOUT
            commands = 0
            while commands < 2:
                if proc.returncode is not None or asyncio.get_running_loop().time() > deadline:
                    tail = log_path.read_text(errors="replace")[-4000:]
                    raise AssertionError(f"`netroom bot` did not start:\n{tail}")
                events, after = await control.events(after=after, wait=1)
                commands += sum(1 for e in events if e["type"] == "commands_set")
            yield
        finally:
            if proc.returncode is None:
                proc.terminate()
                try:
                    await asyncio.wait_for(proc.wait(), 30)
                except TimeoutError:
                    proc.kill()
                    await proc.wait()
