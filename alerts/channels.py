"""Delivery channels: Apprise URLs (email, JSON/XML webhooks, ntfy, Slack, ...) and the
signed JSON webhook ``hmac+http(s)://`` for nurse-call / 見守り systems.

A channel either accepts a notification or raises :class:`ChannelError` with what went
wrong; retrying is the caller's job (the store keeps the backoff per recipient).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
from dataclasses import dataclass
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit

import apprise
import httpx

__all__ = [
    "HMAC_SCHEMES",
    "ChannelError",
    "Channels",
    "Notification",
    "check_url",
    "display",
    "recipient_key",
    "scheme_of",
    "sign",
]

HMAC_SCHEMES = ("hmac+http", "hmac+https")
SIGNATURE_HEADER = "X-Machi-Signature"
TIMESTAMP_HEADER = "X-Machi-Timestamp"
DELIVERY_HEADER = "X-Machi-Delivery"

_NOTIFY_TYPE = {
    "high": apprise.NotifyType.FAILURE,
    "medium": apprise.NotifyType.WARNING,
    "low": apprise.NotifyType.INFO,
}


class ChannelError(Exception):
    """A channel refused or could not take a notification (retry later)."""


@dataclass(frozen=True)
class Notification:
    """What one recipient gets: a title and text body, and the same facts as JSON."""

    delivery_id: str
    priority: str
    title: str
    body: str
    payload: dict[str, Any]


def scheme_of(url: str) -> str:
    return url.split("://", 1)[0].lower() if "://" in url else ""


def display(url: str) -> str:
    """The URL without credentials or query (those may carry passwords and tokens)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}"


def recipient_key(url: str) -> str:
    """A stable key for a recipient URL, stored instead of the URL (which may hold secrets)."""
    return hashlib.sha256(url.encode()).hexdigest()[:32]


@lru_cache(maxsize=1)
def _apprise_schemes() -> frozenset[str]:
    from apprise.manager_plugins import NotificationManager

    return frozenset(s.lower() for s in NotificationManager().schemas())


def check_url(url: str) -> None:
    """ValueError naming the problem when ``url`` is not a channel machi can deliver to."""
    scheme = scheme_of(url)
    if not scheme:
        raise ValueError(f"{display(url)!r} is not a channel URL (scheme://...)")
    if scheme in HMAC_SCHEMES:
        if not urlsplit(url).hostname:
            raise ValueError(f"{display(url)!r}: the signed webhook needs a host")
        return
    if scheme not in _apprise_schemes():
        raise ValueError(
            f"unknown channel scheme {scheme!r} in {display(url)!r}: use an Apprise URL "
            "(mailto://, mailtos://, json://, xml://, ntfy://, slack://, ...) or hmac+https://"
        )
    if apprise.Apprise.instantiate(url) is None:
        raise ValueError(f"channel URL {display(url)!r} is malformed for scheme {scheme!r}")


def sign(secret: bytes, timestamp: str, body: bytes) -> str:
    """``sha256=<hex>`` over ``timestamp + "." + body`` (the timestamp defeats replays)."""
    mac = hmac.new(secret, timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={mac}"


class Channels:
    """Sends one notification to one recipient URL."""

    def __init__(self, hmac_secret: str | None, timeout_s: float = 10.0) -> None:
        self._secret = hmac_secret.encode() if hmac_secret else None
        self._timeout = timeout_s
        self._http = httpx.Client(timeout=timeout_s)

    def close(self) -> None:
        self._http.close()

    def send(self, url: str, n: Notification) -> None:
        if scheme_of(url) in HMAC_SCHEMES:
            self._send_hmac(url, n)
        else:
            self._send_apprise(url, n)

    def _send_hmac(self, url: str, n: Notification) -> None:
        if self._secret is None:
            raise ChannelError("no signing secret: set MACHI_ALERTS_HMAC_SECRET")
        target = url.split("+", 1)[1]
        body = json.dumps(n.payload, sort_keys=True, separators=(",", ":")).encode()
        ts = str(int(time.time()))
        headers = {
            "Content-Type": "application/json",
            TIMESTAMP_HEADER: ts,
            SIGNATURE_HEADER: sign(self._secret, ts, body),
            DELIVERY_HEADER: n.delivery_id,
        }
        try:
            r = self._http.post(target, content=body, headers=headers)
        except httpx.HTTPError as exc:
            raise ChannelError(f"{type(exc).__name__}: {exc}") from None
        if not 200 <= r.status_code < 300:
            raise ChannelError(f"HTTP {r.status_code}")

    def _send_apprise(self, url: str, n: Notification) -> None:
        a = apprise.Apprise()
        if not a.add(url):
            raise ChannelError("Apprise cannot use this URL")
        with apprise.LogCapture(level=logging.WARNING) as captured:
            ok = a.notify(
                body=n.body,
                title=n.title,
                notify_type=_NOTIFY_TYPE[n.priority],
                body_format=apprise.NotifyFormat.TEXT,
            )
        if not ok:
            text = captured.getvalue().strip().splitlines()
            raise ChannelError(text[-1][:300] if text else "Apprise reported a failure")
