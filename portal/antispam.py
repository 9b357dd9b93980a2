"""Simple spam resistance for the feedback form: signed fill-time tokens and rate limits.

The form carries a token ``<issued ms>.<nonce>.<hmac>`` signed with a server key, fresh
in every page served; a submission whose token is missing, forged, already used, older
than ``max_age_s`` or younger than ``min_fill_s`` (a bot posts at once) is refused.
The per-client limit is a sliding window in memory (one process; behind a proxy the
client is the proxy unless uvicorn trusts its headers).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable

__all__ = ["FormTokens", "RateLimiter", "TokenError"]


class TokenError(ValueError):
    """The form token is not acceptable; the message says what to do."""


class FormTokens:
    def __init__(
        self,
        key: bytes | None,
        min_fill_s: float,
        max_age_s: float = 4 * 3600,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.key = key or secrets.token_bytes(32)
        self.min_fill_s = min_fill_s
        self.max_age_s = max_age_s
        self.clock = clock
        self._used: dict[str, float] = {}  # nonce -> when its token expires anyway
        self._lock = threading.Lock()

    def _sign(self, issued_ms: int, nonce: str, scope: str) -> str:
        msg = f"{issued_ms}|{nonce}|{scope}".encode()
        return hmac.new(self.key, msg, hashlib.sha256).hexdigest()[:32]

    def issue(self, scope: str) -> str:
        """A token for a form about ``scope`` (the theme), issued now."""
        ms = int(self.clock() * 1000)
        nonce = secrets.token_hex(6)
        return f"{ms}.{nonce}.{self._sign(ms, nonce, scope)}"

    def check(self, token: str, scope: str) -> None:
        """Accept a token once; TokenError says what the resident should do."""
        issued, _, rest = token.partition(".")
        nonce, _, mac = rest.partition(".")
        if (
            not issued.isdigit()
            or len(issued) > 16
            or len(nonce) != 12
            or not hmac.compare_digest(mac.encode(), self._sign(int(issued), nonce, scope).encode())
        ):
            raise TokenError("the form is not valid: reload the page and write again")
        now = self.clock()
        age = now - int(issued) / 1000
        if age < self.min_fill_s:
            raise TokenError("the form was sent too quickly: wait a few seconds and send again")
        if age > self.max_age_s:
            raise TokenError("the form has expired: reload the page and send again")
        with self._lock:
            if nonce in self._used:
                raise TokenError("this form was already sent: reload the page to write again")
            self._used[nonce] = int(issued) / 1000 + self.max_age_s
            if len(self._used) > 10_000:  # forget nonces whose tokens have expired anyway
                self._used = {n: exp for n, exp in self._used.items() if exp > now}


class RateLimiter:
    """At most ``limit`` events per ``window_s`` per client; ``hit`` says when to retry."""

    def __init__(
        self, limit: int, window_s: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.limit = limit
        self.window_s = window_s
        self.clock = clock
        self._seen: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def hit(self, client: str) -> float:
        """Count one event; 0.0 if allowed, else the seconds until the next is allowed."""
        now = self.clock()
        with self._lock:
            q = self._seen.setdefault(client, deque())
            while q and q[0] <= now - self.window_s:
                q.popleft()
            if len(q) >= self.limit:
                return max(0.001, q[0] + self.window_s - now)
            q.append(now)
            if len(self._seen) > 100_000:  # bound memory under a spray of addresses
                for c in [
                    c for c, v in self._seen.items() if not v or v[-1] <= now - self.window_s
                ]:
                    del self._seen[c]
            return 0.0
