"""The ``netroom`` command: run, bot, web, worker, migrate, jobs, backup, restore, check,
sandbox."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import logging
import os
import secrets
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from ipaddress import ip_network
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
from pydantic import SecretStr, ValidationError

from core import logs
from core.config import Settings, secret_values
from db.engine import UnitOfWorkFactory, create_engine
from netroom.lean import defer_telegram_types
from netroom.resources import backing_services, database_service

if TYPE_CHECKING:
    # The service's own modules (the bot, the web app) load only in the commands that run
    # them: `netroom backup` or `migrate` need none of them.
    from netroom.processes import Roles
    from netroom.resources import Endpoints

log = logging.getLogger("netroom")

SANDBOX_BOT_USERNAME = "netroom_sandbox_bot"


def configure_logging(settings: Settings) -> None:
    """Text or JSON lines (LOG_FORMAT), with every configured secret redacted (core/logs.py)."""
    logs.configure(settings.log_level, settings.log_format, secret_values(settings))


def sandbox_token(data_dir: Path) -> str:
    """A bot token for the sandbox, kept under DATA_DIR so the bot's id is stable across runs."""
    path = data_dir / "sandbox-bot-token"
    if path.exists():
        return path.read_text().strip()
    data_dir.mkdir(parents=True, exist_ok=True)
    token = f"{secrets.randbelow(9 * 10**9) + 10**9}:{secrets.token_urlsafe(27)}"
    path.write_text(token)
    path.chmod(0o600)
    return token


async def _register_sandbox_bot(sandbox_url: str, token: str) -> None:
    async with httpx.AsyncClient(base_url=sandbox_url, timeout=10) as http:
        response = await http.post(
            "/sandbox/api/bots",
            json={"token": token, "username": SANDBOX_BOT_USERNAME, "first_name": "NetRoom"},
        )
        response.raise_for_status()


SANDBOX_OPERATOR = "netroom_operator"
SANDBOX_SUPPORT_DESK = "NetRoom support"


async def _sandbox_support(settings: Settings, sandbox_url: str) -> Settings:
    """Support in the demo, unless admins are configured: a sandbox person "Operator" is the
    admin, and a forum "NetRoom support" (the bot an administrator) is the admin chat, where
    each user's questions get a topic. Found again after a restart (the sandbox keeps them)."""
    from sandbox.client import SandboxClient

    if settings.bot.admin_ids or settings.bot.admin_chat_id is not None:
        return settings
    async with SandboxClient(sandbox_url) as client:
        operator = next(
            (u for u in await client.users() if u.get("username") == SANDBOX_OPERATOR), None
        ) or await client.create_user("Operator", username=SANDBOX_OPERATOR, language_code="en")
        desk = next(
            (
                g
                for g in await client.groups()
                if g.get("title") == SANDBOX_SUPPORT_DESK and g.get("is_forum")
            ),
            None,
        ) or await client.create_forum(
            SANDBOX_SUPPORT_DESK, [operator["id"]], owner_id=operator["id"]
        )
    bot = settings.bot.model_copy(
        update={"admin_ids": [int(operator["id"])], "admin_chat_id": int(desk["id"])}
    )
    return settings.model_copy(update={"bot": bot})


async def _sandbox_yookassa(settings: Settings, sandbox_url: str) -> Settings:
    """Card top-ups in the demo: a shop in the sandbox's YooKassa, notifying this web app."""
    from webapp.routes.payments import NOTIFICATION_PATH

    shop_id, secret = "sandbox-shop", secrets.token_urlsafe(24)

    notify = settings.web.public_url.rstrip("/") + NOTIFICATION_PATH
    async with httpx.AsyncClient(base_url=sandbox_url, timeout=10) as http:
        response = await http.post(
            "/sandbox/api/yookassa/shops",
            json={"shop_id": shop_id, "secret_key": secret, "webhook_url": notify},
        )
        response.raise_for_status()
    local = [ip_network("127.0.0.0/8"), ip_network("::1/128")]
    yookassa = settings.yookassa.model_copy(
        update={
            "shop_id": shop_id,
            "secret_key": SecretStr(secret),
            "api_base": f"{sandbox_url}/yookassa/v3",
            "notification_networks": [*settings.yookassa.notification_networks, *local],
        }
    )
    return settings.model_copy(update={"yookassa": yookassa})


