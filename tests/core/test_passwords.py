"""Password hashing and rules: the stored format, salts, constant-time checks, the length rules
in characters, and hashing off the event loop."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import time

import pytest

from core.security import passwords
from core.security.passwords import WeakPassword


def test_the_stored_form_is_pbkdf2_sha256_with_600000_iterations_and_a_16_byte_salt() -> None:
    stored = passwords.hash_password_sync("correct horse")
    algorithm, iterations, salt_b64, hash_b64 = stored.split("$")
    salt, digest = base64.b64decode(salt_b64), base64.b64decode(hash_b64)
    assert (algorithm, iterations, len(salt), len(digest)) == ("pbkdf2_sha256", "600000", 16, 32)
    assert digest == hashlib.pbkdf2_hmac("sha256", b"correct horse", salt, 600_000)


def test_the_same_password_gets_a_different_salt_each_time() -> None:
    first, second = (passwords.hash_password_sync("same password") for _ in range(2))
    assert first != second
    assert passwords.verify_password_sync("same password", first)
    assert passwords.verify_password_sync("same password", second)


def test_a_wrong_password_or_a_damaged_hash_does_not_verify() -> None:
    stored = passwords.hash_password_sync("correct horse", iterations=1000)
    assert passwords.verify_password_sync("correct horse", stored)
    assert not passwords.verify_password_sync("correct horsE", stored)
    assert not passwords.verify_password_sync("", stored)
    for damaged in (
        "",
        "plain",
        stored.replace("pbkdf2_sha256", "md5"),
        stored.rsplit("$", 1)[0] + "$!!!",
        stored.replace("$1000$", "$0$"),
    ):
        assert not passwords.verify_password_sync("correct horse", damaged)


def test_the_iteration_count_stored_is_honoured_and_flags_a_rehash() -> None:
    old = passwords.hash_password_sync("pass phrase", iterations=1000)
    assert passwords.verify_password_sync("pass phrase", old)
    assert passwords.needs_rehash(old)
    assert not passwords.needs_rehash(passwords.hash_password_sync("pass phrase"))


def test_unicode_forms_of_the_same_password_match() -> None:
    composed, decomposed = "café-pass", "cafe\u0301-pass"
    stored = passwords.hash_password_sync(composed, iterations=1000)
    assert passwords.verify_password_sync(decomposed, stored)


@pytest.mark.parametrize(
    "password", ["", "seven77", " " * 8, "\t" * 20, "\u3000" * 9, "x" * 129, "я" * 129]
)
def test_passwords_outside_the_rules_are_refused(password: str) -> None:
    with pytest.raises(WeakPassword):
        passwords.check_rules(password)


@pytest.mark.parametrize("password", ["eight888", "пароль12", "x" * 128, "я" * 128, " padded  "])
def test_passwords_within_the_rules_pass(password: str) -> None:
    passwords.check_rules(password)


async def test_hashing_runs_off_the_event_loop() -> None:
    ticks = 0
    stop = asyncio.Event()

    async def ticker() -> None:
        nonlocal ticks
        while not stop.is_set():
            ticks += 1
            await asyncio.sleep(0.005)

    task = asyncio.create_task(ticker())
    started = time.perf_counter()
    stored = await passwords.hash_password("a long pass phrase")
    assert await passwords.verify_password("a long pass phrase", stored)
    elapsed = time.perf_counter() - started
    stop.set()
    await task
    # The loop kept turning while two full hashes were computed.
    assert elapsed > 0.05
    assert ticks >= elapsed / 0.005 / 4


async def test_an_unknown_account_costs_a_full_hash_and_never_matches() -> None:
    await passwords.verify_password("warm up", None)
    stored = await passwords.hash_password("something")
    unknown_times, wrong_times = [], []
    # The fastest of several tries: the machine may be busy with other work in between.
    for _ in range(3):
        started = time.perf_counter()
        assert not await passwords.verify_password("anything", None)
        unknown_times.append(time.perf_counter() - started)
        started = time.perf_counter()
        assert not await passwords.verify_password("anything", stored)
        wrong_times.append(time.perf_counter() - started)
    assert min(unknown_times) > 0.5 * min(wrong_times)
