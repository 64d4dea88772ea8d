"""The contract of the JSON API: every /api route has one, the app refuses to start with a route
that has none, ``/api/openapi.json`` is generated from the contracts, and the real answers of the
main routes (successes and refusals alike) are what the document says they are."""

from __future__ import annotations

import asyncio
import json
import re
import secrets
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import jsonschema_rs
import pytest
from aiohttp import web
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine

from core.media import LocalMediaStore
from core.providers.registry import ProviderRegistry
from core.providers.settings import sandbox_providers
from core.services import billing
from core.services.chat import ModelMenu, ModelTerms
from core.services.tariffs import Tariffs
from sandbox.app import SandboxServer
from tests.factories import register
from tests.webapp.authkit import SECRET, Kit, make_kit, new_email
from tests.webapp.conftest import ClientMaker, make_context, web_access_token
from tests.webapp.test_chat_api import read_events
from webapp.app import create_app
from webapp.contract import check_contracts, undocumented

METHODS = {"get", "put", "post", "delete", "patch"}


def _api_routes(app: web.Application) -> set[tuple[str, str]]:
    return {
        (route.method.lower(), route.resource.canonical)
        for route in app.router.routes()
        if route.resource is not None
        and route.resource.canonical.startswith("/api/")
        and route.method != "HEAD"
    }


def _refs(node: Any) -> set[str]:
    if isinstance(node, dict):
        found = {node["$ref"]} if isinstance(node.get("$ref"), str) else set()
        return found.union(*(_refs(v) for v in node.values()))
    if isinstance(node, list):
        return set().union(*(_refs(v) for v in node))
    return set()


async def test_every_api_route_is_described_in_the_document(
    aiohttp_client: ClientMaker, engine: AsyncEngine, redis: Redis
) -> None:
    app = create_app(make_context(engine, redis))
    assert undocumented(app) == []
    client = await aiohttp_client(app)
    response = await client.get("/api/openapi.json")
    assert response.status == 200
    doc = await response.json()
    assert doc["openapi"] == "3.1.0"
    described = {
        (method, path)
        for path, item in doc["paths"].items()
        for method in item
        if method in METHODS
    }
    routes = _api_routes(app)
    assert described == routes
    assert ("post", "/api/chat") in routes and ("get", "/api/openapi.json") in routes
    schemas = doc["components"]["schemas"]
    for method, path in routes:
        op = doc["paths"][path][method]
        assert op["summary"], (method, path)
        names = [p["name"] for p in op.get("parameters", []) if p["in"] == "path"]
        assert sorted(names) == sorted(re.findall(r"\{(\w+)\}", path)), (method, path)
        # Every refusal has the one error shape; no operation documents a 500.
        for status, answer in op["responses"].items():
            assert status != "500", (method, path)
            if status.startswith(("4", "5")):
                assert answer["content"]["application/json"]["schema"] == {
                    "$ref": "#/components/schemas/Error"
                }, (method, path, status)
        if op["security"]:
            assert "401" in op["responses"], (method, path)
        if "requestBody" in op and "application/json" in op["requestBody"]["content"]:
            assert {"400", "413"} <= set(op["responses"]), (method, path)
    for ref in _refs(doc):
        assert ref.startswith("#/components/schemas/") and ref.rsplit("/", 1)[1] in schemas
    # Every schema is a valid JSON Schema (2020-12, as OpenAPI 3.1 uses).
    for name, schema in schemas.items():
        jsonschema_rs.validator_for({**schema, "components": doc["components"]})
        assert isinstance(schema, dict), name