async def _sandbox_sign_in(settings: Settings, sandbox_url: str) -> Settings:
    """Web sign-in in the demo: confirmation mail goes to the sandbox's mailbox (read it at
    /sandbox/api/mail), and Google and Yandex are the sandbox's, unless configured."""
    public = settings.web.public_url.rstrip("/")
    changes: dict[str, object] = {}
    async with httpx.AsyncClient(base_url=sandbox_url, timeout=10) as http:
        if not settings.email.smtp_host:
            server = (await http.get("/sandbox/api/mail/server")).raise_for_status().json()
            changes["email"] = settings.email.model_copy(
                update={"smtp_host": server["host"], "smtp_port": server["port"], "starttls": False}
            )
        oauth = settings.oauth
        for provider in ("google", "yandex"):
            current = getattr(oauth, provider)
            if current.enabled:
                continue
            response = await http.post(
                "/sandbox/api/oauth/clients",
                json={
                    "provider": provider,
                    "redirect_uris": [f"{public}/api/auth/{provider}/callback"],
                },
            )
            client = response.raise_for_status().json()["client"]
            userinfo = "/oauth/google/userinfo" if provider == "google" else "/oauth/yandex/info"
            oauth = oauth.model_copy(
                update={
                    provider: current.model_copy(
                        update={
                            "client_id": client["client_id"],
                            "client_secret": SecretStr(client["client_secret"]),
                            "auth_url": f"{sandbox_url}/oauth/{provider}/authorize",
                            "token_url": f"{sandbox_url}/oauth/{provider}/token",
                            "userinfo_url": f"{sandbox_url}{userinfo}",
                        }
                    )
                }
            )
        changes["oauth"] = oauth
    return settings.model_copy(update=changes)


async def _run(settings: Settings, endpoints: Endpoints, roles: Roles, with_sandbox: bool) -> None:
    from core.providers.settings import sandbox_providers
    from netroom.processes import BotLink, serve, stop_on_signals
    from netroom.resources import open_resources
    from sandbox.app import start_sandbox

    async with contextlib.AsyncExitStack() as stack:
        stop = await stack.enter_async_context(stop_on_signals())
        link: BotLink | None = None
        sandbox_url: str | None = None
        if settings.bot.token is not None:
            link = BotLink(settings.bot.token.get_secret_value(), settings.bot.api_base)
        elif with_sandbox:
            # Its people and chats are kept beside NetRoom's data, which remembers them too.
            server = await start_sandbox(
                settings.sandbox.host,
                settings.sandbox.port,
                state_dir=settings.data_dir / "sandbox",
            )
            stack.push_async_callback(server.stop)
            sandbox_url = server.url
            token = sandbox_token(settings.data_dir)
            await _register_sandbox_bot(sandbox_url, token)
            link = BotLink(token, sandbox_url)
            if not settings.yookassa.enabled:
                settings = await _sandbox_yookassa(settings, sandbox_url)
            settings = await _sandbox_sign_in(settings, sandbox_url)
            settings = await _sandbox_support(settings, sandbox_url)
            # The sandbox's own secrets (its shop's and its OAuth clients') are redacted too.
            logs.configure(
                settings.log_level, settings.log_format, [*secret_values(settings), token]
            )
        providers = settings.providers
        use_fakes = sandbox_url is not None and not providers.any_configured
        if sandbox_url is not None and use_fakes:
            # The demo works offline: every model answers from the sandbox, and says so.
            providers = sandbox_providers(sandbox_url)
        resources = await stack.enter_async_context(
            open_resources(settings, endpoints, providers, sandbox_providers=use_fakes)
        )

        async def ready() -> None:
            # What start-up built (modules, models, routers, pools) lives as long as the process:
            # set apart from the collector, so a full collection walks only what serving made
            # since, not the few hundred thousand objects before it.
            gc.collect()
            gc.freeze()
            lines = ["", "NetRoom is running."]
            if roles.web:
                lines.append(f"  Web app:        {settings.web.public_url}")
            if sandbox_url is not None:
                lines.append(f"  Chat with the bot in the Telegram sandbox: {sandbox_url}/")
            lines.append("  Press Ctrl+C to stop.")
            print("\n".join(lines), flush=True)

        await serve(settings, resources, roles, link=link, stop=stop, on_ready=ready)
    log.info("stopped")


