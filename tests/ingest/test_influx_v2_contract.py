"""The InfluxDB 2.x native write path, against a recorder of the v2 /api/v2/write contract.

No InfluxDB 2.x server can be installed here (Debian ships 1.6.7), so this checks only
what machi sends and how it handles the answers: the live path tested everywhere else
is the v1 API. See README "Which InfluxDB paths are tested live".
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest

from contract.settings import Settings
from ingest.writer import V2Backend, Writer, make_backend


class Recorder:
    def __init__(self) -> None:
        self.lines: list[str] = []
        self.requests: list[dict[str, object]] = []
        self.fail_next = 0


@pytest.fixture
def v2() -> Iterator[tuple[str, Recorder]]:
    rec = Recorder()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 -- http.server's naming
            url = urlsplit(self.path)
            body = self.rfile.read(int(self.headers["Content-Length"])).decode()
            rec.requests.append(
                {
                    "path": url.path,
                    "query": parse_qs(url.query),
                    "auth": self.headers["Authorization"],
                }
            )
            if rec.fail_next:
                rec.fail_next -= 1
                return self._answer(503, {"code": "unavailable", "message": "try later"})
            if url.path != "/api/v2/write":
                return self._answer(404, {"code": "not found", "message": url.path})
            lines = body.splitlines()
            bad = [ln for ln in lines if "BAD" in ln]
            if bad:
                # v2 semantics: a 422 partial write stores the other points.
                rec.lines += [ln for ln in lines if "BAD" not in ln]
                return self._answer(
                    422, {"code": "unprocessable entity", "message": "field type conflict"}
                )
            rec.lines += lines
            self.send_response(204)
            self.end_headers()

        def _answer(self, status: int, doc: dict[str, str]) -> None:
            data = json.dumps(doc).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", rec
    server.shutdown()


def settings_for(url: str) -> Settings:
    return Settings(influx_url=url, influx_token="tok", influx_org="city-org", influx_bucket="city")


def test_v2_is_chosen_by_org_and_bucket(v2: tuple[str, Recorder]) -> None:
    url, _ = v2
    assert isinstance(make_backend(settings_for(url)), V2Backend)


def test_v2_writes_with_token_org_bucket_and_ms_precision(v2: tuple[str, Recorder]) -> None:
    url, rec = v2
    lines = [f"energy_meter,device_id=m{i},site=s power_w=1.0,seq=0i {1000 + i}" for i in range(10)]
    assert Writer(make_backend(settings_for(url))).write(lines) == []
    assert rec.lines == lines
    req = rec.requests[0]
    assert req["auth"] == "Token tok"
    assert req["query"] == {"org": ["city-org"], "bucket": ["city"], "precision": ["ms"]}


def test_v2_retries_then_isolates_a_partial_write(v2: tuple[str, Recorder]) -> None:
    url, rec = v2
    rec.fail_next = 2
    lines = [f"m,device_id=d{i} f=1.0 {i}" for i in range(8)]
    lines[5] = "m,device_id=BAD f=1.0 5"
    rejected = Writer(make_backend(settings_for(url)), max_retry_s=0.05).write(lines)
    assert [(r.index, r.line) for r in rejected] == [(5, lines[5])]
    assert "field type conflict" in rejected[0].error
    assert set(rec.lines) == set(lines) - {lines[5]}
