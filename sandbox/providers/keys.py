"""The cheap authenticated calls an operator's preflight makes to see that a key works.

``GET /openai/v1/models``, ``/mistral/v1/models``, ``/compat/v1/models`` (DeepSeek),
``/compat/v1/key`` (OpenRouter's key information), ``/anthropic/v1/models``,
``/gemini/v1beta/models`` and ``/stability/v1/user/balance``: each answers in its provider's
shape, refuses a missing key as the provider does, and refuses the key with the provider's own
401 (Gemini: 400 ``API_KEY_INVALID``) when a script with the fault ``auth`` for that provider
and no model is queued (``POST /sandbox/api/providers/script``).
"""

from __future__ import annotations

from aiohttp import web

from sandbox.providers import anthropic, gemini, openai, stability
from sandbox.providers.common import mask_key, record, state_of

MODELS = {
    "openai": ["gpt-5-mini", "gpt-image-1", "text-embedding-3-small", "sora-2"],
    "mistral": ["mistral-small-latest", "magistral-medium-latest"],
    "compat": ["deepseek-chat", "deepseek-reasoner"],
    "anthropic": ["claude-sonnet-4-5", "claude-haiku-4-5"],
    "gemini": ["gemini-2.5-flash", "gemini-2.5-pro"],
}
CREATED = 1_700_000_000


def _refused(request: web.Request, provider: str) -> bool:
    """A queued ``auth`` fault for this provider (with no model) refuses the key, once."""
    script = state_of(request).take_script(provider, "")
    return script is not None and script.fault is not None and script.fault.kind == "auth"


async def openai_models(request: web.Request) -> web.Response:
    flavour = request.match_info["flavour"]
    record(request, flavour)
    key = openai.bearer(request)
    if key is None:
        if flavour == "mistral":
            return openai.error(flavour, 401, "Unauthorized", type_="authentication_error")
        return openai.error(flavour, 401, openai.NO_KEY, type_="invalid_request_error")
    if _refused(request, flavour):
        if flavour == "mistral":
            return openai.error(flavour, 401, "Unauthorized", type_="authentication_error")
        return openai.error(
            flavour,
            401,
            f"Incorrect API key provided: {mask_key(key)}.",
            type_="invalid_request_error",
            code="invalid_api_key",
        )
    owner = {"openai": "openai", "mistral": "mistralai", "compat": "deepseek"}[flavour]
    data = [
        {"id": model, "object": "model", "created": CREATED, "owned_by": owner}
        for model in MODELS[flavour]
    ]
    return web.json_response({"object": "list", "data": data})


async def openrouter_key(request: web.Request) -> web.Response:
    record(request, "compat")
    if openai.bearer(request) is None or _refused(request, "compat"):
        return web.json_response(
            {"error": {"message": "No auth credentials found", "code": 401}}, status=401
        )
    return web.json_response(
        {
            "data": {
                "label": "sandbox",
                "usage": 0,
                "limit": None,
                "is_free_tier": False,
                "limit_remaining": None,
            }
        }
    )


async def anthropic_models(request: web.Request) -> web.Response:
    record(request, "anthropic")
    if not request.headers.get("x-api-key", "").strip():
        return anthropic.error(401, "authentication_error", "x-api-key header is required")
    if _refused(request, "anthropic"):
        return anthropic.error(401, "authentication_error", "invalid x-api-key")
    data = [
        {
            "type": "model",
            "id": model,
            "display_name": model,
            "created_at": "2026-01-01T00:00:00Z",
        }
        for model in MODELS["anthropic"]
    ]
    return web.json_response(
        {"data": data, "has_more": False, "first_id": data[0]["id"], "last_id": data[-1]["id"]}
    )


async def gemini_models(request: web.Request) -> web.Response:
    record(request, "gemini")
    if not (request.headers.get("x-goog-api-key") or request.query.get("key")):
        return gemini.error(
            "PERMISSION_DENIED",
            "Method doesn't allow unregistered callers (callers without established identity). "
            "Please use API Key or other form of API consumer identity to call this API.",
        )
    if _refused(request, "gemini"):
        return gemini.error(
            "INVALID_ARGUMENT",
            "API key not valid. Please pass a valid API key.",
            [
                {
                    "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                    "reason": "API_KEY_INVALID",
                    "domain": "googleapis.com",
                    "metadata": {"service": "generativelanguage.googleapis.com"},
                }
            ],
        )
    models = [
        {
            "name": f"models/{model}",
            "displayName": model,
            "supportedGenerationMethods": ["generateContent", "streamGenerateContent"],
        }
        for model in MODELS["gemini"]
    ]
    return web.json_response({"models": models})


async def stability_balance(request: web.Request) -> web.Response:
    record(request, "stability")
    scheme, _, key = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not key.strip() or _refused(request, "stability"):
        return stability.error(401, "unauthorized", "authorization: missing or invalid API key")
    return web.json_response({"credits": 100.0})


def setup_keys(app: web.Application) -> None:
    app.router.add_get("/{flavour:openai|mistral|compat}/v1/models", openai_models)
    app.router.add_get("/compat/v1/key", openrouter_key)
    app.router.add_get("/anthropic/v1/models", anthropic_models)
    app.router.add_get("/gemini/v1beta/models", gemini_models)
    app.router.add_get("/stability/v1/user/balance", stability_balance)
