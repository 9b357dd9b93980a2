"""Registry rules, the exported password/ACL files and the ``machi devices`` CLI."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from contract.topics import Topics
from devices.hashing import verify_secret
from devices.mosquitto_files import acl_file, password_file
from devices.registry import Registry, RegistryError, load, save
from machi.cli import main

T = Topics("city")


def _acl_blocks(text: str) -> dict[str, list[str]]:
    blocks: dict[str, list[str]] = {}
    current: list[str] | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("user "):
            current = blocks.setdefault(line.split(" ", 1)[1], [])
        else:
            assert current is not None, f"ACL line outside a user block: {line!r}"
            current.append(line)
    return blocks


def _sample() -> tuple[Registry, dict[str, str]]:
    reg = Registry()
    _, s1 = reg.add("meter-1", kind="energy_meter", site="s1")
    reg.add("meter-2", kind="energy_meter", site="s1", with_secret=False)
    reg.add("bus-1", kind="bus", site="r1", with_secret=False)
    _, s2 = reg.add("gw-1", role="agent", site="s1", devices=("meter-2", "bus-1"))
    _, s3 = reg.add("ingest", role="ingest")
    _, s4 = reg.add("api", role="api")
    assert s1 and s2 and s3 and s4
    return reg, {"meter-1": s1, "gw-1": s2, "ingest": s3, "api": s4}


def test_acl_blocks_are_least_privilege() -> None:
    reg, _ = _sample()
    blocks = _acl_blocks(acl_file(reg, T))
    assert set(blocks) == {"meter-1", "gw-1", "ingest", "api"}  # meter-2/bus-1: no creds
    assert sorted(blocks["meter-1"]) == [
        "topic read city/v1/stored/meter-1",
        "topic write city/v1/status/meter-1",
        "topic write city/v1/telemetry/energy_meter/meter-1",
    ]
    assert sorted(blocks["gw-1"]) == [
        "topic read city/v1/stored/bus-1",
        "topic read city/v1/stored/meter-2",
        "topic write city/v1/status/gw-1",
        "topic write city/v1/telemetry/bus/bus-1",
        "topic write city/v1/telemetry/energy_meter/meter-2",
    ]
    assert sorted(blocks["ingest"]) == [
        "topic read city/v1/status/+",
        "topic read city/v1/telemetry/+/+",
        "topic write city/v1/alerts/#",
        "topic write city/v1/deadletter/#",
        "topic write city/v1/stored/#",
    ]
    assert all(line.startswith("topic read") for line in blocks["api"])


def test_revoked_identities_vanish_from_both_files() -> None:
    reg, secrets = _sample()
    reg.revoke("meter-1")
    reg.revoke("meter-2")
    pw = password_file(reg)
    assert "meter-1:" not in pw and "gw-1:" in pw
    blocks = _acl_blocks(acl_file(reg, T))
    assert "meter-1" not in blocks
    # a revoked device behind an agent loses its topic on the agent too
    assert sorted(blocks["gw-1"]) == [
        "topic read city/v1/stored/bus-1",
        "topic write city/v1/status/gw-1",
        "topic write city/v1/telemetry/bus/bus-1",
    ]
    for line in pw.splitlines():
        user, encoded = line.split(":", 1)
        if user in secrets:
            assert verify_secret(secrets[user], encoded)


def test_registry_rules() -> None:
    reg, _ = _sample()
    with pytest.raises(RegistryError, match="exists"):
        reg.add("meter-1", kind="energy_meter", site="s1")
    reg.revoke("meter-1")
    with pytest.raises(RegistryError, match="never reused"):
        reg.add("meter-1", kind="energy_meter", site="s1")
    with pytest.raises(RegistryError, match="already revoked"):
        reg.revoke("meter-1")
    with pytest.raises(RegistryError, match="not an active device"):
        reg.add("gw-2", role="agent", devices=("meter-1",))
    with pytest.raises(RegistryError, match="needs --kind"):
        reg.add("x1", site="s1")
    with pytest.raises(ValueError, match="invalid"):
        reg.add("a/b", kind="bus", site="s1")
    with pytest.raises(ValueError, match="invalid"):
        reg.add("a+", kind="bus", site="s1")
    with pytest.raises(ValueError, match="site"):
        reg.add("ok-1", kind="bus", site="#")
    with pytest.raises(RegistryError, match="only devices"):
        reg.add("svc", role="api", with_secret=False)
    assert "x1" not in reg.identities and "ok-1" not in reg.identities


def test_rotate_replaces_the_hash() -> None:
    reg, secrets = _sample()
    new = reg.rotate("meter-1")
    encoded = reg.get("meter-1").secret_hash
    assert (
        encoded and verify_secret(new, encoded) and not verify_secret(secrets["meter-1"], encoded)
    )


def test_file_holds_hashes_only_and_is_private(tmp_path: Path) -> None:
    reg, secrets = _sample()
    path = tmp_path / "reg" / "devices.json"
    save(reg, path)
    text = path.read_text()
    assert not any(s in text for s in secrets.values())
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    again = load(path)
    assert again.identities == reg.identities


def test_corrupt_registry_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "devices.json"
    path.write_text('{"version": 1, "identities": [{"id": "a b", "role": "device"}]}')
    with pytest.raises(RegistryError, match="bad identity"):
        load(path)
    path.write_text("{not json")
    with pytest.raises(RegistryError, match="not valid JSON"):
        load(path)


def test_cli_add_list_revoke_export(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    reg = ["devices", "--registry", str(tmp_path / "d.json")]
    assert main([*reg, "add", "wear-9", "--kind", "wearable", "--site", "home-1"]) == 0
    secret = capsys.readouterr().out.strip()
    assert len(secret) >= 43
    stored = load(tmp_path / "d.json").get("wear-9").secret_hash
    assert stored and verify_secret(secret, stored)

    assert main([*reg, "add", "wear-9", "--kind", "wearable", "--site", "home-1"]) == 1
    assert "exists" in capsys.readouterr().err

    assert main([*reg, "list", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["id"] for r in rows] == ["wear-9"] and "secret_hash" not in rows[0]

    passwd, acl = tmp_path / "out" / "passwd", tmp_path / "out" / "acl"
    args = ["export", "--passwd", str(passwd), "--acl", str(acl), "--topic-prefix", "town"]
    assert main([*reg, *args]) == 0
    assert "user wear-9\n" in acl.read_text()
    assert "town/v1/telemetry/wearable/wear-9" in acl.read_text()
    assert passwd.read_text().startswith("wear-9:$7$")

    assert main([*reg, "revoke", "wear-9"]) == 0
    assert main([*reg, *args]) == 0
    assert passwd.read_text() == "" and "wear-9" not in acl.read_text()
    capsys.readouterr()
    assert main([*reg, "list"]) == 0
    assert capsys.readouterr().out == ""
    assert main([*reg, "list", "--all"]) == 0
    assert "REVOKED" in capsys.readouterr().out

    bad = ["export", "--passwd", str(passwd), "--acl", str(acl), "--topic-prefix", "a/#"]
    assert main([*reg, *bad]) == 1
    assert "topic prefix" in capsys.readouterr().err


def test_save_keeps_a_mode_the_operator_widened(tmp_path: Path) -> None:
    """ingest (another uid in compose) reads the registry: a chmod 0644 must survive edits,
    while a new file is private and write bits never spread."""
    path = tmp_path / "devices.json"
    reg = Registry()
    reg.add("m1", kind="energy_meter", site="s1", with_secret=False)
    save(reg, path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    path.chmod(0o666)
    save(reg, path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644


def test_alerts_account_reads_the_alert_stream_only() -> None:
    reg = Registry()
    reg.add("alerts-a", role="alerts")
    assert _acl_blocks(acl_file(reg, T))["alerts-a"] == ["topic read city/v1/alerts/+/+"]
