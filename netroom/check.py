"""`netroom check`: a preflight before going to production.

It reads the settings as every other command does, but without refusing unsafe ones (the rules
are the same functions ``core.config`` enforces at start-up), so that one run names every
problem: the configuration (secrets, HTTPS public URL, webhook mode), then what it reaches
(Postgres and its pgvector and schema, Redis, the Bot API with the token, Telegram's webhook
information, each configured model provider with a call that costs nothing) and the disk under
DATA_DIR. Each item is one line, ✓ or ✗, and a ✗ says how to fix it. The exit code is 1 when
any item failed. No secret is printed: URLs are shown without their passwords, and the bot
token and provider keys never appear.

A deployment against the sandbox (a loopback ``BOT__API_BASE``, provider base URLs pointing
at it) is checked the same way: every call is really made, and the rules for secrets and URLs
are those of production whatever ``ENV`` says.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx
from pydantic import ValidationError

from core.config import (
    Environment,
    Settings,
    UncheckedSettings,
    is_loopback_url,
    jwt_secret_problem,
    webhook_secret_problem,
)
from core.providers.errors import ProviderAuthFailed, ProviderError
from core.providers.keycheck import check_key
from core.providers.settings import ProvidersSettings

OK, FAILED = "✓", "✗"
MIN_POSTGRES = 14
# Room for uploads, generated media, backups and the logs of a while.
MIN_FREE_BYTES = 1024**3
WEBHOOK_PORTS = frozenset({443, 80, 88, 8443})
# A failed webhook delivery older than this is history, not a present problem.
RECENT_DELIVERY_ERROR = timedelta(hours=1)
TIMEOUT = 10.0


@dataclass(frozen=True)
class Item:
    ok: bool
    name: str
    detail: str
    fix: str = ""

    def lines(self) -> list[str]:
        out = [f"  {OK if self.ok else FAILED} {self.name}: {self.detail}"]
        if not self.ok and self.fix:
            out.append(f"      fix: {self.fix}")
        return out


def passed(name: str, detail: str) -> Item:
    return Item(True, name, detail)


def failed(name: str, detail: str, fix: str) -> Item:
    return Item(False, name, detail, fix)


def shown_url(url: str) -> str:
    """A URL with any password replaced by ***."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    user = f"{parts.username}:***@" if parts.username else ":***@"
    return urlunsplit(parts._replace(netloc=user + host))


def _reason(exc: BaseException, *secrets: str | None) -> str:
    """The error in one line (SQLAlchemy's go on with the statement and a link)."""
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    text = f"{type(exc).__name__}: {first}" if first else type(exc).__name__
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


# Configuration ----------------------------------------------------------------------------


def configuration(settings: Settings) -> list[Item]:
    items = []
    if settings.env is Environment.PRODUCTION:
        items.append(passed("ENV", "production"))
    else:
        items.append(
            failed("ENV", f"{settings.env.value}", "set ENV=production on a real deployment")
        )
    problem = jwt_secret_problem(settings)
    items.append(
        passed("WEB__JWT_SECRET", "a random secret of 32 bytes or more")
        if problem is None
        else failed("WEB__JWT_SECRET", "a placeholder or too short", problem)
    )
    public = settings.web.public_url
    if urlsplit(public).scheme == "https" and not is_loopback_url(public):
        items.append(passed("WEB__PUBLIC_URL", public))
    else:
        items.append(
            failed(
                "WEB__PUBLIC_URL",
                f"{public} is not a public HTTPS address",
                "set WEB__PUBLIC_URL to the https:// address users reach (Telegram opens Mini "
                "Apps only over HTTPS; the Caddy of deploy/compose.yaml gets the certificate)",
            )
        )
    if settings.bot.token is None:
        items.append(
            failed("BOT__TOKEN", "unset", "set BOT__TOKEN to the token @BotFather gave the bot")
        )
    else:
        items.append(passed("BOT__TOKEN", "set"))
    items.extend(_bot_mode(settings))
    return items


def _bot_mode(settings: Settings) -> list[Item]:
    hook = settings.bot.webhook_url
    if not hook:
        return [
            passed(
                "bot mode",
                "long polling (BOT__WEBHOOK_URL unset): run exactly one `netroom bot`",
            )
        ]
    items = []
    parts = urlsplit(hook)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    if parts.scheme != "https" or port not in WEBHOOK_PORTS or is_loopback_url(hook):
        items.append(
            failed(
                "BOT__WEBHOOK_URL",
                f"{hook} is not a public HTTPS address on port 443, 80, 88 or 8443",
                "set BOT__WEBHOOK_URL to the public https:// base URL of the web app "
                "(usually WEB__PUBLIC_URL); Telegram delivers webhooks only there",
            )
        )
    else:
        items.append(passed("BOT__WEBHOOK_URL", f"webhook mode at {hook}"))
    problem = webhook_secret_problem(settings)
    items.append(
        passed("BOT__WEBHOOK_SECRET", "set, 16 random characters or more")
        if problem is None
        else failed("BOT__WEBHOOK_SECRET", "missing, a placeholder or too short", problem)
    )
    return items


