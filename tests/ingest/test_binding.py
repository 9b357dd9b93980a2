"""Device binding against real Mosquitto, InfluxDB and ingest: the registry decides
which device may send what, for which site; everything refused is dead-lettered and
counted, and the good messages around it are stored."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from contract.influx import InfluxV1
from contract.schema import make_message
from contract.settings import ConfigError, Settings
from devices.registry import Registry, editing, save
from ingest.deadletter import read_dead_letters
from ingest.service import IngestService
from machi.cli import main
from machi.testkit import Publisher, wait_until


def now_ms() -> int:
    return time.time_ns() // 1_000_000


@pytest.fixture
def registry(tmp_path: Path) -> Path:
    """meter-a (own credential) at kita; gw-1 publishes for meter-b (minami) and wear-b;
    wear-1 is a wearable; meter-r was revoked."""
    reg = Registry()
    reg.add("meter-a", kind="energy_meter", site="kita")
    reg.add("wear-1", kind="wearable", site="kita")
    reg.add("meter-r", kind="energy_meter", site="kita")
    reg.revoke("meter-r")
    reg.add("meter-b", kind="energy_meter", site="minami", with_secret=False)
    reg.add("wear-b", kind="wearable", site="higashi")  # own credential, also behind gw-1
    reg.add("gw-1", role="agent", site="gw-site", devices=("meter-b", "wear-b"))
    path = tmp_path / "devices.json"
    save(reg, path)
    return path


def meter(device_id: str, site: str, seq: int, kind: str = "energy_meter"):
    reading = {"t": now_ms() - 1000 + seq, "power_w": 100.0 + seq}
    if kind == "wearable":
        reading = {"t": now_ms() - 1000 + seq, "heart_rate_bpm": 70.0}
    return make_message(kind, device_id, site, seq, [reading])


def rows(influx: InfluxV1, measurement: str = "energy_meter") -> list[dict]:
    return influx.rows(f'SELECT seq, site, device_id FROM "{measurement}"')


def publish(settings: Settings, msgs: list) -> None:
    pub = Publisher(settings, f"pub-{time.monotonic_ns()}")
    for m in msgs:
        pub.publish(m)
    assert pub.flush(20)
    pub.close()


def wait_rejects(svc: IngestService, n: int) -> int:
    return wait_until(lambda: svc.counts["rejected"], lambda c: c >= n, timeout=20)


def test_spoofed_site_is_dead_lettered_and_good_messages_around_it_are_stored(
    settings: Settings, influx: InfluxV1, ingest_factory: Callable, registry: Path, tmp_path: Path
) -> None:
    """The issue's probe: meter-a, registered at kita, says "site": "minami"."""
    svc = ingest_factory(registry=registry, open_mode=False)
    publish(
        settings,
        [meter("meter-a", "kita", 1), meter("meter-a", "minami", 2), meter("meter-a", "kita", 3)],
    )
    got = wait_until(lambda: rows(influx), lambda r: len(r) >= 2, timeout=20)
    assert wait_rejects(svc, 1) == 1
    time.sleep(0.5)  # nothing else arrives late
    got = rows(influx)
    assert sorted((r["seq"], r["site"]) for r in got) == [(1, "kita"), (3, "kita")]
    assert influx.rows("SELECT count(seq) FROM energy_meter WHERE site = 'minami'") == []
    assert svc.reject_counts == {"wrong_site": 1}
    assert svc.metrics.rejects.labels("wrong_site")._value.get() == 1
    (dl,) = read_dead_letters(tmp_path / "deadletter.jsonl")
    assert dl["reason"] == "wrong_site"
    assert "registered at site 'kita'" in dl["detail"] and "'minami'" in dl["detail"]
    assert json.loads(dl["payload"])["seq"] == 2


def test_unknown_revoked_and_wrong_kind_each_have_their_reason(
    settings: Settings, influx: InfluxV1, ingest_factory: Callable, registry: Path, tmp_path: Path
) -> None:
    svc = ingest_factory(registry=registry, open_mode=False)
    publish(
        settings,
        [
            meter("meter-z", "kita", 1),  # never registered
            meter("meter-r", "kita", 1),  # revoked
            meter("wear-1", "kita", 1),  # a wearable sending as an energy meter
            meter("gw-1", "kita", 1),  # an agent id is not a device
            meter("meter-a", "kita", 7),  # good, between the bad ones
        ],
    )
    assert wait_rejects(svc, 4) == 4
    got = wait_until(lambda: rows(influx), lambda r: len(r) >= 1, timeout=20)
    assert [(r["device_id"], r["seq"]) for r in got] == [("meter-a", 7)]
    assert svc.reject_counts == {"unknown_device": 2, "revoked_device": 1, "wrong_kind": 1}
    by_device = {
        json.loads(d["payload"])["device_id"]: d["reason"]
        for d in read_dead_letters(tmp_path / "deadletter.jsonl")
    }
    assert by_device == {
        "meter-z": "unknown_device",
        "meter-r": "revoked_device",
        "wear-1": "wrong_kind",
        "gw-1": "unknown_device",
    }


def test_agent_published_devices_get_their_registered_site(
    settings: Settings, influx: InfluxV1, ingest_factory: Callable, registry: Path
) -> None:
    svc = ingest_factory(registry=registry, open_mode=False)
    publish(
        settings,
        [
            meter("meter-b", "gw-site", 1),  # the agent stamps its own site: minami wins
            meter("meter-b", "kita", 2),  # or another district: minami still wins
            meter("wear-b", "gw-site", 1, kind="wearable"),  # own credential, fronted by gw-1
        ],
    )
    got = wait_until(lambda: rows(influx), lambda r: len(r) >= 2, timeout=20)
    assert sorted((r["seq"], r["site"]) for r in got) == [(1, "minami"), (2, "minami")]
    wear = wait_until(lambda: rows(influx, "wearable"), lambda r: len(r) >= 1, timeout=20)
    assert [(r["device_id"], r["site"]) for r in wear] == [("wear-b", "higashi")]
    assert svc.counts["rejected"] == 0
    assert svc.metrics.site_rewrites._value.get() == 3


