"""Container healthcheck for the machi image: ``http URL`` or ``tcp HOST PORT``.

Exit 0 when the target answers (HTTP 2xx / TCP connect), 1 otherwise, so Docker marks
the container unhealthy. Standard library only: it runs in the slim image.
"""

from __future__ import annotations

import socket
import sys
import urllib.request


def main(argv: list[str]) -> int:
    try:
        if argv[:1] == ["http"] and len(argv) == 2:
            with urllib.request.urlopen(argv[1], timeout=4) as r:  # noqa: S310 (fixed URL)
                return 0 if 200 <= r.status < 300 else 1
        if argv[:1] == ["tcp"] and len(argv) == 3:
            with socket.create_connection((argv[1], int(argv[2])), timeout=4):
                return 0
    except OSError as exc:
        print(f"unhealthy: {exc}", file=sys.stderr)
        return 1
    print("usage: machi-healthcheck http URL | tcp HOST PORT", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