async def test_the_chat_routes_state_their_shapes_and_security(
    aiohttp_client: ClientMaker, engine: AsyncEngine, redis: Redis
) -> None:
    client = await aiohttp_client(create_app(make_context(engine, redis)))
    doc = await (await client.get("/api/openapi.json")).json()
    schemas = doc["components"]["schemas"]
    assert doc["components"]["securitySchemes"]["bearer"] == {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
    }
    chat = doc["paths"]["/api/chat"]["post"]
    assert chat["security"] == [{"bearer": []}]
    body = chat["requestBody"]["content"]["application/json"]["schema"]
    assert schemas[body["$ref"].rsplit("/", 1)[1]]["required"] == ["text"]
    assert "text/event-stream" in chat["responses"]["200"]["content"]
    assert set(chat["x-sse-events"]) == {"start", "delta", "reasoning", "error", "done"}
    assert {"401", "404", "409", "415"} <= set(chat["responses"])
    messages = doc["paths"]["/api/conversations/{conversation_id}/messages"]["get"]
    [parameter] = messages["parameters"]
    assert parameter["name"] == "conversation_id" and parameter["in"] == "path"
    assert parameter["required"] is True
    assert parameter["schema"] == {"type": "integer", "minimum": 0, "maximum": 2**63 - 1}
    listed = messages["responses"]["200"]["content"]["application/json"]["schema"]
    items = schemas[listed["$ref"].rsplit("/", 1)[1]]["properties"]["messages"]["items"]
    assert items == {"$ref": "#/components/schemas/Message"}
    assert doc["paths"]["/api/openapi.json"]["get"]["security"] == []


async def test_a_route_without_a_contract_is_named_and_refused(
    engine: AsyncEngine, redis: Redis
) -> None:
    app = create_app(make_context(engine, redis))

    async def secret_feature(request: web.Request) -> web.Response:
        return web.json_response({})

    app.router.add_get("/api/secret-feature/{item_id}", secret_feature)
    app.router.add_get("/not-api", secret_feature)
    assert undocumented(app) == ["GET /api/secret-feature/{item_id}"]
    with pytest.raises(RuntimeError, match="secret-feature"):
        check_contracts(app)


# --- real answers against the document ------------------------------------------------------------


class Checked:
    """Requests through the app whose answers are checked against the served document."""

    def __init__(self, kit: Kit, doc: dict[str, Any], token: str) -> None:
        self.kit = kit
        self.doc = doc
        self.auth = {"Authorization": f"Bearer {token}"}
        self.seen: set[tuple[str, str, int]] = set()

    def schema(self, method: str, path: str, status: int, media: str) -> dict[str, Any]:
        responses = self.doc["paths"][path][method.lower()]["responses"]
        assert str(status) in responses, (method, path, status, "undocumented status")
        content = responses[str(status)].get("content", {})
        assert media in content, (method, path, status, media, "undocumented type")
        return {**content[media]["schema"], "components": self.doc["components"]}

    def check(self, method: str, path: str, status: int, body: Any) -> None:
        validator = jsonschema_rs.validator_for(
            self.schema(method, path, status, "application/json")
        )
        errors = [str(e) for e in validator.iter_errors(body)]
        assert errors == [], (method, path, status, body)
        self.seen.add((method, path, status))

    async def call(
        self,
        method: str,
        route: str,
        url: str | None = None,
        *,
        expect: int,
        auth: bool = True,
        **kwargs: Any,
    ) -> Any:
        headers = {**self.kit.headers(), **(self.auth if auth else {}), **kwargs.pop("headers", {})}
        response = await self.kit.client.request(method, url or route, headers=headers, **kwargs)
        assert response.status == expect, (method, url or route, await response.text())
        if response.status in (204, 302):
            self.seen.add((method, route, response.status))
            return None
        assert response.content_type == "application/json", (route, response.content_type)
        body = await response.json()
        self.check(method, route, response.status, body)
        return body


async def _pieces(data: bytes, size: int = 1000) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        await asyncio.sleep(0)
        yield data[start : start + size]


