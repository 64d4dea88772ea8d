"""Documents: indexing throughput (pages per second, full-text index) and search latency over
100 000 passages of one user, by words and, with pgvector, by words and meaning together.

Runs on the embedded Postgres (it ships pgvector), or on BENCH_DATABASE_URL.

    python -m bench.rag [--chunks 100000] [--pages 50] [--queries 50]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import os
import random
import secrets
import statistics
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
from sqlalchemy.engine import make_url

from core.media import LocalMediaStore
from core.services import files
from core.services.files import FileLimits
from db.engine import UnitOfWorkFactory, create_engine
from db.migrate import upgrade


def _vocabulary(size: int = 20_000) -> list[str]:
    """Made-up words, so text has a realistic spread: a few very common, most rare."""
    rng = random.Random(3)
    letters = "abcdefghiklmnoprstuvy"
    return ["".join(rng.choice(letters) for _ in range(rng.randint(4, 9))) for _ in range(size)]


VOCABULARY = _vocabulary()
# Zipf-like weights: the n-th word is 1/n as frequent as the first.
WEIGHTS = [1 / (n + 1) for n in range(len(VOCABULARY))]


def _words(rng: random.Random, count: int) -> str:
    return " ".join(rng.choices(VOCABULARY, weights=WEIGHTS, k=count))


DIMENSIONS = 256


@contextlib.contextmanager
def database() -> Iterator[str]:
    configured = os.environ.get("BENCH_DATABASE_URL")
    if configured:
        yield configured
        return
    from netroom.embedded import EmbeddedPostgres

    server = EmbeddedPostgres(Path(tempfile.mkdtemp()), database="postgres")
    url = server.start()
    name = f"netroom_bench_{secrets.token_hex(4)}"
    admin = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)

    async def execute(sql: str) -> None:
        conn = await asyncpg.connect(admin)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    try:
        asyncio.run(execute(f'CREATE DATABASE "{name}"'))
        target = make_url(url).set(database=name).render_as_string(hide_password=False)
        upgrade(target)
        yield target
    finally:
        server.stop()


def _pdf(pages: int) -> bytes:
    from fpdf import FPDF

    rng = random.Random(7)
    pdf = FPDF()
    pdf.set_font("helvetica", size=11)
    for page in range(pages):
        pdf.add_page()
        pdf.multi_cell(0, 6, f"Section {page + 1}", new_x="LMARGIN", new_y="NEXT")
        for _ in range(8):
            pdf.multi_cell(
                0,
                6,
                _words(rng, 60) + ".",
                new_x="LMARGIN",
                new_y="NEXT",
            )
    return bytes(pdf.output())


def _vector(rng: random.Random) -> str:
    values = [rng.gauss(0, 1) for _ in range(DIMENSIONS)]
    norm = math.sqrt(sum(v * v for v in values))
    return "[" + ",".join(f"{v / norm:.5f}" for v in values) + "]"


async def main_async(url: str, chunks: int, pages: int, queries: int) -> None:
    engine = create_engine(url, pool_size=2, max_overflow=2)
    factory = UnitOfWorkFactory.for_engine(engine)
    dsn = url.replace("+asyncpg", "")
    conn = await asyncpg.connect(dsn)
    user_id = await conn.fetchval(
        "INSERT INTO users (referral_code) VALUES ('benchrag') RETURNING id"
    )
    store = LocalMediaStore(Path(tempfile.mkdtemp()))
    limits = FileLimits(max_bytes=20 * 1024 * 1024, quota_bytes=10**10, max_pages=1000)
    now = datetime.now(UTC)

    # Indexing: the same kind of document, several times (new content each time).
    timings = []
    for run in range(3):
        data = _pdf(pages) + f"%{run}\n".encode()
        async with factory() as uow:
            uploaded = await files.upload(
                uow,
                store,
                user_id=user_id,
                name=f"report-{run}.pdf",
                data=data,
                limits=limits,
                now=now,
            )
            started = time.perf_counter()
            done = await files.index(
                uow, store, file_id=uploaded.id, limits=limits, embedder=None, now=now
            )
            timings.append(time.perf_counter() - started)
            assert done.status == "ready", done.error
    indexing = statistics.median(timings)

    # 100 000 passages in 100 files, straight into the tables.
    rng = random.Random(11)
    file_ids = []
    per_file = max(chunks // 100, 1)
    for n in range(math.ceil(chunks / per_file)):
        file_ids.append(
            await conn.fetchval(
                "INSERT INTO files (user_id, name, mime, size, sha256, status, storage_key)"
                " VALUES ($1, $2, 'text/plain', 1, $3, 'ready', 'x') RETURNING id",
                user_id,
                f"doc-{n}.txt",
                secrets.token_hex(32),
            )
        )
    records = [
        (
            file_ids[i // per_file],
            user_id,
            i % per_file,
            _words(rng, 80),
            None,
            f"Part {i % 17}",
            80,
        )
        for i in range(chunks)
    ]
    loaded = time.perf_counter()
    await conn.copy_records_to_table(
        "file_chunks",
        records=records,
        columns=["file_id", "user_id", "ordinal", "text", "page", "section", "token_count"],
    )
    load_seconds = time.perf_counter() - loaded
    has_vectors = await conn.fetchval("SELECT to_regclass('file_chunk_vectors') IS NOT NULL")
    if has_vectors:
        ids = await conn.fetch("SELECT id FROM file_chunks WHERE file_id = ANY($1)", file_ids)
        await conn.executemany(
            "INSERT INTO file_chunk_vectors (chunk_id, user_id, embedding)"
            " VALUES ($1, $2, $3::vector)",
            [(r["id"], user_id, _vector(rng)) for r in ids],
        )
    await conn.execute("ANALYZE")

    hits: list[int] = []

    async def measure(with_vector: bool) -> list[float]:
        found = []
        for _ in range(queries):
            # What people ask about: words of middling frequency.
            query = " ".join(rng.choice(VOCABULARY[50:5_000]) for _word in range(4))
            vector = None
            if with_vector:
                literal = _vector(rng)[1:-1]
                vector = tuple(float(x) for x in literal.split(","))
            async with factory() as uow:
                started = time.perf_counter()
                result = await files.search(
                    uow,
                    user_id=user_id,
                    file_ids=file_ids,
                    query=query,
                    budget_tokens=2_000,
                    query_vector=vector,
                )
                found.append((time.perf_counter() - started) * 1000)
                hits.append(len(result.passages))
        return found

    words_only = await measure(False)
    print(f"NetRoom documents benchmark: {pages}-page PDF, {chunks:,} passages of one user")
    print(
        f"  indexing (extract, chunk, full-text index): {pages / indexing:,.0f} pages/s "
        f"(median of 3: {indexing:.2f} s for {pages} pages)"
    )
    print(f"  bulk load of {chunks:,} passages: {load_seconds:.1f} s")
    print(
        f"  search by words:   median {statistics.median(words_only):.1f} ms, "
        f"p95 {sorted(words_only)[int(len(words_only) * 0.95) - 1]:.1f} ms "
        f"over {queries} queries"
    )
    if has_vectors:
        hybrid = await measure(True)
        print(
            f"  search by words and meaning (exact vector scan): median "
            f"{statistics.median(hybrid):.1f} ms, "
            f"p95 {sorted(hybrid)[int(len(hybrid) * 0.95) - 1]:.1f} ms"
        )
    else:
        print("  search by meaning: skipped (no pgvector on this server)")
    await conn.close()
    await engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.rag")
    parser.add_argument("--chunks", type=int, default=100_000)
    parser.add_argument("--pages", type=int, default=50)
    parser.add_argument("--queries", type=int, default=50)
    args = parser.parse_args()
    with database() as url:
        asyncio.run(main_async(url, args.chunks, args.pages, args.queries))


if __name__ == "__main__":
    main()