# Postgres -----------------------------------------------------------------------------------


async def postgres(database_url: str) -> list[Item]:
    """The server, its pgvector and the schema's revision."""
    from sqlalchemy import text

    from db.engine import create_engine
    from db.migrate import head_revisions, known_revision

    where = shown_url(database_url)
    engine = create_engine(database_url, pool_size=1, max_overflow=0)
    try:
        async with asyncio.timeout(TIMEOUT), engine.connect() as conn:
            version_num = int(await conn.scalar(text("SHOW server_version_num")) or 0)
            version = str(await conn.scalar(text("SHOW server_version")))
            installed = await conn.scalar(
                text("SELECT extversion FROM pg_extension WHERE extname = 'vector'")
            )
            available = await conn.scalar(
                text("SELECT default_version FROM pg_available_extensions WHERE name = 'vector'")
            )
            vectors = await conn.scalar(text("SELECT to_regclass('file_chunk_vectors')"))
            has_versions = await conn.scalar(text("SELECT to_regclass('alembic_version')"))
            versions = text("SELECT version_num FROM alembic_version")
            current = [str(r) for r in await conn.scalars(versions)] if has_versions else []
    except Exception as exc:
        fix = "check DATABASE__URL (host, port, user, password, database) and that Postgres runs"
        return [
            failed("Postgres", f"cannot connect to {where} ({_reason(exc)})", fix),
            failed("pgvector", "not checked", "fix the Postgres connection first"),
            failed("migrations", "not checked", "fix the Postgres connection first"),
        ]
    finally:
        await engine.dispose()

    items = []
    if version_num // 10000 >= MIN_POSTGRES:
        items.append(passed("Postgres", f"PostgreSQL {version.split()[0]} at {where}"))
    else:
        items.append(
            failed(
                "Postgres",
                f"PostgreSQL {version} at {where} is older than {MIN_POSTGRES}",
                f"upgrade to PostgreSQL {MIN_POSTGRES} or newer (deploy/compose.yaml runs 16)",
            )
        )
    if installed and vectors:
        items.append(passed("pgvector", f"{installed}: documents are searched by meaning too"))
    elif available and not current:
        items.append(passed("pgvector", f"{available}: `netroom migrate` enables it"))
    elif installed or available:
        items.append(
            failed(
                "pgvector",
                "on the server, but this database was migrated before it was: documents are "
                "searched by words only",
                "search by meaning needs a database migrated where pgvector exists: install "
                "pgvector before the first `netroom migrate` of an installation",
            )
        )
    else:
        items.append(
            failed(
                "pgvector",
                "not installed on the server: documents are searched by words only",
                "use a Postgres with pgvector (the pgvector/pgvector image, or the "
                "postgresql-<version>-pgvector package) before the first `netroom migrate`",
            )
        )
    heads = head_revisions()
    if not current:
        items.append(failed("migrations", "the database has no schema", "run `netroom migrate`"))
    elif set(current) == set(heads):
        items.append(passed("migrations", f"at head ({', '.join(heads)})"))
    elif all(known_revision(r) for r in current):
        items.append(
            failed(
                "migrations",
                f"at {', '.join(current)}, this version needs {', '.join(heads)}",
                "run `netroom migrate` (back up first: `netroom backup`)",
            )
        )
    else:
        items.append(
            failed(
                "migrations",
                f"at {', '.join(current)}, which this version does not know",
                "a newer version migrated this database: run that version, or restore a backup",
            )
        )
    return items


# Redis ------------------------------------------------------------------------------------