@pytest.fixture
async def checked(
    aiohttp_client: ClientMaker,
    engine: AsyncEngine,
    redis: Redis,
    sandbox: SandboxServer,
    http: httpx.AsyncClient,
    tmp_path: Path,
) -> Checked:
    model = ModelTerms(
        id="doc-gpt",
        provider="openai",
        provider_model=f"gpt-doc-{secrets.token_hex(4)}",
        context_window=16_000,
        input_per_1k=10,
        output_per_1k=30,
        reasoning=True,
    )

    class Jobs:
        async def enqueue(self, task_name: str, **kwargs: object) -> None:
            return None

    kit = await make_kit(
        aiohttp_client,
        engine,
        redis,
        sandbox,
        http,
        models=ModelMenu(models=(model,), default_id="doc-gpt"),
        model_names={"doc-gpt": "Doc GPT"},
        providers=ProviderRegistry(sandbox_providers(sandbox.url), http),
        tariffs=Tariffs(free_limits={"basic": 1}, timezone="Europe/Moscow"),
        media_store=LocalMediaStore(tmp_path / "media"),
        jobs=Jobs(),
    )
    async with kit.factory() as uow:
        user = (await register(uow)).user
        async with uow.transaction():
            await billing.credit(
                uow, user_id=user.id, amount=100_000, category="topup", key=secrets.token_hex(8)
            )
        token = await web_access_token(uow, user.id, secret=SECRET)
    doc = await (await kit.client.get("/api/openapi.json")).json()
    return Checked(kit, doc, token)


async def test_the_account_routes_answer_as_documented(checked: Checked) -> None:
    c = checked
    for route in (
        "/api/me",
        "/api/balance",
        "/api/settings",
        "/api/auth/methods",
        "/api/sessions",
        "/api/referrals",
        "/api/transactions",
        "/api/media",
        "/api/models",
        "/api/presets",
        "/api/shares",
        "/api/files",
        "/api/conversations",
    ):
        await c.call("GET", route, expect=200)
    settings = await c.call("PATCH", "/api/settings", json={"theme": "dark"}, expect=200)
    assert settings["theme"] == "dark"
    refused = await c.call("PATCH", "/api/settings", json={"theme": "pink"}, expect=400)
    assert refused["error"] == "invalid_input" and refused["fields"] == ["theme"]
    preset = await c.call(
        "POST", "/api/presets", json={"title": "Poet", "system_prompt": "Rhyme."}, expect=201
    )
    path = "/api/presets/{preset_id}"
    url = f"/api/presets/{preset['id']}"
    await c.call("PUT", path, url, json={"title": "Bard", "system_prompt": "Sing."}, expect=200)
    await c.call("POST", "/api/presets/{preset_id}/use", f"{url}/use", expect=200)
    share = await c.call("POST", "/api/presets/{preset_id}/share", f"{url}/share", expect=201)
    await c.call(
        "POST", "/api/shared/{token}/copy", f"/api/shared/{share['token']}/copy", expect=201
    )
    await c.call("GET", "/api/shares", expect=200)
    await c.call("DELETE", "/api/presets/active", expect=200)
    await c.call("DELETE", path, url, expect=204)
    await c.call("DELETE", path, url, expect=404)
    assert (await c.call("GET", "/api/transactions", params={"before": "-1"}, expect=400))[
        "fields"
    ] == ["before"]
    form = aiohttp.FormData()
    form.add_field("file", b"Notes about rivers.", filename="notes.txt", content_type="text/plain")
    stored = await c.call("POST", "/api/files", data=form, expect=201)
    await c.call("GET", "/api/files/{file_id}", f"/api/files/{stored['id']}", expect=200)
    export = await c.kit.client.get("/api/privacy/export", headers={**c.auth, **c.kit.headers()})
    assert export.status == 200 and export.content_type == "application/json"
    c.schema("GET", "/api/privacy/export", 200, "application/json")
    again = await c.call("GET", "/api/privacy/export", expect=429)
    assert again["error"] == "export_too_soon"
    await c.call("POST", "/api/privacy/delete", expect=200)


