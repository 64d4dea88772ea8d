"""Backups: `netroom backup` of a populated installation restored by `netroom restore` into a
new one gives back every row of every table and every stored file, byte for byte; a non-empty
installation and a damaged archive are refused before anything changes."""

from __future__ import annotations

import asyncio
import hashlib
import io
import secrets
import sys
import tarfile
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy.engine import make_url

from core.media import LocalMediaStore
from core.services import billing, files
from db.engine import UnitOfWorkFactory, create_engine
from db.migrate import upgrade
from netroom.backup import PREFIX, backup_name, rotate
from tests.factories import register
from tests.netroom.test_cli import CLEAN_ENV

DOCUMENT = b"# Notes\n\nThe backup keeps this document and its passages.\n"


@pytest.fixture
async def scratch(postgres_server_url: str) -> AsyncIterator[Callable[[], Awaitable[str]]]:
    """Empty databases on the test server, dropped afterwards."""
    admin = make_url(postgres_server_url).set(drivername="postgresql")
    dsn = admin.render_as_string(hide_password=False)
    made: list[str] = []

    async def make() -> str:
        name = f"netroom_backup_{secrets.token_hex(4)}"
        conn = await asyncpg.connect(dsn)
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()
        made.append(name)
        return admin.set(database=name).render_as_string(hide_password=False)

    yield make
    conn = await asyncpg.connect(dsn)
    try:
        for name in made:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


async def populate(database_url: str, data_dir: Path) -> None:
    """An installation in use: accounts, money, a stored document with its passages."""
    await asyncio.to_thread(upgrade, database_url)
    engine = create_engine(database_url, pool_size=2, max_overflow=0)
    store = LocalMediaStore(data_dir / "media")
    try:
        factory = UnitOfWorkFactory.for_engine(engine)
        for n in range(3):
            async with factory() as uow:
                registered = await register(uow, first_name=f"User {n}")
            user_id = registered.user.id
            async with factory() as uow:
                await billing.credit(
                    uow, user_id=user_id, amount=10_000 + n, category="topup", key=f"t{n}"
                )
            async with factory() as uow:
                stored = await files.upload(
                    uow,
                    store,
                    user_id=user_id,
                    name=f"notes-{n}.md",
                    data=DOCUMENT + str(n).encode(),
                    limits=files.FileLimits(),
                    now=datetime.now(UTC),
                )
            async with factory() as uow:
                await files.index(
                    uow,
                    store,
                    file_id=stored.id,
                    limits=files.FileLimits(),
                    embedder=None,
                    now=datetime.now(UTC),
                )
    finally:
        await engine.dispose()


async def table_rows(database_url: str) -> dict[str, list[str]]:
    dsn = make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)
    conn = await asyncpg.connect(dsn)
    try:
        tables = [
            r["tablename"]
            for r in await conn.fetch(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1"
            )
        ]
        found = {}
        for table in tables:
            # Table names come from the catalogue, not from input.
            query = f'SELECT t::text AS row FROM "{table}" t ORDER BY 1'  # noqa: S608
            rows = await conn.fetch(query)
            found[table] = [r["row"] for r in rows]
        return found
    finally:
        await conn.close()


def file_hashes(data_dir: Path) -> dict[str, str]:
    media = data_dir / "media"
    return {
        p.relative_to(media).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in media.rglob("*")
        if p.is_file()
    }


async def netroom(*args: str, database_url: str, data_dir: Path) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "netroom",
        *args,
        env={**CLEAN_ENV, "DATABASE__URL": database_url, "DATA_DIR": str(data_dir)},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    async with asyncio.timeout(120):
        out, _ = await proc.communicate()
    return proc.returncode or 0, out.decode(errors="replace")


async def test_backup_restored_elsewhere_has_every_row_and_every_file(
    tmp_path: Path, scratch: Callable[[], Awaitable[str]]
) -> None:
    source_url, target_url = await scratch(), await scratch()
    source_dir, target_dir = tmp_path / "source", tmp_path / "target"
    await populate(source_url, source_dir)
    archive = tmp_path / "backup.tar"

    code, out = await netroom(
        "backup", "--output", str(archive), database_url=source_url, data_dir=source_dir
    )
    assert code == 0, out
    assert oct(archive.stat().st_mode & 0o777) == "0o600"

    code, out = await netroom("restore", str(archive), database_url=target_url, data_dir=target_dir)
    assert code == 0, out
    before, after = await table_rows(source_url), await table_rows(target_url)
    assert set(before) == set(after)
    assert before["users"] and before["file_chunks"] and before["ledger_entries"]
    for table in before:
        assert after[table] == before[table], table
    hashes = file_hashes(source_dir)
    assert len(hashes) == 3
    assert file_hashes(target_dir) == hashes


async def test_restore_refuses_a_non_empty_installation_without_force(
    tmp_path: Path, scratch: Callable[[], Awaitable[str]]
) -> None:
    source_url = await scratch()
    source_dir = tmp_path / "source"
    await populate(source_url, source_dir)
    archive = tmp_path / "backup.tar"
    code, out = await netroom(
        "backup", "--output", str(archive), database_url=source_url, data_dir=source_dir
    )
    assert code == 0, out
    rows = await table_rows(source_url)

    code, out = await netroom("restore", str(archive), database_url=source_url, data_dir=source_dir)
    assert code == 1
    assert "not empty" in out and "--force" in out
    code, out = await netroom(
        "restore", str(archive), "--force", database_url=source_url, data_dir=source_dir
    )
    assert code == 0, out
    assert await table_rows(source_url) == rows


async def test_restore_refuses_a_damaged_archive_before_changing_anything(
    tmp_path: Path, scratch: Callable[[], Awaitable[str]]
) -> None:
    source_url, target_url = await scratch(), await scratch()
    source_dir = tmp_path / "source"
    await populate(source_url, source_dir)
    archive = tmp_path / "backup.tar"
    code, out = await netroom(
        "backup", "--output", str(archive), database_url=source_url, data_dir=source_dir
    )
    assert code == 0, out
    damaged = tmp_path / "damaged.tar"
    with tarfile.open(archive) as original, tarfile.open(damaged, "w") as copy:
        for member in original.getmembers():
            data = original.extractfile(member)
            body = data.read() if data else b""
            if member.name.startswith("files/"):
                body = body[:-1] + bytes([body[-1] ^ 1])
            copy.addfile(member, io.BytesIO(body))

    code, out = await netroom(
        "restore", str(damaged), database_url=target_url, data_dir=tmp_path / "target"
    )
    assert code == 1
    assert "damaged" in out
    assert await table_rows(target_url) == {}
    assert not (tmp_path / "target" / "media").exists()


def test_rotation_keeps_the_newest_archives(tmp_path: Path) -> None:
    start = datetime(2026, 12, 1, 2, 30, tzinfo=UTC)
    for day in range(10):
        (tmp_path / backup_name(start + timedelta(days=day))).write_bytes(b"x")
    (tmp_path / "unrelated.tar").write_bytes(b"y")
    removed = rotate(tmp_path, keep=7)
    assert len(removed) == 3
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left[0] == backup_name(start + timedelta(days=3))
    assert len([n for n in left if n.startswith(PREFIX)]) == 7
    assert "unrelated.tar" in left
