"""A small real HTTP server on 127.0.0.1 that implements the part of Grafana's HTTP API
that ``machi dashboards deploy`` calls, and records every request.

It follows Grafana's documented contract: bearer/basic auth (401 otherwise), 404 for
unknown uids, ``/api/dashboards/db`` assigns ids and bumps ``version``, refuses a stale
``version`` unless ``overwrite`` (412), and a datasource's password is write-only
(answered as ``secureJsonFields.password: true``). No Grafana can run on this machine,
so this is how deploy is tested; rendering is not.
"""

from __future__ import annotations

import base64
import copy
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


class GrafanaRecorder:
    def __init__(self, token: str = "test-token", basic: tuple[str, str] = ("admin", "pw")) -> None:
        self.token = token
        self.basic = basic
        self.requests: list[tuple[str, str]] = []
        self.datasources: dict[str, dict[str, Any]] = {}
        self.folders: dict[str, dict[str, Any]] = {}
        self.dashboards: dict[str, dict[str, Any]] = {}
        self.healthy = True
        self._next_id = 1
        self._lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> GrafanaRecorder:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def writes(self) -> list[tuple[str, str]]:
        return [r for r in self.requests if r[0] != "GET"]

    def _id(self) -> int:
        self._next_id += 1
        return self._next_id

    # --- routing ------------------------------------------------------------------

    def handle(
        self, method: str, path: str, query: dict[str, list[str]], body: Any
    ) -> tuple[int, Any]:
        with self._lock:
            self.requests.append((method, path))
            parts = path.strip("/").split("/")
            if parts[:1] != ["api"]:
                return 404, {"message": "not found"}
            p = parts[1:]
            if p == ["health"] and method == "GET":
                return 200, {"database": "ok" if self.healthy else "failing", "version": "11.0.0"}
            if p[:1] == ["datasources"]:
                return self._datasources(method, p[1:], body)
            if p[:1] == ["folders"]:
                return self._folders(method, p[1:], body)
            if p[:2] == ["dashboards", "db"] and method == "POST":
                return self._save_dashboard(body)
            if p[:2] == ["dashboards", "uid"] and len(p) == 3 and method == "GET":
                d = self.dashboards.get(p[2])
                return (200, copy.deepcopy(d)) if d else (404, {"message": "Dashboard not found"})
            if p == ["search"] and method == "GET":
                tags = set(query.get("tag", []))
                hits = [
                    {
                        "uid": uid,
                        "title": d["dashboard"]["title"],
                        "type": "dash-db",
                        "tags": d["dashboard"].get("tags", []),
                        "folderUid": d["meta"]["folderUid"],
                    }
                    for uid, d in self.dashboards.items()
                    if tags <= set(d["dashboard"].get("tags", []))
                ]
                return 200, hits
            return 404, {"message": f"no route {method} {path}"}

    def _datasources(self, method: str, p: list[str], body: Any) -> tuple[int, Any]:
        if not p and method == "POST":
            uid = body["uid"]
            if uid in self.datasources:
                return 409, {"message": "data source with the same uid already exists"}
            self.datasources[uid] = self._store_ds(body, {"id": self._id()})
            return 200, {"message": "Datasource added", "datasource": self._show_ds(uid)}
        if len(p) == 2 and p[0] == "uid":
            uid = p[1]
            if uid not in self.datasources:
                return 404, {"message": "Data source not found"}
            if method == "GET":
                return 200, self._show_ds(uid)
            if method == "PUT":
                self.datasources[uid] = self._store_ds(body, self.datasources[uid])
                return 200, {"message": "Datasource updated"}
        return 405, {"message": "method not allowed"}

    @staticmethod
    def _store_ds(body: dict[str, Any], old: dict[str, Any]) -> dict[str, Any]:
        stored = {**{k: v for k, v in body.items() if k != "secureJsonData"}, "id": old["id"]}
        password = (body.get("secureJsonData") or {}).get("password") or old.get("_password")
        if password:
            stored["_password"] = password
        return stored

    def _show_ds(self, uid: str) -> dict[str, Any]:
        ds = self.datasources[uid]
        shown = {k: v for k, v in ds.items() if k != "_password"}
        shown["secureJsonFields"] = {"password": True} if "_password" in ds else {}
        return shown

    def _folders(self, method: str, p: list[str], body: Any) -> tuple[int, Any]:
        if not p and method == "POST":
            uid = body["uid"]
            if uid in self.folders:
                return 409, {"message": "a folder with the same uid already exists"}
            self.folders[uid] = {"uid": uid, "title": body["title"], "id": self._id(), "version": 1}
            return 200, self.folders[uid]
        if len(p) == 1:
            f = self.folders.get(p[0])
            if f is None:
                return 404, {"message": "folder not found"}
            if method == "GET":
                return 200, dict(f)
            if method == "PUT":
                if not body.get("overwrite") and body.get("version") != f["version"]:
                    return 412, {"message": "the folder has been changed by someone else"}
                f.update(title=body["title"], version=f["version"] + 1)
                return 200, dict(f)
        return 405, {"message": "method not allowed"}

    def _save_dashboard(self, body: dict[str, Any]) -> tuple[int, Any]:
        dash = copy.deepcopy(body["dashboard"])
        uid, folder = dash.get("uid"), body.get("folderUid", "")
        if folder and folder not in self.folders:
            return 400, {"message": "folder not found"}
        old = self.dashboards.get(uid)
        if old and not body.get("overwrite") and dash.get("version") != old["dashboard"]["version"]:
            return 412, {"status": "version-mismatch", "message": "changed by someone else"}
        dash["id"] = old["dashboard"]["id"] if old else self._id()
        dash["version"] = old["dashboard"]["version"] + 1 if old else 1
        self.dashboards[uid] = {"dashboard": dash, "meta": {"folderUid": folder, "slug": uid}}
        return 200, {"status": "success", "uid": uid, "id": dash["id"], "version": dash["version"]}

    # --- HTTP ---------------------------------------------------------------------

    def _authorized(self, header: str | None) -> bool:
        if header == f"Bearer {self.token}":
            return True
        expected = base64.b64encode(f"{self.basic[0]}:{self.basic[1]}".encode()).decode()
        return header == f"Basic {expected}"

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def _serve(self) -> None:
                url = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                # /api/health is public in Grafana; everything else needs credentials.
                public = url.path == "/api/health"
                if not public and not recorder._authorized(self.headers.get("Authorization")):
                    status, payload = 401, {"message": "Unauthorized"}
                else:
                    body = json.loads(raw) if raw else None
                    status, payload = recorder.handle(
                        self.command, url.path, parse_qs(url.query), body
                    )
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_DELETE = _serve

            def log_message(self, *args: object) -> None:
                pass

        return Handler
