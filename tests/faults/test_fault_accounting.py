"""The accounting itself must see every kind of damage, through a real InfluxDB."""

from __future__ import annotations

import time

import pytest

from contract.influx import InfluxV1
from contract.lineprotocol import message_lines
from contract.schema import make_message
from tests.faults.accounting import Ledger, audit_influx

pytestmark = pytest.mark.faults


def _write(influx: InfluxV1, lines: list[str]) -> None:
    r = influx.write_lines("\n".join(lines).encode())
    assert r.status_code == 204, r.text


def test_audit_counts_lost_doubled_and_unexpected(influx: InfluxV1) -> None:
    t0 = time.time_ns() // 1_000_000 - 60_000
    ledger = Ledger()
    msgs = [
        make_message("energy_meter", "m-1", "chuo", seq, [{"t": t0 + seq * 10 + k, "power_w": 1.0}
                                                          for k in range(3)])
        for seq in range(4)
    ]  # fmt: skip
    for m in msgs:
        ledger.add_message(m)
    lines = [ln for m in msgs for ln in message_lines(m)]
    _write(influx, lines)
    clean = audit_influx("clean", ledger, influx)
    assert (clean.sent, clean.stored, clean.lost, clean.duplicated) == (12, 12, 0, 0)
    # The same message again is invisible (InfluxDB keeps one point per series and time).
    _write(influx, message_lines(msgs[0]))
    assert audit_influx("resent", ledger, influx).clean
    # A reading of seq 1 stored again under another site (tag set): a second series.
    _write(influx, [lines[3].replace("site=chuo", "site=kogyo")])
    # A reading of seq 2 stored under a shifted time, and one under another seq.
    m2 = msgs[2]
    shifted = make_message("energy_meter", "m-1", "chuo", 2, [{"t": t0 + 25, "power_w": 1.0}])
    reseq = make_message(
        "energy_meter", "m-1", "chuo", 9, [{"t": m2.readings[0].t, "power_w": 1.0}]
    )
    _write(influx, message_lines(shifted) + message_lines(reseq))
    # Nobody sent this one; and seq 3 never arrives.
    stray = make_message("energy_meter", "m-2", "chuo", 0, [{"t": t0, "power_w": 1.0}])
    _write(influx, message_lines(stray))
    influx.execute(f"DELETE FROM energy_meter WHERE time >= {(t0 + 30) * 1_000_000}")
    a = audit_influx("damaged", ledger, influx)
    print(a.summary())
    # seq 3's three readings, and seq 2's first: the seq-9 write replaced its point.
    assert a.lost == 4
    assert a.duplicated == 3  # another tag set, another time, another seq
    assert a.unexpected == 1
    assert not a.clean


def test_ledger_refuses_two_bodies_for_one_seq() -> None:
    ledger = Ledger()
    ledger.add("m-1", 0, [1, 2])
    ledger.add("m-1", 0, [1, 2])  # a re-send: fine
    with pytest.raises(AssertionError, match="two different bodies"):
        ledger.add("m-1", 0, [1, 3])
