"""Search by meaning as well as by words, on a Postgres with pgvector (the embedded server
ships it), with embeddings from the sandbox's OpenAI-compatible endpoint over real HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text

from core.media import LocalMediaStore
from core.providers.embeddings import OpenAIEmbeddings
from core.providers.registry import ProviderRegistry
from core.providers.settings import sandbox_providers
from core.services import billing, files
from core.services.files import FileLimits
from db.engine import UnitOfWorkFactory, create_engine
from db.migrate import upgrade
from netroom.embedded import EmbeddedPostgres
from sandbox.app import SandboxServer, start_sandbox
from tests.core.test_files import CORPUS, QUESTIONS
from tests.factories import register

NOW = datetime(2026, 12, 1, tzinfo=UTC)
LIMITS = FileLimits(max_bytes=200_000, quota_bytes=1_000_000, embeddings_price_1k=100)


@pytest.fixture(scope="module")
def vector_database(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    server = EmbeddedPostgres(tmp_path_factory.mktemp("pgvector"), database="netroom_vectors")
    url = server.start()
    try:
        upgrade(url)
        yield url
    finally:
        server.stop()


@pytest.fixture
async def factory(vector_database: str) -> AsyncIterator[UnitOfWorkFactory]:
    engine = create_engine(vector_database, pool_size=2, max_overflow=2)
    yield UnitOfWorkFactory.for_engine(engine)
    await engine.dispose()


@pytest.fixture
async def embedder() -> AsyncIterator[tuple[OpenAIEmbeddings, SandboxServer]]:
    sandbox = await start_sandbox()
    http = httpx.AsyncClient()
    registry = ProviderRegistry(sandbox_providers(sandbox.url), http)
    found = registry.embeddings("openai", model="text-embedding-3-small", dimensions=256)
    assert found is not None
    yield found, sandbox
    await http.aclose()
    await sandbox.stop()


async def test_files_are_embedded_billed_and_searched_by_words_and_meaning(
    factory: UnitOfWorkFactory,
    embedder: tuple[OpenAIEmbeddings, SandboxServer],
    tmp_path: Path,
) -> None:
    model, _ = embedder
    store = LocalMediaStore(tmp_path / "store")
    async with factory() as uow:
        assert await files.vectors_available(uow)
        user = (await register(uow)).user
        async with uow.transaction():
            await billing.credit(uow, user_id=user.id, amount=10_000, category="bonus", key="g")
        ids = []
        for name, data in CORPUS.items():
            uploaded = await files.upload(
                uow, store, user_id=user.id, name=name, data=data, limits=LIMITS, now=NOW
            )
            done = await files.index(
                uow, store, file_id=uploaded.id, limits=LIMITS, embedder=model, now=NOW
            )
            assert done.status == "ready" and done.billed_tokens > 0, name
            ids.append(done.id)
        vectors = await uow.session.scalar(
            text("SELECT count(*) FROM file_chunk_vectors WHERE user_id = :u"), {"u": user.id}
        )
        total = await uow.session.scalar(
            text("SELECT count(*) FROM file_chunks WHERE user_id = :u"), {"u": user.id}
        )
        assert vectors == total and total
        # Indexing was paid through the ledger, and the balance still adds up.
        balance = await billing.get_balance(uow, user.id)
        assert balance.balance < 10_000 and balance.reserved == 0
        assert await billing.check_consistency(uow, user.id)

        hits = 0
        for question, expected in QUESTIONS:
            vector = (await model.embed([question])).vectors[0]
            found = await files.search(
                uow,
                user_id=user.id,
                file_ids=ids,
                query=question,
                budget_tokens=2_000,
                query_vector=vector,
            )
            assert found.method == "hybrid"
            hits += expected in [p.cite for p in found.passages[:5]]
        recall = hits / len(QUESTIONS)
        print(f"recall@5 (hybrid): {recall:.2f}")
        assert recall >= 0.75

        # Deleting a file removes its vectors too.
        await files.delete_file(uow, store, user_id=user.id, file_id=ids[0])
        left = await uow.session.scalar(
            text(
                "SELECT count(*) FROM file_chunk_vectors v"
                " JOIN file_chunks c ON c.id = v.chunk_id WHERE c.file_id = :f"
            ),
            {"f": ids[0]},
        )
        orphans = await uow.session.scalar(
            text(
                "SELECT count(*) FROM file_chunk_vectors v"
                " LEFT JOIN file_chunks c ON c.id = v.chunk_id WHERE c.id IS NULL"
            )
        )
        assert left == 0 and orphans == 0


async def test_without_money_for_embeddings_a_file_is_still_searchable_by_words(
    factory: UnitOfWorkFactory,
    embedder: tuple[OpenAIEmbeddings, SandboxServer],
    tmp_path: Path,
) -> None:
    model, _ = embedder
    store = LocalMediaStore(tmp_path / "store")
    async with factory() as uow:
        user = (await register(uow)).user
        uploaded = await files.upload(
            uow,
            store,
            user_id=user.id,
            name="servers.md",
            data=CORPUS["servers.md"],
            limits=LIMITS,
            now=NOW,
        )
        done = await files.index(
            uow, store, file_id=uploaded.id, limits=LIMITS, embedder=model, now=NOW
        )
        assert (done.status, done.billed_tokens) == ("ready", 0)
        vector = (await model.embed(["backups"])).vectors[0]
        found = await files.search(
            uow,
            user_id=user.id,
            file_ids=[done.id],
            query="How long are snapshots kept?",
            budget_tokens=1_000,
            query_vector=vector,
        )
        # No vectors for this file: the word ranking alone answers.
        assert found.method == "fts"
        assert found.sources()[0] == "servers.md › Backups"
        assert (await billing.get_balance(uow, user.id)).balance == 0