async def test_chat_and_its_events_answer_as_documented(checked: Checked) -> None:
    c = checked
    response = await c.kit.client.post(
        "/api/chat",
        json={"text": "Hello", "conversation_id": None},
        headers={**c.auth, **c.kit.headers()},
    )
    assert response.status == 200
    assert response.content_type == "text/event-stream"
    schema = c.schema("POST", "/api/chat", 200, "text/event-stream")
    events = [event async for event in read_events(response)]
    assert events[0][0] == "start" and events[-1][0] == "done"
    components = c.doc["components"]
    validator = jsonschema_rs.validator_for(schema)
    for name, data in events:
        assert validator.is_valid({"event": name, "data": json.dumps(data)}), name
        model = c.doc["paths"]["/api/chat"]["post"]["x-sse-events"][name]
        assert jsonschema_rs.is_valid({**model, "components": components}, data), (name, data)
    conversation = events[0][1]["conversation_id"]
    listed = await c.call(
        "GET",
        "/api/conversations/{conversation_id}/messages",
        f"/api/conversations/{conversation}/messages",
        expect=200,
    )
    message = listed["messages"][-1]["id"]
    await c.call(
        "POST",
        "/api/messages/{message_id}/pin",
        f"/api/messages/{message}/pin",
        json={"pinned": True},
        expect=200,
    )
    await c.call("PUT", "/api/settings/model", json={"model_id": "doc-gpt"}, expect=200)
    await c.call("PUT", "/api/settings/model", json={"model_id": "nope"}, expect=404)
    await c.call("POST", "/api/chat", json={"text": 5}, expect=400)
    # A turn that is not the user's (or over) names nothing.
    await c.call("POST", "/api/chat/{turn_id}/stop", "/api/chat/0123456789abcdef/stop", expect=404)


async def test_refusals_answer_in_the_one_documented_shape(checked: Checked) -> None:
    c = checked
    # No token: 401; a body not declared JSON: 415; a wrong type: 400 naming the field.
    assert (await c.call("GET", "/api/me", expect=401, auth=False))["error"] == "unauthorized"
    refused = await c.call(
        "POST",
        "/api/presets",
        data=b'{"title": "t"}',
        headers={"Content-Type": "text/plain"},
        expect=415,
    )
    assert refused["error"] == "unsupported_media_type"
    refused = await c.call("POST", "/api/presets", json={"title": 1}, expect=400)
    assert refused["fields"] == ["system_prompt", "title"]
    refused = await c.call(
        "POST", "/api/presets", json={"title": "t", "system_prompt": ["a"]}, expect=400
    )
    assert refused["fields"] == ["system_prompt"]
    # An id past every id names nothing; a body too large is 413.
    big = "/api/conversations/" + "9" * 30 + "/messages"
    await c.call("GET", "/api/conversations/{conversation_id}/messages", big, expect=404)
    await c.call(
        "POST",
        "/api/presets",
        data=b"{" + b" " * 600_000 + b"}",
        headers={"Content-Type": "application/json"},
        expect=413,
    )
    # Sent in pieces with no declared length: read whole (a valid body arriving in many pieces
    # is served), and refused past the limit all the same.
    for pieces, status in (
        (_pieces(b'{"title": "Slow", "system_prompt": "' + b"x" * 3000 + b'"}'), 201),
        (_pieces(b"[" + b"0," * 400_000 + b"0]"), 413),
    ):
        await c.call(
            "POST",
            "/api/presets",
            data=pieces,
            headers={"Content-Type": "application/json"},
            expect=status,
        )
    # A wrong method or an unknown /api path answers in the same shape.
    for method, path, status in (("PUT", "/api/me", 405), ("GET", "/api/nothing-here", 404)):
        response = await c.kit.client.request(method, path, headers=c.auth)
        assert response.status == status and response.content_type == "application/json"
        body = await response.json()
        assert set(body) == {"error", "message"}, body
    # Signing in with a new account: the tokens as documented, and the policy refusal.
    email = new_email()
    await c.call(
        "POST",
        "/api/auth/register",
        json={"email": email, "password": "correct horse battery", "accept_policy": True},
        expect=202,
        auth=False,
    )
    await c.call(
        "POST",
        "/api/auth/sign-in",
        json={"email": email, "password": "wrong wrong wrong"},
        expect=401,
        auth=False,
    )
