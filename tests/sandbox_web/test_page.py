"""The page and its files as served over HTTP by the sandbox app."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from sandbox.app import create_app
from sandbox.web import setup_page

Client = TestClient[web.Request, web.Application]
ASSET_REF = re.compile(r"""(?:src|href)\s*=\s*["'](/sandbox/static/[^"']+)["']""")
JS_IMPORT = re.compile(r"""\bfrom\s+["']\./([^"']+)["']""")
EXPECTED_TYPES = {".js": "text/javascript", ".css": "text/css"}


@pytest.fixture
async def http() -> AsyncIterator[Client]:
    app = create_app()
    setup_page(app)
    async with TestClient(TestServer(app)) as client:
        yield client


async def page_assets(http: Client) -> dict[str, str]:
    """Every file the page loads (its links and scripts, and the modules they import): path →
    text."""
    page = await (await http.get("/")).text()
    pending = ASSET_REF.findall(page)
    found: dict[str, str] = {}
    while pending:
        path = pending.pop()
        if path in found:
            continue
        response = await http.get(path)
        assert response.status == 200, path
        found[path] = await response.text()
        if path.endswith(".js"):
            pending += [f"/sandbox/static/{name}" for name in JS_IMPORT.findall(found[path])]
    return found


async def test_page_is_served_as_html_that_runs_only_its_own_scripts(http: Client) -> None:
    response = await http.get("/")

    assert response.status == 200
    assert response.content_type == "text/html"
    assert response.charset == "utf-8"
    assert '<html lang="en">' in await response.text()
    policy = response.headers["Content-Security-Policy"]
    assert "script-src 'self'" in policy
    assert "default-src 'self'" in policy


async def test_page_assets_are_served_with_their_content_types(http: Client) -> None:
    assets = await page_assets(http)

    assert {path.rsplit(".", 1)[1] for path in assets} == {"js", "css"}
    assert "/sandbox/static/app.js" in assets
    assert "/sandbox/static/render.js" in assets
    for path in assets:
        response = await http.get(path)
        assert response.content_type == EXPECTED_TYPES["." + path.rsplit(".", 1)[1]], path
        assert response.headers["X-Content-Type-Options"] == "nosniff"


async def test_page_and_assets_load_nothing_from_other_hosts(http: Client) -> None:
    texts = {"/": await (await http.get("/")).text(), **(await page_assets(http))}

    for path, text in texts.items():
        assert not re.search(r"https?://", text), path
        assert not re.search(r"""(?:src|href)\s*=\s*["']//""", text), path
        assert not re.search(r"""url\(\s*["']?(?!data:)[^)"']*//""", text), path
        assert not re.search(r"""(?<![\w-])(?:from|import)\s*\(?\s*["'](?!\./)""", text), path


async def test_page_scripts_never_parse_strings_as_live_markup(http: Client) -> None:
    scripts = {p: t for p, t in (await page_assets(http)).items() if p.endswith(".js")}

    for path, text in scripts.items():
        for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
            assert sink not in text, (path, sink)


@pytest.mark.parametrize(
    "path",
    [
        "/sandbox/static/__init__.py",
        "/sandbox/static/..%2F__init__.py",
        "/sandbox/static/missing.js",
        "/sandbox/static/index.html",
    ],
)
async def test_static_route_serves_only_the_pages_files(http: Client, path: str) -> None:
    response = await http.get(path)

    assert response.status == 404


async def test_setup_page_again_on_the_same_app_keeps_one_page() -> None:
    app = create_app()
    setup_page(app)
    setup_page(app)

    async with TestClient(TestServer(app)) as client:
        response = await client.get("/")
        assert response.status == 200
    pages = [
        r
        for r in app.router.routes()
        if r.method == "GET" and r.resource is not None and r.resource.canonical == "/"
    ]
    assert len(pages) == 1
