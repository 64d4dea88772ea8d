"""Google Gemini ``models/{model}:streamGenerateContent``.

With ``alt=sse`` each chunk is ``data: {GenerateContentResponse}`` followed by CRLF CRLF and the
stream simply ends (no terminator); without it the whole answer is one JSON array of chunks.
``usageMetadata`` on every chunk holds running totals. The key comes in ``x-goog-api-key`` (or
``?key=``); a wrong key is a 400 with reason ``API_KEY_INVALID``.
"""

from __future__ import annotations

import json
import secrets
from typing import Any

from aiohttp import web

from sandbox.providers.common import (
    Plan,
    cut,
    make_plan,
    read_json,
    record,
    send_event,
    start_sse,
    state_of,
)
from sandbox.providers.state import IMAGE_TOKENS, count_tokens

STATUS_CODES = {
    "INVALID_ARGUMENT": 400,
    "PERMISSION_DENIED": 403,
    "RESOURCE_EXHAUSTED": 429,
    "INTERNAL": 500,
    "UNAVAILABLE": 503,
    "DEADLINE_EXCEEDED": 504,
}
MESSAGES = {
    "INTERNAL": "An internal error has occurred. Please retry or report in "
    "https://developers.generativeai.google/guide/troubleshooting",
    "UNAVAILABLE": "The model is overloaded. Please try again later.",
    "RESOURCE_EXHAUSTED": "Resource has been exhausted (e.g. check quota).",
}


def error_body(status: str, message: str, details: list[dict[str, Any]] | None = None) -> dict:
    code = STATUS_CODES.get(status, 500)
    error: dict[str, Any] = {"code": code, "message": message, "status": status}
    if details:
        error["details"] = details
    return {"error": error}


def error(status: str, message: str, details: list[dict[str, Any]] | None = None) -> web.Response:
    return web.json_response(
        error_body(status, message, details), status=STATUS_CODES.get(status, 500)
    )


def _said_and_tokens(body: dict[str, Any]) -> tuple[str, int]:
    tokens = 0
    system = body.get("systemInstruction") or body.get("system_instruction")
    if isinstance(system, dict):
        for part in system.get("parts") or []:
            if isinstance(part, dict):
                tokens += count_tokens(str(part.get("text") or ""))
    said = ""
    for content in body["contents"]:
        texts: list[str] = []
        for part in content.get("parts") or []:
            if not isinstance(part, dict):
                continue
            if "text" in part:
                texts.append(str(part["text"]))
            elif "inlineData" in part or "inline_data" in part:
                tokens += IMAGE_TOKENS
        tokens += sum(count_tokens(t) for t in texts)
        if content.get("role", "user") == "user":
            said = "\n".join(texts)
    return said, tokens


def _validate(body: Any) -> web.Response | None:
    if not isinstance(body, dict):
        return error("INVALID_ARGUMENT", "Invalid JSON payload received.")
    contents = body.get("contents")
    if not isinstance(contents, list) or not contents:
        return error(
            "INVALID_ARGUMENT", "* GenerateContentRequest.contents: contents is not specified\n"
        )
    for i, content in enumerate(contents):
        if not isinstance(content, dict) or content.get("role", "user") not in ("user", "model"):
            return error(
                "INVALID_ARGUMENT",
                f"Please use a valid role: user, model. (contents[{i}])",
            )
        if not isinstance(content.get("parts"), list) or not content["parts"]:
            return error(
                "INVALID_ARGUMENT",
                f"* GenerateContentRequest.contents[{i}].parts: "
                "contents.parts must not be empty.\n",
            )
    return None


