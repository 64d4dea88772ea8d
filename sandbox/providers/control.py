"""The fake providers' control API, JSON under ``/sandbox/api/providers``:

- ``POST /script`` a script ``{provider?, model?, reply?, reasoning?, chunk_delay_ms?,
  chunk_size?, cached_tokens?, fault?: {kind, after_chunks?, retry_after?, error_type?}, times?,
  video_polls?}`` or a list of them → 201 ``{scripts}`` (the whole queue). Scripts form a FIFO
  queue; a request takes the first one matching its provider and model, ``times`` times.
  ``DELETE /script`` empties the queue; ``GET /script`` shows it.
- ``GET /requests?provider=`` → ``{requests}``, the last requests the fakes received (method,
  path, query, headers, JSON body or form fields), oldest first; ``DELETE /requests`` forgets them.

Fault kinds: ``429`` and ``500`` (HTTP errors before any byte, ``retry_after`` in seconds),
``auth`` (the provider's own 401, or Gemini's 400 API_KEY_INVALID), ``cut`` (the connection drops
after ``after_chunks`` chunks), ``in_stream_error`` (the provider's in-stream error after
``after_chunks`` chunks), ``content_filtered`` (the provider's filtered finish, or its moderation
error for images and videos). Errors are 400 ``{"error": "..."}``.
"""

from __future__ import annotations

from aiohttp import web

from sandbox.providers.common import read_json, state_of
from sandbox.providers.state import Script


async def post_script(request: web.Request) -> web.Response:
    data = await read_json(request)
    items = data if isinstance(data, list) else [data]
    try:
        scripts = [Script.from_json(item) for item in items]
    except ValueError as exc:
        return web.json_response({"error": str(exc)}, status=400)
    state = state_of(request)
    state.scripts.extend(scripts)
    return web.json_response({"scripts": [s.to_json() for s in state.scripts]}, status=201)


async def get_scripts(request: web.Request) -> web.Response:
    return web.json_response({"scripts": [s.to_json() for s in state_of(request).scripts]})


async def delete_scripts(request: web.Request) -> web.Response:
    state_of(request).scripts.clear()
    return web.json_response({"scripts": []})


async def get_requests(request: web.Request) -> web.Response:
    provider = request.query.get("provider")
    entries = [
        entry
        for entry in state_of(request).requests
        if provider is None or entry["provider"] == provider
    ]
    return web.json_response({"requests": entries})


async def delete_requests(request: web.Request) -> web.Response:
    state_of(request).requests.clear()
    return web.json_response({"requests": []})


def setup_control(app: web.Application) -> None:
    app.router.add_post("/sandbox/api/providers/script", post_script)
    app.router.add_get("/sandbox/api/providers/script", get_scripts)
    app.router.add_delete("/sandbox/api/providers/script", delete_scripts)
    app.router.add_get("/sandbox/api/providers/requests", get_requests)
    app.router.add_delete("/sandbox/api/providers/requests", delete_requests)
