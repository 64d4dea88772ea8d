"""Hostile input at the API's edge: bodies that are not declared as JSON, nested without end,
or carrying NUL characters and lone surrogates, and numbers past every id, are refused with a
clear error naming the field (or served), never a 500."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine

from core.media import LocalMediaStore
from db.engine import UnitOfWorkFactory
from tests.factories import register
from tests.webapp.conftest import ClientMaker, make_context, web_access_token
from webapp.app import create_app

SECRET = secrets.token_hex(32)
Client = TestClient  # type: ignore[type-arg]


@pytest.fixture
async def signed_in(
    aiohttp_client: ClientMaker, engine: AsyncEngine, redis: Redis
) -> AsyncIterator[tuple[Client, dict[str, str]]]:
    client = await aiohttp_client(create_app(make_context(engine, redis, jwt_secret=SECRET)))
    async with UnitOfWorkFactory.for_engine(engine)() as uow:
        user = (await register(uow)).user
        token = await web_access_token(uow, user.id, secret=SECRET)
    yield client, {"Authorization": f"Bearer {token}"}


async def test_nul_in_a_json_string_is_refused_naming_the_field(
    signed_in: tuple[Client, dict[str, str]],
) -> None:
    client, auth = signed_in
    response = await client.post(
        "/api/presets", json={"title": "a\x00b", "prompt": "p"}, headers=auth
    )
    assert response.status == 400
    body = await response.json()
    assert body["error"] == "invalid_input" and body["fields"] == ["title"]


async def test_lone_surrogate_on_the_unauthenticated_sign_in_is_refused(
    signed_in: tuple[Client, dict[str, str]],
) -> None:
    client, _ = signed_in
    response = await client.post(
        "/api/auth/sign-in",
        data=b'{"email": "a\\ud800@example.test", "password": "x"}',
        headers={"Content-Type": "application/json"},
    )
    assert response.status == 400
    assert (await response.json())["fields"] == ["email"]


async def test_a_deeply_nested_body_is_refused_not_a_crash(
    signed_in: tuple[Client, dict[str, str]],
) -> None:
    client, _ = signed_in
    for depth in (40, 100_000):
        response = await client.post(
            "/api/auth/sign-in",
            data=b'{"email": ' + b"[" * depth + b"]" * depth + b"}",
            headers={"Content-Type": "application/json"},
        )
        assert response.status == 400, depth
        assert (await response.json())["error"] == "invalid_input"


async def test_a_body_not_declared_as_json_is_415(
    signed_in: tuple[Client, dict[str, str]],
) -> None:
    client, auth = signed_in
    response = await client.post(
        "/api/presets",
        data=b'{"title": "t", "prompt": "p"}',
        headers={**auth, "Content-Type": "text/plain"},
    )
    assert response.status == 415
    assert (await response.json())["error"] == "unsupported_media_type"


async def test_an_upload_without_a_content_type_is_415(
    signed_in: tuple[Client, dict[str, str]],
    engine: AsyncEngine,
    redis: Redis,
    aiohttp_client: ClientMaker,
    tmp_path: Path,
) -> None:
    _, auth = signed_in

    class Queue:
        async def enqueue(self, task_name: str, **kwargs: object) -> None:
            raise AssertionError("nothing is queued for a refused upload")

    client = await aiohttp_client(
        create_app(
            make_context(
                engine,
                redis,
                jwt_secret=SECRET,
                media_store=LocalMediaStore(tmp_path / "media"),
                jobs=Queue(),
            )
        )
    )
    response = await client.post("/api/files", data=b"hello", headers=auth)
    assert response.status == 415


async def test_paging_past_every_id_or_from_zero_is_served(
    signed_in: tuple[Client, dict[str, str]],
) -> None:
    client, auth = signed_in
    for path in ("/api/media", "/api/transactions"):
        for before in ("0", str(2**64), "9" * 40):
            response = await client.get(path, params={"before": before}, headers=auth)
            assert response.status == 200, (path, before)
        response = await client.get(path, params={"before": "-1"}, headers=auth)
        assert response.status == 400
        assert (await response.json())["fields"] == ["before"]
