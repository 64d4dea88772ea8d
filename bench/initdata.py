"""Mini App initData verification: median microseconds per ``InitDataVerifier.verify`` of a valid
launch, beside the bare HMAC-SHA256 of the same check string in the same run (the floor any
verification pays). The bar: under 25 µs.

    python -m bench.initdata [--rounds 7] [--number 20000]
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import statistics
import time
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qsl

from core.security.initdata import InitDataVerifier
from sandbox.telegram.initdata import sign_init_data

BOT_TOKEN = "7000000001:" + "B" * 35
BAR_US = 25.0


def per_call_us(call: object, number: int, rounds: int) -> float:
    """The median over ``rounds`` of the mean time of ``number`` calls, in microseconds."""
    assert callable(call)
    samples = []
    for _ in range(rounds):
        started = time.perf_counter()
        for _ in range(number):
            call()
        samples.append((time.perf_counter() - started) / number * 1e6)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--number", type=int, default=20_000)
    args = parser.parse_args()
    now = datetime.now(UTC)
    # A launch as Telegram makes it: a user with the usual fields, a query id, a start param.
    raw = sign_init_data(
        BOT_TOKEN,
        user={
            "id": 7_000_000_123,
            "first_name": "Mina",
            "last_name": "Petrova",
            "username": "mina_p",
            "language_code": "ru",
            "is_premium": True,
            "allows_write_to_pm": True,
            "photo_url": "https://t.me/i/userpic/320/mina.svg",
        },
        auth_date=int(now.timestamp()),
        start_param="ref_ABC123",
    )
    verifier = InitDataVerifier(BOT_TOKEN, timedelta(hours=1))
    assert verifier.verify(raw, now=now).user.id == 7_000_000_123
    key = hmac.new(b"WebAppData", BOT_TOKEN.encode(), hashlib.sha256).digest()
    fields = dict(parse_qsl(raw))
    fields.pop("hash")
    check = "\n".join(f"{k}={v}" for k, v in sorted(fields.items())).encode()

    def baseline() -> None:
        hmac.new(key, check, hashlib.sha256).hexdigest()

    def verify() -> None:
        verifier.verify(raw, now=now)

    base = per_call_us(baseline, args.number, args.rounds)
    full = per_call_us(verify, args.number, args.rounds)
    print(f"initData of {len(raw)} bytes; rounds={args.rounds} calls/round={args.number}")
    print(f"bare HMAC-SHA256 of the check string: median {base:.2f} µs")
    print(f"InitDataVerifier.verify (valid initData): median {full:.2f} µs")
    print(f"ratio verify / HMAC: {full / base:.1f}")
    print(f"bar {BAR_US:.0f} µs: {'met' if full < BAR_US else 'NOT met'}")


if __name__ == "__main__":
    main()