def _serve_command(settings: Settings, roles: Roles, *, migrate: bool, with_sandbox: bool) -> int:
    with backing_services(settings, supervised=True) as endpoints:
        if migrate:
            from db.migrate import upgrade  # Alembic, only where the schema is brought up

            upgrade(endpoints.database_url)
        asyncio.run(_run(settings, endpoints, roles, with_sandbox))
    return 0


def cmd_run(settings: Settings, args: argparse.Namespace) -> int:
    from netroom.processes import Roles

    roles = Roles(bot=True, web=True, worker=True, scheduler=True)
    return _serve_command(settings, roles, migrate=True, with_sandbox=True)


def cmd_bot(settings: Settings, args: argparse.Namespace) -> int:
    from netroom.processes import Roles

    if settings.bot.token is None:
        print(
            "netroom bot needs BOT__TOKEN (or use `netroom run` for the sandbox)", file=sys.stderr
        )
        return 2
    if settings.bot.webhook_url:
        print("with BOT__WEBHOOK_URL set, updates arrive at `netroom web`", file=sys.stderr)
        return 2
    return _serve_command(settings, Roles(bot=True), migrate=False, with_sandbox=False)


def cmd_web(settings: Settings, args: argparse.Namespace) -> int:
    from netroom.processes import Roles

    # In webhook mode the web processes receive the bot's updates.
    with_bot = bool(settings.bot.webhook_url and settings.bot.token)
    return _serve_command(
        settings, Roles(web=True, bot=with_bot), migrate=False, with_sandbox=False
    )


def cmd_worker(settings: Settings, args: argparse.Namespace) -> int:
    from netroom.processes import Roles

    roles = Roles(worker=True, scheduler=bool(args.scheduler))
    return _serve_command(settings, roles, migrate=False, with_sandbox=False)


def cmd_migrate(settings: Settings, args: argparse.Namespace) -> int:
    from db.migrate import upgrade

    with backing_services(settings) as endpoints:
        upgrade(endpoints.database_url, args.revision)
    print(f"database schema at {args.revision}")
    return 0


def cmd_retention(settings: Settings, args: argparse.Namespace) -> int:
    """Apply every retention period once, now (the scheduler does it every few minutes)."""
    from core.clock import utcnow
    from core.services import retention

    async def run(url: str) -> retention.Purged:
        engine = create_engine(url, pool_size=1, max_overflow=0)
        try:
            async with UnitOfWorkFactory.for_engine(engine)() as uow:
                return await retention.purge_expired(uow, now=utcnow())
        finally:
            await engine.dispose()

    with backing_services(settings) as endpoints:
        purged = asyncio.run(run(endpoints.database_url))
    print(
        f"removed {purged.messages} messages and {purged.conversations} conversations, "
        f"scrubbed {purged.technical_rows} rows of technical data, "
        f"dropped {purged.privacy_log} log entries older than 90 days "
        f"and {purged.sessions} ended sessions (generated pictures and videos stay until "
        f"their owner deletes them)"
    )
    return 0


