"""Loopback receivers for alert notifications: an SMTP server (aiosmtpd) and a plain
HTTP webhook receiver. Used by the tests, the benchmark and the demo; each records what
it got and when, and can be told to fail."""

from __future__ import annotations

import email
import email.policy
import hashlib
import hmac
import json
import logging
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from aiosmtpd.controller import Controller

from machi.servers import free_port

__all__ = ["Mail", "Post", "SmtpReceiver", "WebhookReceiver"]

# aiosmtpd logs every SMTP command at INFO.
logging.getLogger("mail.log").setLevel(logging.WARNING)


@dataclass(frozen=True)
class Mail:
    at: float  # time.time() when the server accepted it
    mail_from: str
    rcpt_tos: tuple[str, ...]
    subject: str
    body: str


@dataclass(frozen=True)
class Post:
    at: float
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        try:
            return json.loads(self.body)
        except ValueError:
            return None

    def signature_ok(self, secret: str) -> bool:
        ts = self.headers.get("x-machi-timestamp", "")
        mac = hmac.new(secret.encode(), ts.encode() + b"." + self.body, hashlib.sha256)
        return hmac.compare_digest(
            self.headers.get("x-machi-signature", ""), "sha256=" + mac.hexdigest()
        )


class SmtpReceiver:
    """An SMTP server on 127.0.0.1 (no TLS, no auth) that keeps every message."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.mails: list[Mail] = []
        self.fail = False  # answer 451 (try again later) while set
        self._lock = threading.Lock()
        self._controller = Controller(self, hostname="127.0.0.1", port=self.port)

    async def handle_DATA(self, _server: Any, _session: Any, envelope: Any) -> str:  # noqa: N802
        if self.fail:
            return "451 4.3.0 try again later"
        msg = email.message_from_bytes(envelope.content, policy=email.policy.default)
        part = msg.get_body(preferencelist=("plain", "html"))
        text = part.get_content() if part is not None else ""
        with self._lock:
            self.mails.append(
                Mail(
                    time.time(),
                    envelope.mail_from,
                    tuple(envelope.rcpt_tos),
                    str(msg["subject"]),
                    text,
                )
            )
        return "250 OK"

    def url(self, to: str = "desk@care.example", sender: str = "alerts@machi.example") -> str:
        """The Apprise URL for this server: plain SMTP, no TLS."""
        return f"mailto://127.0.0.1:{self.port}?from={sender}&to={to}&mode=insecure"

    def to(self, rcpt: str) -> list[Mail]:
        with self._lock:
            return [m for m in self.mails if rcpt in m.rcpt_tos]

    def start(self) -> SmtpReceiver:
        self._controller.start()
        return self

    def stop(self) -> None:
        self._controller.stop()

    def __enter__(self) -> SmtpReceiver:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@dataclass
class _State:
    posts: list[Post] = field(default_factory=list)
    fail_status: dict[str, int] = field(default_factory=dict)  # path -> status to answer
    lock: threading.Lock = field(default_factory=threading.Lock)


class WebhookReceiver:
    """An HTTP server on 127.0.0.1 that records each POST and answers 200 (or the
    status set in ``fail_status[path]``)."""

    def __init__(self) -> None:
        self.state = _State()
        state = self.state

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n)
                status = state.fail_status.get(self.path, 200)
                if status == 200:
                    with state.lock:
                        state.posts.append(
                            Post(
                                time.time(),
                                self.path,
                                {k.lower(): v for k, v in self.headers.items()},
                                body,
                            )
                        )
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *_a: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.port = self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def url(self, path: str, scheme: str = "json") -> str:
        return f"{scheme}://127.0.0.1:{self.port}{path}"

    @property
    def fail_status(self) -> dict[str, int]:
        return self.state.fail_status

    def at(self, path: str) -> list[Post]:
        with self.state.lock:
            return [p for p in self.state.posts if p.path == path]

    def start(self) -> WebhookReceiver:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self) -> WebhookReceiver:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