async def redis(redis_url: str) -> list[Item]:
    from redis.asyncio import Redis
    from redis.exceptions import RedisError, ResponseError

    where = shown_url(redis_url)
    client = Redis.from_url(redis_url, socket_connect_timeout=5, socket_timeout=TIMEOUT)
    try:
        async with asyncio.timeout(TIMEOUT):
            await client.ping()
            info = await client.info("server")
            try:
                config = await client.config_get("appendonly")
            except ResponseError:  # CONFIG is disabled on some managed servers
                config = None
    except (RedisError, OSError, TimeoutError) as exc:
        return [
            failed(
                "Redis",
                f"cannot connect to {where} ({_reason(exc)})",
                "check REDIS__URL (host, port, password, database) and that Redis runs",
            )
        ]
    finally:
        await client.aclose()
    items = [passed("Redis", f"Redis {info.get('redis_version', '?')} at {where}")]
    if config is None:
        items.append(
            passed(
                "Redis persistence",
                "cannot be read here (CONFIG is disabled): make sure "
                "the server keeps an append-only log",
            )
        )
    elif config.get("appendonly") == "yes":
        items.append(passed("Redis persistence", "append-only log on"))
    else:
        items.append(
            failed(
                "Redis persistence",
                "no append-only log: queued jobs and conversation state die with the server",
                "run Redis with `--appendonly yes --appendfsync everysec` (as deploy/compose.yaml "
                "does), or `CONFIG SET appendonly yes` and the same in redis.conf",
            )
        )
    return items


# Telegram ---------------------------------------------------------------------------------


async def telegram(settings: Settings, http: httpx.AsyncClient) -> list[Item]:
    if settings.bot.token is None:
        return [failed("Bot API", "not checked: no BOT__TOKEN", "set BOT__TOKEN first")]
    token = settings.bot.token.get_secret_value()
    base = settings.bot.api_base.rstrip("/")

    async def call(method: str) -> dict[str, object]:
        response = await http.post(f"{base}/bot{token}/{method}")
        body = response.json()
        if not isinstance(body, dict):
            raise ValueError("the answer is not a Bot API answer")
        return body

    try:
        me = await call("getMe")
    except (httpx.HTTPError, ValueError) as exc:
        return [
            failed(
                "Bot API",
                f"cannot reach {base} ({_reason(exc, token)})",
                "check BOT__API_BASE and that this host reaches it over HTTPS",
            ),
            failed("webhook", "not checked", "fix the Bot API connection first"),
        ]
    if not me.get("ok"):
        return [
            failed(
                "Bot API",
                f"{base} refused the token ({me.get('error_code')} {me.get('description')})",
                "copy the token from @BotFather again into BOT__TOKEN (/mybots → API Token); a "
                "revoked token stops working at once",
            ),
            failed("webhook", "not checked", "fix BOT__TOKEN first"),
        ]
    result = me.get("result")
    bot = result if isinstance(result, dict) else {}
    items = [passed("Bot API", f"@{bot.get('username')} (id {bot.get('id')}) at {base}")]
    try:
        info = await call("getWebhookInfo")
    except (httpx.HTTPError, ValueError) as exc:
        items.append(
            failed("webhook", f"getWebhookInfo failed ({_reason(exc, token)})", "try again")
        )
        return items
    hook_info = info.get("result")
    items.append(_webhook_item(settings, hook_info if isinstance(hook_info, dict) else {}))
    return items


def _webhook_item(settings: Settings, info: dict[str, object]) -> Item:
    current = str(info.get("url") or "")
    pending = info.get("pending_update_count", 0)
    hook = settings.bot.webhook_url
    if not hook:
        if current:
            return passed(
                "webhook",
                f"set to {current}; `netroom bot` removes it at start-up (make sure no other "
                "installation uses this bot)",
            )
        return passed("webhook", "none (long polling)")
    expected = hook.rstrip("/") + settings.bot.webhook_path
    if not current:
        return passed("webhook", f"not set yet: `netroom web` registers {expected} at start-up")
    if current != expected:
        return passed(
            "webhook",
            f"now {current}: `netroom web` moves it to {expected} at start-up (make sure no "
            "other installation uses this bot)",
        )
    error_date = info.get("last_error_date")
    if isinstance(error_date, int) and info.get("last_error_message"):
        at = datetime.fromtimestamp(error_date, UTC)
        if datetime.now(UTC) - at < RECENT_DELIVERY_ERROR:
            return failed(
                "webhook",
                f"Telegram could not deliver to {expected} at {at:%H:%M} UTC: "
                f"{info['last_error_message']} ({pending} updates waiting)",
                "make that URL reachable from the internet over HTTPS with a valid certificate "
                "(ports 443, 80, 88 or 8443) and `netroom web` running behind it",
            )
    return passed("webhook", f"Telegram delivers to {expected} ({pending} updates waiting)")


# Providers --------------------------------------------------------------------------------