def cmd_jobs(settings: Settings, args: argparse.Namespace) -> int:
    """Each periodic job: its schedule, last start and finish, last status, when it is next due."""
    import json

    from core.clock import utcnow
    from netroom.jobs import JobDeps, create_broker
    from netroom.scheduling import JobStatus, job_statuses, periodic_jobs

    async def run(endpoints: Endpoints) -> list[JobStatus]:
        engine = create_engine(endpoints.database_url, pool_size=1, max_overflow=0)
        factory = UnitOfWorkFactory.for_engine(engine)
        broker = create_broker(endpoints.redis_url, JobDeps(uow_factory=factory))
        try:
            jobs = await periodic_jobs(broker, settings.jobs.schedule_overrides)
            return await job_statuses(factory, jobs, now=utcnow())
        finally:
            await broker.shutdown()
            await engine.dispose()

    with backing_services(settings) as endpoints:
        try:
            statuses = asyncio.run(run(endpoints))
        except ValueError as exc:  # an override naming no periodic job
            print(f"configuration error: {exc}", file=sys.stderr)
            return 2
    if args.json:
        print(json.dumps([s.as_json() for s in statuses], indent=2))
        return 0

    def when(at: object) -> str:
        return at.strftime("%Y-%m-%d %H:%M:%S") if hasattr(at, "strftime") else "-"

    header = ("job", "schedule", "last start (UTC)", "last finish", "status", "next due")
    rows = [
        (
            s.name,
            s.schedule,
            when(s.last_started_at),
            when(s.last_finished_at),
            s.last_status or "-",
            when(s.next_due_at),
        )
        for s in statuses
    ]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    for s in statuses:
        if s.problem:
            print(f"! {s.name} {s.problem}")
    return 0


def cmd_promo(settings: Settings, args: argparse.Namespace) -> int:
    """Create a promo code (operators)."""
    from datetime import datetime

    from core.services import promo

    kind, value = ("amount", args.amount) if args.amount else ("percent", args.percent)
    expires = datetime.fromisoformat(args.expires) if args.expires else None

    async def run(url: str) -> None:
        engine = create_engine(url, pool_size=1, max_overflow=0)
        try:
            async with UnitOfWorkFactory.for_engine(engine)() as uow:
                await promo.create_code(
                    uow,
                    code=args.code,
                    kind=kind,
                    value=value,
                    max_redemptions=args.max,
                    per_user=args.per_user,
                    expires_at=expires,
                )
        finally:
            await engine.dispose()

    with backing_services(settings) as endpoints:
        asyncio.run(run(endpoints.database_url))
    print(f"promo code {args.code.upper()} created")
    return 0


def cmd_backup(settings: Settings, args: argparse.Namespace) -> int:
    """Write an archive of the database and the stored files."""
    from netroom import backup

    out = (
        Path(args.output)
        if args.output
        else backup.directory(settings) / backup.backup_name(datetime.now(UTC))
    )
    try:
        with database_service(settings) as database_url:
            manifest = asyncio.run(backup.create_backup(database_url, settings.data_dir, out))
    except backup.BackupError as exc:
        print(f"backup failed: {exc}", file=sys.stderr)
        return 1
    print(f"backup written to {out}: the database and {len(manifest.files)} stored files")
    return 0


def cmd_restore(settings: Settings, args: argparse.Namespace) -> int:
    """Restore an archive into an empty installation (or over this one, with --force)."""
    from netroom import backup

    archive = Path(args.file)
    if not archive.is_file():
        print(f"restore failed: {archive} is not a file", file=sys.stderr)
        return 1
    try:
        with database_service(settings) as database_url:
            manifest = asyncio.run(
                backup.restore_backup(archive, database_url, settings.data_dir, force=args.force)
            )
    except backup.BackupError as exc:
        print(f"restore failed: {exc}", file=sys.stderr)
        return 1
    files = manifest["files"]
    count = len(files) if isinstance(files, list) else 0
    print(f"restored {archive}: the database (schema {manifest['revision']}) and {count} files")
    return 0


