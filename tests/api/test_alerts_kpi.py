"""``alerts_ack_p90_s``: the care theme's time to acknowledge, with k-anonymity."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from api.config import KpiConfig
from api.kpis import KpiEngine, Window
from contract.influx import InfluxV1
from contract.lineprotocol import line

pytestmark = pytest.mark.integration

T0 = datetime(2024, 5, 1, tzinfo=UTC)
MS0 = int(T0.timestamp() * 1000)


def _state(dev: str, typ: str, ack_s: float | None, minute: int, site: str = "a") -> str:
    tags = {"device_id": dev, "site": site, "type": typ, "priority": "high"}
    fields = {"alert_id": f"{dev}{minute}", "state": "acked" if ack_s else "open",
              "tier": 1, "escalated": False, "ack_s": ack_s}  # fmt: skip
    return line("alert_state", tags, fields, MS0 + minute * 60_000)


def _ack(influx: InfluxV1, lines: list[str]) -> dict:
    assert influx.write_lines("\n".join(lines).encode()).status_code == 204
    for i in range(5):  # five residents with readings, so the care theme is disclosed
        wl = line("wearable", {"device_id": f"r{i}", "site": "a"}, {"steps": 1, "seq": 1}, MS0)
        assert influx.write_lines(wl.encode()).status_code == 204
    eng = KpiEngine(influx, KpiConfig(care_k=5))
    # Care scope: a 1 h window is off the public grid (contract.disclosure).
    res = eng.theme("care", Window(T0, T0 + timedelta(hours=1), None), public=False).as_dict()
    return next(k for k in res["kpis"] if k["id"] == "alerts_ack_p90_s")


def test_p90_over_care_alerts_of_enough_residents(influx: InfluxV1) -> None:
    lines = [_state(f"w{i}", "fall", float(10 * (i + 1)), i) for i in range(10)]
    lines.append(_state("w0", "silent", 9999.0, 30))  # device problems do not count
    lines.append(_state("w1", "fall", None, 31))  # not acknowledged yet
    kpi = _ack(influx, lines)
    assert kpi["value"] == 90.0 and kpi["unit"] == "s" and "suppressed" not in kpi


def test_withheld_when_fewer_than_k_residents_were_acknowledged(influx: InfluxV1) -> None:
    kpi = _ack(influx, [_state(f"w{i % 4}", "fall", 20.0, i) for i in range(8)])
    assert kpi["value"] is None and kpi["suppressed"] is True
