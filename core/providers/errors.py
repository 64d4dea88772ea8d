"""Domain errors raised at the provider boundary.

Every transport and HTTP failure of a model provider becomes one of these. ``detail`` is for logs:
it names the provider, the HTTP status and the provider's own error code and message with any
API key scrubbed out (see ``scrub``). ``params`` always carries ``provider``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from core.errors import DomainError
from core.i18n import N_


class ProviderError(DomainError):
    code = "provider_error"
    msgid = N_("The model could not answer. Please try again later.")


class ProviderNotConfigured(ProviderError):
    code = "provider_not_configured"
    msgid = N_("This model is not available on this server. Please pick another model.")


class ProviderAuthFailed(ProviderError):
    code = "provider_auth_failed"
    msgid = N_(
        "This model is unavailable because of a configuration problem on our side. "
        "Please pick another model."
    )


class ProviderRateLimited(ProviderError):
    """``params["retry_after"]``: whole seconds the provider asked to wait, or None."""

    code = "provider_rate_limited"
    msgid = N_("The model is receiving too many requests right now. Please try again shortly.")


class ProviderUnavailable(ProviderError):
    code = "provider_unavailable"
    msgid = N_(
        "The model is temporarily unavailable. Please try again later or pick another model."
    )


class ProviderQuotaExceeded(ProviderUnavailable):
    """The provider account ran out of credit or quota; retrying does not help."""

    code = "provider_quota_exceeded"


class ProviderStreamBroken(ProviderError):
    code = "provider_stream_broken"
    msgid = N_("The model stopped in the middle of its reply. Please try again.")


class ContentFiltered(ProviderError):
    code = "content_filtered"
    msgid = N_("The model's safety filter blocked this request. Please rephrase it.")


class ProviderBadRequest(ProviderError):
    code = "provider_bad_request"
    msgid = N_("The model could not accept this request. Try a shorter message or another model.")


# Key-shaped strings, whole or masked the way providers echo them back ("sk-abc1****wxyz").
_KEYLIKE = re.compile(
    r"[-_A-Za-z0-9]*\*{3,}[-_A-Za-z0-9]*"
    r"|\b(?:sk-|sk_|AIza)[-_A-Za-z0-9]{8,}"
)
MAX_DETAIL = 300


def scrub(text: str, secrets: Iterable[str | None] = ()) -> str:
    """The text without the given secrets or anything shaped like an API key, on one line and
    shortened for logs."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "[key]")
    text = _KEYLIKE.sub("[key]", text)
    text = " ".join(text.split())
    if len(text) > MAX_DETAIL:
        text = text[: MAX_DETAIL - 1] + "…"
    return text