def cmd_sandbox(settings: Settings, args: argparse.Namespace) -> int:
    from sandbox.app import main as sandbox_main

    host = args.host or settings.sandbox.host
    port = args.port or settings.sandbox.port
    state = str(settings.data_dir / "sandbox")
    sandbox_main(["--host", host, "--port", str(port), "--state-dir", state])
    return 0


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="netroom", description="NetRoom: AI models in Telegram")
    sub = root.add_subparsers(dest="command", required=True)
    sub.add_parser("run", help="everything in one process (sandbox when BOT__TOKEN is unset)")
    sub.add_parser("bot", help="the bot, by long polling")
    sub.add_parser("web", help="the web app (and the bot's webhook when BOT__WEBHOOK_URL is set)")
    worker = sub.add_parser("worker", help="a background job worker")
    worker.add_argument(
        "--scheduler", action="store_true", help="also enqueue periodic jobs (run exactly one)"
    )
    migrate = sub.add_parser("migrate", help="bring the database schema up to date")
    migrate.add_argument("revision", nargs="?", default="head")
    sub.add_parser("retention", help="apply the privacy policy's retention periods once")
    jobs = sub.add_parser("jobs", help="periodic jobs: schedule, last run, next run")
    jobs.add_argument("--json", action="store_true", help="a JSON list of objects")
    promo = sub.add_parser("promo", help="create a promo code")
    promo.add_argument("code")
    value = promo.add_mutually_exclusive_group(required=True)
    value.add_argument("--amount", type=int, help="kopecks credited at once")
    value.add_argument("--percent", type=int, help="bonus on the next top-up, percent")
    promo.add_argument("--max", type=int, help="redemptions in all")
    promo.add_argument("--per-user", type=int, default=1, help="redemptions per user")
    promo.add_argument(
        "--expires", help="ISO date and time with offset, e.g. 2027-01-01T00:00+00:00"
    )
    backup = sub.add_parser("backup", help="archive the database and the stored files")
    backup.add_argument("--output", help="the archive to write (default: BACKUP__DIR)")
    restore = sub.add_parser("restore", help="restore an archive made by `netroom backup`")
    restore.add_argument("file")
    restore.add_argument(
        "--force", action="store_true", help="replace a non-empty installation's data"
    )
    sub.add_parser(
        "check", help="preflight: configuration, connections, schema and disk, each ✓ or ✗"
    )
    sandbox = sub.add_parser("sandbox", help="the local stand-ins for Telegram and the providers")
    sandbox.add_argument("--host")
    sandbox.add_argument("--port", type=int)
    return root


COMMANDS = {
    "run": cmd_run,
    "bot": cmd_bot,
    "web": cmd_web,
    "worker": cmd_worker,
    "migrate": cmd_migrate,
    "retention": cmd_retention,
    "jobs": cmd_jobs,
    "promo": cmd_promo,
    "backup": cmd_backup,
    "restore": cmd_restore,
    "sandbox": cmd_sandbox,
}


# The commands that load aiogram (the bot, or a Bot to notify through).
TELEGRAM_COMMANDS = frozenset({"run", "bot", "web", "worker", "jobs"})


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.command == "check":
        # It reads the settings itself, without refusing unsafe ones, to name every problem.
        from netroom.check import main as check

        return check()
    if args.command in TELEGRAM_COMMANDS:
        # Before anything imports aiogram: its Telegram types are built as they are met.
        defer_telegram_types()
    try:
        settings = Settings()
    except ValidationError as exc:
        # Name the variables and the problems, never the values: they may be secrets.
        print("configuration error:", file=sys.stderr)
        for error in exc.errors(include_input=False, include_url=False):
            name = "__".join(str(part) for part in error["loc"]).upper()
            print(f"  {name or 'settings'}: {error['msg']}", file=sys.stderr)
        return 2
    configure_logging(settings)
    private_files(settings.data_dir)
    return COMMANDS[args.command](settings, args)


def private_files(data_dir: Path) -> None:
    """Everything this process and the servers it starts create (DATA_DIR, uploads, the Redis
    dump, the embedded Postgres) is for its own user only: directories 0700, files 0600. A
    DATA_DIR left open by an older version is closed."""
    os.umask(0o077)
    if data_dir.is_dir() and data_dir.stat().st_mode & 0o077:
        data_dir.chmod(0o700)


if __name__ == "__main__":
    raise SystemExit(main())