async def generate(request: web.Request) -> web.StreamResponse:
    body = await read_json(request)
    record(request, "gemini", body=body)
    target = request.match_info["target"]
    model, _, method = target.partition(":")
    if method != "streamGenerateContent":
        return error("INVALID_ARGUMENT", f"The sandbox serves streamGenerateContent, not {method}.")
    key = request.headers.get("x-goog-api-key") or request.query.get("key")
    if not key:
        return error(
            "PERMISSION_DENIED",
            "Method doesn't allow unregistered callers (callers without established identity). "
            "Please use API Key or other form of API consumer identity to call this API.",
        )
    invalid = _validate(body)
    if invalid is not None:
        return invalid
    said, prompt_tokens = _said_and_tokens(body)
    thinking = ((body.get("generationConfig") or {}).get("thinkingConfig") or {}).get(
        "includeThoughts"
    )
    state = state_of(request)
    plan = make_plan(
        state,
        provider="gemini",
        model=model,
        said=said,
        prompt_tokens=prompt_tokens,
        reasoning_requested=thinking is True,
        script=state.take_script("gemini", model),
    )
    fault = plan.fault
    if fault is not None and fault.kind == "auth":
        return error(
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
    if fault is not None and fault.kind == "429":
        details = []
        if fault.retry_after is not None:
            details.append(
                {
                    "@type": "type.googleapis.com/google.rpc.RetryInfo",
                    "retryDelay": f"{fault.retry_after}s",
                }
            )
        return error("RESOURCE_EXHAUSTED", MESSAGES["RESOURCE_EXHAUSTED"], details)
    if fault is not None and fault.kind == "500":
        status = fault.error_type or "INTERNAL"
        return error(status, MESSAGES.get(status, "Error"))
    if request.query.get("alt") == "sse":
        return await _sse(request, model, plan)
    return await _array(request, model, plan)


class _Chunks:
    """Builds the GenerateContentResponse chunks of one answer with running usage totals."""

    def __init__(self, model: str, plan: Plan) -> None:
        self.model = model
        self.plan = plan
        self.response_id = secrets.token_urlsafe(16)
        self.text = ""
        self.thoughts = ""

    def usage(self) -> dict[str, Any]:
        plan = self.plan
        candidates = count_tokens(self.text)
        thoughts = count_tokens(self.thoughts)
        usage: dict[str, Any] = {
            "promptTokenCount": plan.prompt_tokens,
            "candidatesTokenCount": candidates,
            "totalTokenCount": plan.prompt_tokens + candidates + thoughts,
            "promptTokensDetails": [{"modality": "TEXT", "tokenCount": plan.prompt_tokens}],
        }
        if plan.cached_tokens:
            usage["cachedContentTokenCount"] = plan.cached_tokens
        if thoughts:
            usage["thoughtsTokenCount"] = thoughts
        return usage

    def chunk(self, parts: list[dict[str, Any]], finish: str | None = None) -> dict[str, Any]:
        for part in parts:
            if part.get("thought"):
                self.thoughts += part.get("text", "")
            else:
                self.text += part.get("text", "")
        candidate: dict[str, Any] = {"content": {"parts": parts, "role": "model"}, "index": 0}
        if finish:
            candidate["finishReason"] = finish
        if finish == "SAFETY":
            candidate["safetyRatings"] = [
                {
                    "category": "HARM_CATEGORY_DANGEROUS_CONTENT",
                    "probability": "HIGH",
                    "blocked": True,
                }
            ]
        return {
            "candidates": [candidate],
            "usageMetadata": self.usage(),
            "modelVersion": self.model,
            "responseId": self.response_id,
        }


async def _plan_events(model: str, plan: Plan) -> list[tuple[str, Any]]:
    """The answer as (kind, payload) steps: ``chunk``, ``error`` or ``cut``; delays included."""
    chunks = _Chunks(model, plan)
    steps: list[tuple[str, Any]] = []
    for piece in plan.reasoning_chunks():
        steps.append(("chunk", chunks.chunk([{"text": piece, "thought": True}])))
    pieces = plan.reply_chunks()
    finish = "STOP"
    for i in range(len(pieces) + 1):
        if plan.faulted("cut", i):
            steps.append(("cut", None))
            return steps
        if plan.faulted("in_stream_error", i):
            assert plan.fault is not None
            status = plan.fault.error_type or "INTERNAL"
            steps.append(("error", error_body(status, MESSAGES.get(status, "Error"))))
            return steps
        if plan.faulted("content_filtered", i):
            finish = "SAFETY"
            break
        if i >= len(pieces) - 1:
            break
        steps.append(("chunk", chunks.chunk([{"text": pieces[i]}])))
    last: list[dict[str, Any]] = []
    if finish == "STOP" and pieces:
        last.append({"text": pieces[-1]})
    if plan.reasoning:
        # Thinking models end with a part that carries only a signature.
        last.append({"thoughtSignature": secrets.token_urlsafe(24)})
    if not last:
        last.append({"text": ""})
    steps.append(("chunk", chunks.chunk(last, finish)))
    return steps


async def _sse(request: web.Request, model: str, plan: Plan) -> web.StreamResponse:
    response = await start_sse(request)
    for kind, payload in await _plan_events(model, plan):
        if kind == "cut":
            return cut(request, response)
        await plan.pause()
        await send_event(response, payload, newline="\r\n")
        if kind == "error":
            break
    await response.write_eof()
    return response


async def _array(request: web.Request, model: str, plan: Plan) -> web.StreamResponse:
    steps = await _plan_events(model, plan)
    payloads = [payload for kind, payload in steps if kind != "cut"]
    if steps and steps[-1][0] == "cut":
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        await response.prepare(request)
        await response.write(json.dumps(payloads)[:-1].encode() + b",")
        return cut(request, response)
    return web.json_response(payloads)


def setup_gemini(app: web.Application) -> None:
    app.router.add_post("/gemini/v1beta/models/{target}", generate)
