from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import UTC, datetime, timedelta
from urllib.parse import quote, urlencode

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from core.security.initdata import InitDataExpired, InitDataInvalid, InitDataVerifier
from core.security.tokens import SessionInvalid, issue_access_token, read_access_token
from sandbox.telegram.initdata import sign_fields

TOKEN = "123456:ABC-DEF1234ghIkl-zyx57W2v1u123ew11"
SIGNED_AT = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
VECTOR = (
    "auth_date=1700000000&query_id=AAHdF6IQAAAAAN0XohDhrOrc&user=%7B%22id%22%3A123456789%2C"
    "%22first_name%22%3A%22Alice%22%2C%22username%22%3A%22alice_dev%22%2C%22language_code%22"
    "%3A%22en%22%7D&hash=f57f4bfe2af8937570e38a37fad84e30561d7edc555b91c6ba95b8e1d22bf11e"
)
SIGNED_AT = datetime.fromtimestamp(1_700_000_000, UTC)
VERIFIER = InitDataVerifier(TOKEN, timedelta(hours=1))
SECRET = "x" * 40


def test_telegram_test_vector_verifies() -> None:
    data = VERIFIER.verify(VECTOR, now=SIGNED_AT + timedelta(minutes=5))
    assert (data.user.id, data.user.username, data.user.language_code) == (
        123456789,
        "alice_dev",
        "en",
    )
    assert data.auth_date == SIGNED_AT
    assert data.query_id == "AAHdF6IQAAAAAN0XohDhrOrc"


@pytest.mark.parametrize(
    "tampered",
    [
        VECTOR.replace("Alice", "Alicia"),
        VECTOR.replace("hash=f57f", "hash=e57f"),
        VECTOR + "&start_param=ref_evil",
        VECTOR.replace("query_id=AAHdF6IQAAAAAN0XohDhrOrc&", ""),
        VECTOR + "&auth_date=1700000000",
        VECTOR.split("&hash=")[0],
        "",
        "not a query string at all",
    ],
)
def test_tampered_duplicated_or_unsigned_data_is_refused(tampered: str) -> None:
    with pytest.raises(InitDataInvalid):
        VERIFIER.verify(tampered, now=SIGNED_AT)


def test_another_bots_token_does_not_verify() -> None:
    other = InitDataVerifier("654321:ZYX-other-token-abcdefghijklmno", timedelta(hours=1))
    with pytest.raises(InitDataInvalid):
        other.verify(VECTOR, now=SIGNED_AT)


def test_stale_and_future_data_are_refused() -> None:
    with pytest.raises(InitDataExpired):
        VERIFIER.verify(VECTOR, now=SIGNED_AT + timedelta(hours=1, seconds=1))
    with pytest.raises(InitDataInvalid):
        VERIFIER.verify(VECTOR, now=SIGNED_AT - timedelta(minutes=5))


def test_a_login_widget_hash_is_not_accepted_as_mini_app_data() -> None:
    fields = {"auth_date": "1700000000", "first_name": "Alice", "id": "123456789"}
    check = "\n".join(f"{k}={v}" for k, v in sorted(fields.items()))
    widget_hash = hmac.new(
        hashlib.sha256(TOKEN.encode()).digest(), check.encode(), hashlib.sha256
    ).hexdigest()
    forged = urlencode({**fields, "user": '{"id":123456789}', "hash": widget_hash}, quote_via=quote)
    with pytest.raises(InitDataInvalid):
        VERIFIER.verify(forged, now=SIGNED_AT)


def test_the_sandbox_signs_data_this_verifier_accepts() -> None:
    raw = sign_fields(
        {"auth_date": "1700000000", "user": '{"id":7,"first_name":"Я"}', "start_param": "x"},
        TOKEN,
    )
    data = VERIFIER.verify(raw, now=SIGNED_AT)
    assert (data.user.id, data.user.first_name, data.start_param) == (7, "Я", "x")


def test_access_tokens_round_trip_and_expire() -> None:
    now = datetime(2026, 11, 24, tzinfo=UTC)
    token, claims = issue_access_token(42, secret=SECRET, now=now, ttl=timedelta(hours=1))
    assert read_access_token(token, secret=SECRET, now=now).user_id == 42
    with pytest.raises(SessionInvalid):
        read_access_token(token, secret=SECRET, now=claims.expires_at)
    with pytest.raises(SessionInvalid):
        read_access_token(token, secret="y" * 40, now=now)
    with pytest.raises(SessionInvalid):
        read_access_token(token[:-2] + "xx", secret=SECRET, now=now)


def test_unsigned_tokens_are_refused() -> None:
    import jwt

    forged = jwt.encode(
        {"sub": "1", "iat": 0, "exp": 4_000_000_000, "aud": "netroom", "jti": "x"},
        key="",
        algorithm="none",
    )
    with pytest.raises(SessionInvalid):
        read_access_token(forged, secret=SECRET, now=datetime(2026, 11, 24, tzinfo=UTC))


def _signed_for_third_parties(key: Ed25519PrivateKey, bot_token: str) -> str:
    """Launch data as Telegram signs it since Bot API 8.0: the Ed25519 ``signature`` over
    ``<bot id>:WebAppData`` and the other fields, then the HMAC over all fields with it."""
    fields = {
        "auth_date": str(int(SIGNED_AT.timestamp())),
        "query_id": "AAHdF6IQAAAAAN0XohDhrOrc",
        "user": '{"id":279058397,"first_name":"Vlad"}',
    }
    message = "\n".join(
        [f"{bot_token.split(':')[0]}:WebAppData"] + [f"{k}={v}" for k, v in sorted(fields.items())]
    )
    signature = base64.urlsafe_b64encode(key.sign(message.encode())).rstrip(b"=").decode()
    return sign_fields({**fields, "signature": signature}, bot_token)


def test_the_optional_ed25519_signature_is_checked_with_the_configured_key() -> None:
    telegram_key = Ed25519PrivateKey.generate()
    public = telegram_key.public_key().public_bytes_raw()
    verifier = InitDataVerifier(TOKEN, timedelta(hours=1), ed25519_public_key=public)
    good = _signed_for_third_parties(telegram_key, TOKEN)
    assert verifier.verify(good, now=SIGNED_AT).user.id == 279058397
    # Someone who knows the bot token (a fake server) can make a valid hash, not the signature.
    forged = _signed_for_third_parties(Ed25519PrivateKey.generate(), TOKEN)
    with pytest.raises(InitDataInvalid):
        verifier.verify(forged, now=SIGNED_AT)
    unsigned = sign_fields(
        {"auth_date": str(int(SIGNED_AT.timestamp())), "user": '{"id":1,"first_name":"A"}'}, TOKEN
    )
    with pytest.raises(InitDataInvalid):
        verifier.verify(unsigned, now=SIGNED_AT)
    # Without a configured key the HMAC alone decides, as before.
    assert InitDataVerifier(TOKEN, timedelta(hours=1)).verify(forged, now=SIGNED_AT)