async def providers(settings: ProvidersSettings, http: httpx.AsyncClient) -> list[Item]:
    names = [n for n in type(settings).model_fields if settings.get(n).api_key is not None]
    if not names:
        return [
            failed(
                "providers",
                "no provider has a key: no model can answer",
                "set PROVIDERS__<NAME>__API_KEY for the providers you use (OPENAI, ANTHROPIC, "
                "GOOGLE, MISTRAL, DEEPSEEK, OPENROUTER, STABILITY, VIDEO)",
            )
        ]

    async def one(name: str) -> Item:
        label = f"provider {name}"
        variable = f"PROVIDERS__{name.upper()}__API_KEY"
        base = settings.get(name).base_url
        try:
            await check_key(http, name, settings.get(name))
        except ProviderAuthFailed:
            return failed(
                label,
                f"{base} refused the key",
                f"put a working key from the provider's console in {variable}, or remove it "
                "to stop offering this provider's models",
            )
        except ProviderError as exc:
            return failed(
                label,
                f"{base} did not answer the key check ({exc.detail or exc.code})",
                f"check PROVIDERS__{name.upper()}__BASE_URL and this host's access to it, and "
                "the account's standing with the provider",
            )
        return passed(label, f"the key works at {base}")

    return list(await asyncio.gather(*(one(name) for name in names)))


# Disk ---------------------------------------------------------------------------------------


def disk(data_dir: Path) -> Item:
    name = "DATA_DIR"
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        probe = data_dir / ".netroom-check"
        probe.write_bytes(b"ok")
        probe.unlink()
        free = shutil.disk_usage(data_dir).free
    except OSError as exc:
        return failed(
            name,
            f"{data_dir} is not writable ({_reason(exc)})",
            "point DATA_DIR at a directory (a volume) the service's user may write",
        )
    shown = f"{free / 1024**3:.1f} GiB free at {data_dir.resolve()}"
    if free < MIN_FREE_BYTES:
        return failed(
            name,
            f"only {shown}",
            f"free space or grow the volume: keep at least {MIN_FREE_BYTES // 1024**3} GiB "
            "for uploads, generated media and backups",
        )
    return passed(name, shown)


# The command --------------------------------------------------------------------------------


def load_settings() -> tuple[Settings | None, list[Item]]:
    try:
        return UncheckedSettings(), []
    except ValidationError as exc:
        items = []
        for error in exc.errors(include_input=False, include_url=False):
            name = "__".join(str(part) for part in error["loc"]).upper() or "settings"
            items.append(failed(name, error["msg"], "correct this variable (see .env.example)"))
        return None, items


async def connections(settings: Settings, database_url: str, redis_url: str) -> list[Item]:
    async with httpx.AsyncClient(timeout=TIMEOUT) as http:
        groups: list[Awaitable[list[Item]]] = [
            postgres(database_url),
            redis(redis_url),
            telegram(settings, http),
            providers(settings.providers, http),
        ]
        results = await asyncio.gather(*groups)
    return [item for group in results for item in group]


def _problems(count: int) -> str:
    return f"{count} problem" if count == 1 else f"{count} problems"


def run(out: Callable[[str], None] = print) -> int:
    from netroom.cli import private_files
    from netroom.resources import backing_services

    out("NetRoom preflight: is this configuration ready for production?")
    settings, problems = load_settings()
    if settings is None:
        out("")
        out("Configuration")
        for item in problems:
            for line in item.lines():
                out(line)
        out("")
        out(f"{_problems(len(problems))}: the configuration does not load; nothing else checked.")
        return 1
    private_files(settings.data_dir)
    sections: list[tuple[str, list[Item]]] = [("Configuration", configuration(settings))]
    try:
        with contextlib.ExitStack() as stack:
            endpoints = stack.enter_context(backing_services(settings))
            reached = asyncio.run(
                connections(settings, endpoints.database_url, endpoints.redis_url)
            )
    except Exception as exc:  # the embedded servers could not start
        reached = [
            failed(
                "embedded servers",
                f"could not start ({_reason(exc)})",
                "set DATABASE__URL and REDIS__URL to your servers (or see the log above)",
            )
        ]
    sections.append(("Connections", reached))
    sections.append(("Disk", [disk(settings.data_dir)]))
    failures = 0
    for title, items in sections:
        out("")
        out(title)
        for item in items:
            failures += not item.ok
            for line in item.lines():
                out(line)
    out("")
    if failures:
        out(f"{_problems(failures)}: fix each ✗ above and run `netroom check` again.")
        return 1
    out("Every check passed.")
    return 0


def main() -> int:
    # Each problem is a ✗ line; the providers' and servers' own warnings would repeat them.
    logging.basicConfig(level=logging.ERROR, format="%(levelname)s %(name)s: %(message)s")
    try:
        return run()
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
