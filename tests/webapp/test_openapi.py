"""The OpenAPI document describes every /api route the app has, and says so when one is not."""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.webapp.conftest import ClientMaker, make_context
from webapp.app import create_app
from webapp.openapi import undocumented

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
    for method, path in routes:
        op = doc["paths"][path][method]
        assert op["summary"] and op["summary"] != "Undocumented", (method, path)
        assert op["responses"], (method, path)
        names = [p["name"] for p in op.get("parameters", []) if p["in"] == "path"]
        assert names == re.findall(r"\{(\w+)\}", path), (method, path)
    schemas = doc["components"]["schemas"]
    for ref in _refs(doc):
        assert ref.startswith("#/components/schemas/") and ref.rsplit("/", 1)[1] in schemas


async def test_the_chat_routes_state_their_shapes_and_security(
    aiohttp_client: ClientMaker, engine: AsyncEngine, redis: Redis
) -> None:
    client = await aiohttp_client(create_app(make_context(engine, redis)))
    doc = await (await client.get("/api/openapi.json")).json()
    assert doc["components"]["securitySchemes"]["bearer"] == {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
    }
    chat = doc["paths"]["/api/chat"]["post"]
    assert chat["security"] == [{"bearer": []}]
    body = chat["requestBody"]["content"]["application/json"]["schema"]
    assert body["required"] == ["text"]
    assert "text/event-stream" in chat["responses"]["200"]["content"]
    assert set(chat["x-sse-events"]) == {"start", "delta", "reasoning", "error", "done"}
    assert "409" in chat["responses"] and "401" in chat["responses"]
    messages = doc["paths"]["/api/conversations/{conversation_id}/messages"]["get"]
    [parameter] = messages["parameters"]
    assert parameter == {
        "name": "conversation_id",
        "in": "path",
        "required": True,
        "schema": {"type": "integer"},
    }
    listed = messages["responses"]["200"]["content"]["application/json"]["schema"]
    assert listed["properties"]["messages"]["items"] == {"$ref": "#/components/schemas/Message"}
    assert doc["paths"]["/api/openapi.json"]["get"]["security"] == []


async def test_a_route_without_a_description_is_named(engine: AsyncEngine, redis: Redis) -> None:
    app = create_app(make_context(engine, redis))

    async def secret_feature(request: web.Request) -> web.Response:
        return web.json_response({})

    app.router.add_get("/api/secret-feature/{item_id}", secret_feature)
    app.router.add_get("/not-api", secret_feature)
    assert undocumented(app) == ["GET /api/secret-feature/{item_id}"]
