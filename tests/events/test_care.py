"""Care episode rules: sustained thresholds, hysteresis, redelivery and restore."""

from __future__ import annotations

import pytest

from contract.schema import WearableReading
from ingest.events.care import CareRules, CareTracker


def hr(t_s: int, bpm: float) -> WearableReading:
    return WearableReading(t=t_s * 1000, heart_rate_bpm=bpm)


def states(events: list) -> list[tuple[str, str, int, int]]:
    return [(e.type, e.state, e.t // 1000, e.episode_ms // 1000) for e in events]


def test_sustained_high_heart_rate_opens_once_and_closes_after_clear() -> None:
    tr = CareTracker()
    high = [hr(t, 130) for t in range(0, 70, 10)]  # 0..60 s
    assert states(tr.process("w1", "s", high[:6])) == []  # 0..50 s: not yet 60 s
    assert states(tr.process("w1", "s", high[6:])) == [("hr_high", "open", 60, 60)]
    normal = [hr(t, 80) for t in range(70, 140, 10)]
    # Closes at the first normal reading >= 60 s after the last abnormal one (60 s).
    assert states(tr.process("w1", "s", normal)) == [("hr_high", "closed", 120, 60)]
    # Redelivery of everything: nothing new.
    assert tr.process("w1", "s", high + normal) == []


def test_short_spike_and_flapping_do_not_alert_twice() -> None:
    tr = CareTracker()
    assert tr.process("w", "s", [hr(0, 130), hr(30, 130), hr(40, 80), hr(50, 130)]) == []
    tr2 = CareTracker()
    ev = tr2.process("w", "s", [hr(t, 40 if t % 20 else 45) for t in range(0, 200, 10)])
    assert states(ev) == [("hr_low", "open", 60, 60)]
    # A normal reading 30 s after a low one does not close (clear is 60 s).
    assert tr2.process("w", "s", [hr(220, 70), hr(230, 40), hr(260, 70)]) == []
    assert states(tr2.process("w", "s", [hr(290, 70)])) == [("hr_low", "closed", 290, 60)]


def test_spo2_and_fall_open_immediately() -> None:
    tr = CareTracker(CareRules(fall_clear_s=300))
    ev = tr.process(
        "w",
        "s",
        [WearableReading(t=1000, spo2_pct=85.0), WearableReading(t=2000, fall=True)],
    )
    assert [(e.type, e.state, e.value) for e in ev] == [
        ("spo2_low", "open", 85.0),
        ("fall", "open", 1.0),
    ]
    ev = tr.process("w", "s", [WearableReading(t=200_000, fall=False, spo2_pct=97.0)])
    assert states(ev) == [("spo2_low", "closed", 200, 1)]  # fall needs 300 s
    ev = tr.process("w", "s", [WearableReading(t=302_000, steps=10)])
    assert states(ev) == [("fall", "closed", 302, 2)]


def test_restored_open_episode_is_not_reopened() -> None:
    tr = CareTracker()
    tr.restore("w1", "hr_high", "open", 60_000, 60_000)
    assert tr.open_episodes() == 1
    ev = tr.process("w1", "s", [hr(t, 130) for t in range(50, 200, 10)])
    assert ev == []  # readings up to 60 s are skipped, the rest extend the open episode
    assert states(tr.process("w1", "s", [hr(260, 80)])) == [("hr_high", "closed", 260, 60)]


def test_rules_are_validated() -> None:
    with pytest.raises(ValueError, match="low < high"):
        CareRules(hr_low_bpm=130, hr_high_bpm=120)