def test_registry_changes_apply_without_restart(
    settings: Settings, influx: InfluxV1, ingest_factory: Callable, registry: Path
) -> None:
    svc = ingest_factory(registry=registry, open_mode=False)
    publish(settings, [meter("meter-n", "nishi", 1), meter("meter-a", "kita", 1)])
    assert wait_rejects(svc, 1) == 1
    assert svc.reject_counts == {"unknown_device": 1}
    # What an operator does while ingest runs: add a device, revoke another.
    with editing(registry) as reg:
        reg.add("meter-n", kind="energy_meter", site="nishi")
        reg.revoke("meter-a")
    assert svc.binding is not None
    reloads = svc.binding.reloads
    time.sleep(svc.binding.poll_s + 0.2)
    publish(settings, [meter("meter-n", "nishi", 2)])  # triggers the poll, then is checked
    wait_until(lambda: svc.binding.reloads if svc.binding else 0, lambda n: n > reloads)
    publish(settings, [meter("meter-n", "nishi", 3), meter("meter-a", "kita", 2)])
    got = wait_until(lambda: rows(influx), lambda r: len(r) >= 3, timeout=20)
    assert sorted((r["device_id"], r["seq"]) for r in got) == [
        ("meter-a", 1),
        ("meter-n", 2),
        ("meter-n", 3),
    ]
    assert wait_rejects(svc, 2) == 2
    assert svc.reject_counts == {"unknown_device": 1, "revoked_device": 1}
    # A broken edit keeps the last good registry in force.
    registry.write_text("{ not json")
    time.sleep(svc.binding.poll_s + 0.2)
    publish(settings, [meter("meter-n", "nishi", 4)])
    wait_until(lambda: rows(influx), lambda r: len(r) >= 4, timeout=20)
    assert svc.reject_counts == {"unknown_device": 1, "revoked_device": 1}


def test_missing_or_broken_registry_stops_ingest_at_start(
    settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = ["ingest", "--mqtt-url", settings.mqtt_url, "--influx-url", settings.influx_url,
            "--metrics-port", "-1", "--dead-letter-file", str(tmp_path / "dl.jsonl")]  # fmt: skip
    assert main(base) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--registry" in err[0] and "--open-mode" in err[0]
    assert main([*base, "--registry", str(tmp_path / "nope.json")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "nope.json does not exist" in err[0]
    broken = tmp_path / "broken.json"
    broken.write_text('{"version": 1, "identities": [{"id": "x y", "role": "device"}]}')
    assert main([*base, "--registry", str(broken)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "bad identity" in err[0]
    assert main([*base, "--registry", str(broken), "--open-mode"]) == 2
    assert "exclude each other" in capsys.readouterr().err


def test_open_mode_is_logged_and_accepts_any_device(
    settings: Settings,
    influx: InfluxV1,
    ingest_factory: Callable,
    caplog: pytest.LogCaptureFixture,
) -> None:
    with pytest.raises(ConfigError, match="no device registry"):
        ingest_factory(open_mode=False)
    caplog.set_level("WARNING", logger="machi.ingest.binding")
    ingest_factory(open_mode=True)
    assert any("OPEN MODE" in r.getMessage() for r in caplog.records)
    publish(settings, [meter("anything-1", "anywhere", 1)])
    got = wait_until(lambda: rows(influx), lambda r: len(r) >= 1, timeout=20)
    assert [(r["device_id"], r["site"]) for r in got] == [("anything-1", "anywhere")]


def test_events_worker_applies_the_same_binding(
    settings: Settings, influx: InfluxV1, registry: Path
) -> None:
    """A wearable that claims another district raises no alert there (machi events)."""
    from ingest.binding import Binding
    from ingest.events.care import CareRules
    from ingest.events.worker import EventsOptions, EventsWorker

    w = EventsWorker(
        settings,
        CareRules(),
        None,
        EventsOptions(client_id="ev-bind-" + settings.topic_prefix),
        binding=Binding(registry),
    )
    w.start()
    try:
        assert w.connected.wait(10)
        time.sleep(0.3)  # the SUBACK
        t = now_ms() - 5000
        fall = [{"t": t, "fall": True}]
        publish(
            settings,
            [
                make_message("wearable", "wear-1", "minami", 1, fall),  # spoofed site
                make_message("wearable", "wear-z", "kita", 1, fall),  # unknown device
                make_message("wearable", "wear-1", "kita", 2, [{"t": t + 1, "fall": True}]),
            ],
        )
        rows = wait_until(
            lambda: influx.rows('SELECT state, device_id, site, "type" FROM care_alert'),
            lambda r: len(r) >= 1,
            timeout=20,
        )
        wait_until(lambda: w.stats["messages"], lambda n: n >= 3, timeout=20)
        assert [(r["device_id"], r["site"], r["type"]) for r in rows] == [
            ("wear-1", "kita", "fall")
        ]
        assert w.stats["rejected_wrong_site"] == 1 and w.stats["rejected_unknown_device"] == 1
    finally:
        w.stop()


def test_events_cli_needs_a_registry_or_open_mode(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["events", "run", "--mqtt-url", settings.mqtt_url]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--open-mode" in err[0]
