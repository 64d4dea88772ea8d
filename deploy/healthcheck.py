"""The container's health check: is the web app of this container answering /healthz?

Run by the image's HEALTHCHECK (slim images have no curl). /healthz answers 200 for as long as
the process serves, even while Postgres or Redis is down (restarting would not bring them back):
exit 0 then, 1 otherwise.
"""

from __future__ import annotations

import os
import sys
import urllib.request


def main() -> int:
    port = int(os.environ.get("WEB__PORT", "8080"))
    url = f"http://127.0.0.1:{port}/healthz"
    try:
        # A fixed loopback http URL, not user input.
        with urllib.request.urlopen(url, timeout=4) as response:  # nosec B310
            return 0 if response.status == 200 else 1
    except OSError as exc:
        print(f"{url}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
