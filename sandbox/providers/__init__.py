"""Local fakes of the AI providers, each speaking its provider's exact wire format over HTTP.

Routes: ``/openai/v1`` (chat/completions, images/generations, videos), ``/anthropic/v1/messages``,
``/gemini/v1beta/models/{model}:streamGenerateContent``, ``/mistral/v1/chat/completions``,
``/stability/v2beta/stable-image/generate/{core,ultra,sd3}`` and an OpenAI-compatible
``/compat/v1/chat/completions`` (DeepSeek, OpenRouter, vLLM), and each provider's cheap key
check (model lists and the like, see ``sandbox.providers.keys``). Replies are scripted through
``/sandbox/api/providers`` (see ``sandbox.providers.control``); unscripted calls get a reply that
says plainly it comes from the sandbox.
"""

from __future__ import annotations

from aiohttp import web

from sandbox.providers.anthropic import setup_anthropic
from sandbox.providers.common import PROVIDERS_STATE
from sandbox.providers.control import setup_control
from sandbox.providers.gemini import setup_gemini
from sandbox.providers.keys import setup_keys
from sandbox.providers.openai import setup_openai
from sandbox.providers.stability import setup_stability
from sandbox.providers.state import ProvidersOptions, ProvidersState, count_tokens

__all__ = [
    "PROVIDERS_STATE",
    "ProvidersOptions",
    "ProvidersState",
    "count_tokens",
    "setup_providers",
]


def setup_providers(app: web.Application, options: ProvidersOptions | None = None) -> None:
    app[PROVIDERS_STATE] = ProvidersState(options)
    setup_openai(app)
    setup_anthropic(app)
    setup_gemini(app)
    setup_stability(app)
    setup_keys(app)
    setup_control(app)
