"""BrouteSource over the pty Wi-SUN module + meter simulator (pyserial)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from contract.settings import ConfigError
from firmware_bridge.echonet_broute.simulator import PASSWORD, RBID, BrouteSimulator
from firmware_bridge.echonet_broute.source import BrouteSource
from firmware_bridge.registry import make_source
from firmware_bridge.testing import open_source, read_n, unplug_and_replug


def _source(sim: BrouteSimulator, module: str = "bp35a1", password: str = PASSWORD) -> BrouteSource:
    return open_source(
        {
            "type": "echonet_broute",
            "device_id": "meter-b1",
            "port": str(sim.path),
            "broute_id": RBID,
            "broute_password": password,
            "module": module,
            "interval_s": 0.05,
            "timeout_s": 0.4,
            "join_timeout_s": 1.0,
        },
        BrouteSource,
        "energy_meter",
    )


def _read_n(src: BrouteSource, n: int, limit: float = 8.0) -> list[dict]:
    """The first ``n`` instantaneous readings (fixed-time ones are tested on their own);
    a session join takes a few seconds."""
    out: list[dict] = []
    deadline = time.monotonic() + limit
    while len(out) < n and time.monotonic() < deadline:
        out += [r for r in read_n(src, 1, limit=limit) if "power_w" in r]
    return out[:n] if len(out) >= n else out


@pytest.mark.parametrize(
    "layout,module,echo",
    [("a1", "bp35a1", True), ("c0", "bp35c0", False), ("c0_lqi", "bp35c0", True)],
)
def test_join_and_exact_values(tmp_path: Path, layout: str, module: str, echo: bool) -> None:
    with BrouteSimulator(tmp_path, layout=layout, echo=echo) as sim:
        src = _source(sim, module)
        try:
            got = _read_n(src, 6)
        finally:
            src.close()
    assert len(got) == 6 and got == sim.sent[:6]
    assert any(r["power_w"] < 0 for r in got)  # the export reading came through signed
    assert got[0]["energy_import_kwh"] == 12345.9  # 123459 x 0.1 kWh, coefficient refused -> 1
    assert src.joins == 1 and src.take_rejects() == []


def test_event_29_rejoins(tmp_path: Path) -> None:
    with BrouteSimulator(tmp_path, layout="c0") as sim:
        src = _source(sim, "bp35c0")
        try:
            assert _read_n(src, 2)
            sim.expire_session()
            time.sleep(0.1)
            got = _read_n(src, 2)
        finally:
            src.close()
    assert src.joins == 2 and len(got) == 2 and all(r in sim.sent for r in got)


def test_wrong_password_does_not_hang_or_emit(tmp_path: Path) -> None:
    with BrouteSimulator(tmp_path) as sim:
        src = _source(sim, password="XXXXXXXXXXXX")  # noqa: S106 - a wrong one on purpose
        try:
            t0 = time.monotonic()
            assert src.read() == [] and src.read() == []
            assert time.monotonic() - t0 < 5
        finally:
            src.close()
    assert src.joins == 0


@pytest.mark.parametrize(
    "mode,reason", [("bad_checksum", "bad_length"), ("noise", "noise"), ("truncated", "noise")]
)
def test_faults_counted_and_data_flows(tmp_path: Path, mode: str, reason: str) -> None:
    with BrouteSimulator(tmp_path, echo=False) as sim:
        src = _source(sim)
        try:
            assert _read_n(src, 1)
            sim.set_fault(mode, frames=3)  # the EVENT 21, OK and ERXUDP of the next Get
            got = _read_n(src, 3)
        finally:
            src.close()
    reasons = [r for r, _ in src.take_rejects()]
    assert reason in reasons if mode != "truncated" else set(reasons) & {"noise", "truncated"}
    assert len(got) == 3 and all(r in sim.sent for r in got)


def test_silence_then_rejoin(tmp_path: Path) -> None:
    with BrouteSimulator(tmp_path) as sim:
        src = _source(sim)
        try:
            assert _read_n(src, 1)
            sim.set_fault("silence")
            t0 = time.monotonic()
            assert src.read() == []
            assert time.monotonic() - t0 < 2
            for _ in range(3):
                src.read()  # three unanswered Gets -> the session counts as lost
            sim.clear_fault()
            got = _read_n(src, 1)
        finally:
            src.close()
    assert got and src.joins == 2


def test_disappear_and_come_back(tmp_path: Path) -> None:
    with BrouteSimulator(tmp_path) as sim:
        src = _source(sim)
        try:
            assert _read_n(src, 1)
            unplug_and_replug(src, sim)
            got = _read_n(src, 1)
        finally:
            src.close()
            src.close()
    assert got and got[0] == sim.sent[-1] and src.joins == 2


@pytest.mark.parametrize(
    "change,match",
    [
        ({"broute_id": "short"}, "broute_id"),
        ({"broute_password": "x"}, "broute_password"),
        ({"module": "bp99"}, "module"),
    ],
)
def test_config_errors(change: dict, match: str) -> None:
    cfg = {
        "type": "echonet_broute",
        "device_id": "m",
        "port": "/dev/null",
        "broute_id": RBID,
        "broute_password": PASSWORD,
        **change,
    }
    with pytest.raises(ConfigError, match=match):
        make_source(cfg)
