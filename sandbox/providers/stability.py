"""Stability AI v2beta ``stable-image/generate/{ultra,core,sd3}``: multipart form in, the image
out (raw with ``accept: image/*``, base64 JSON with ``accept: application/json``), metadata in the
``finish-reason`` and ``seed`` headers; errors as ``{"id", "name", "errors"}``."""

from __future__ import annotations

import base64
import json
import secrets

from aiohttp import web

from sandbox.providers.common import error_headers, make_plan, record, state_of
from sandbox.providers.png import make_png
from sandbox.providers.state import count_tokens

ASPECT_RATIOS = {
    "1:1": (1024, 1024),
    "16:9": (1344, 768),
    "21:9": (1536, 640),
    "2:3": (832, 1216),
    "3:2": (1216, 832),
    "4:5": (896, 1088),
    "5:4": (1088, 896),
    "9:16": (768, 1344),
    "9:21": (640, 1536),
}
SD3_MODELS = frozenset({"sd3.5-large", "sd3.5-large-turbo", "sd3.5-medium", "sd3.5-flash"})
MAX_SEED = 4294967294


def error(
    status: int, name: str, *errors: str, headers: dict[str, str] | None = None
) -> web.Response:
    body = {"id": secrets.token_hex(16), "name": name, "errors": list(errors)}
    return web.json_response(body, status=status, headers=headers)


async def generate(request: web.Request) -> web.StreamResponse:
    endpoint = request.match_info["endpoint"]
    if not request.content_type.startswith("multipart/form-data"):
        record(request, "stability")
        return error(400, "bad_request", "content-type: must be multipart/form-data")
    posted = await request.post()
    form = {k: str(v) for k, v in posted.items() if isinstance(v, str)}
    record(request, "stability", form=form)
    auth = request.headers.get("Authorization", "")
    scheme, _, key = auth.partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        return error(401, "unauthorized", "authorization: missing or invalid Bearer API key")
    accept = request.headers.get("Accept", "image/*")
    if accept not in ("image/*", "application/json"):
        return error(400, "bad_request", "accept: must be image/* or application/json")
    prompt = form.get("prompt", "")
    if not 1 <= len(prompt) <= 10000:
        return error(400, "bad_request", "prompt: is required and must be 1-10000 characters")
    aspect = form.get("aspect_ratio", "1:1")
    if aspect not in ASPECT_RATIOS:
        return error(400, "bad_request", f"aspect_ratio: must be one of {', '.join(ASPECT_RATIOS)}")
    if form.get("output_format", "png") != "png":
        return error(400, "bad_request", "output_format: the sandbox renders png only")
    model = endpoint
    if endpoint == "sd3":
        model = form.get("model", "sd3.5-large")
        if model not in SD3_MODELS:
            return error(
                400, "bad_request", f"model: must be one of {', '.join(sorted(SD3_MODELS))}"
            )
    seed_text = form.get("seed", "0")
    if not seed_text.isdigit() or int(seed_text) > MAX_SEED:
        return error(400, "bad_request", f"seed: must be an integer from 0 to {MAX_SEED}")
    seed = int(seed_text) or secrets.randbelow(MAX_SEED) + 1
    state = state_of(request)
    plan = make_plan(
        state,
        provider="stability",
        model=model,
        said=prompt,
        prompt_tokens=count_tokens(prompt),
        reasoning_requested=False,
        script=state.take_script("stability", model),
    )
    fault = plan.fault
    finish = "SUCCESS"
    if fault is not None:
        if fault.kind == "auth":
            return error(401, "unauthorized", "authorization: invalid API key")
        if fault.kind == "429":
            return error(
                429,
                "rate_limit_exceeded",
                "You have exceeded the rate limit of 150 requests within a 10 second period.",
                headers=error_headers(fault),
            )
        if fault.kind == "500":
            return error(
                500,
                "internal_error",
                "An unexpected server error has occurred, please try again later.",
            )
        if fault.kind == "content_filtered":
            if fault.error_type == "CONTENT_FILTERED":
                finish = "CONTENT_FILTERED"
            else:
                return error(
                    403,
                    "content_moderation",
                    "Your request was flagged by our content moderation system, as a result "
                    "your request was denied and you were not charged.",
                )
    width, height = ASPECT_RATIOS[aspect]
    png = make_png(width, height, seed=seed)
    headers = {"finish-reason": finish, "seed": str(seed), "x-request-id": secrets.token_hex(16)}
    if accept == "application/json":
        body = {"image": base64.b64encode(png).decode(), "finish_reason": finish, "seed": seed}
        return web.Response(
            body=json.dumps(body).encode(),
            headers={**headers, "Content-Type": "application/json; type=image/png"},
        )
    return web.Response(body=png, content_type="image/png", headers=headers)


def setup_stability(app: web.Application) -> None:
    app.router.add_post(
        "/stability/v2beta/stable-image/generate/{endpoint:ultra|core|sd3}", generate
    )
