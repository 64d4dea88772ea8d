"""Deep-link payloads: ``t.me/<bot>?start=<payload>`` and the Mini App's ``startapp``.

Grammar: parts joined by ``__``. ``ref_<code>`` (or a bare referral code) names the inviter;
``src_``, ``med_``, ``cmp_``, ``trm_``, ``cnt_`` carry the UTM source, medium, campaign, term and
content. Example: ``ref_k3j9x2pq__src_vk__cmp_autumn``. Anything else is ignored, never an error.
"""

from __future__ import annotations

import re
import secrets

from core.dto import StartPayload

PAYLOAD_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
STARTAPP_RE = re.compile(r"^[A-Za-z0-9_-]{1,512}$")
REFERRAL_CODE_RE = re.compile(r"^[a-z0-9]{8,16}$")
REFERRAL_ALPHABET = "abcdefghijkmnopqrstuvwxyz23456789"
UTM_KEYS = {
    "src": "utm_source",
    "med": "utm_medium",
    "cmp": "utm_campaign",
    "trm": "utm_term",
    "cnt": "utm_content",
}


def new_referral_code(length: int = 10) -> str:
    return "".join(secrets.choice(REFERRAL_ALPHABET) for _ in range(length))


def parse_start_payload(raw: str | None, *, max_length: int = 64) -> StartPayload:
    if not raw:
        return StartPayload()
    pattern = PAYLOAD_RE if max_length <= 64 else STARTAPP_RE
    if not pattern.fullmatch(raw):
        return StartPayload()
    referral: str | None = None
    utm: dict[str, str] = {}
    for part in raw.split("__"):
        key, sep, value = part.partition("_")
        if sep and key == "ref" and REFERRAL_CODE_RE.fullmatch(value):
            referral = referral or value
        elif sep and key in UTM_KEYS and value:
            utm.setdefault(UTM_KEYS[key], value[:64])
        elif REFERRAL_CODE_RE.fullmatch(part):
            referral = referral or part
    return StartPayload(referral_code=referral, utm=utm)


def referral_payload(code: str) -> str:
    return f"ref_{code}"
