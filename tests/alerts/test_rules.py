"""The rules file: the sample loads; bad files stop `machi alerts run` at start (exit 2)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from alerts.rules import RulesError, load_rules, parse_rules

R = '[[route]]\ntypes = ["fall"]\ntiers = '
SAMPLE = Path(__file__).resolve().parents[2] / "alerts" / "samples" / "rules.toml"


def test_sample_rules_load_with_the_documented_shape() -> None:
    rules = load_rules(SAMPLE)
    first = rules.routes[0]
    assert first.types == ("fall", "spo2_low") and first.sites == ("*",)
    assert [t.ack_within_s for t in first.tiers] == [60, 120]
    assert first.tiers[0].notify[1] == "json://care-desk.example/hook"
    assert rules.route_for("silent", "hama") == 2
    assert rules.priority("fall") == "high" and rules.priority("hr_low") == "medium"
    assert rules.priority("battery_low") == "low"
    assert rules.unrouted_types() == []


def test_docs_show_the_sample_shape() -> None:
    doc = (SAMPLE.parents[2] / "docs" / "alerts.md").read_text()
    assert 'types = ["fall", "spo2_low"]      # alert types, "*" for all' in doc


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("[[route]\n", "not valid TOML"),
        ('[[route]]\ntypes = ["fall"]\nsites = ["*"]\n', "route 1 has no tiers"),
        ('[[route]]\ntypes = ["fall"]\ntiers = []\n', "route 1 has no tiers"),
        (
            R + '[{ notify = ["gopher://x/y"], ack_within_s = 5 }]\n',
            "unknown channel scheme 'gopher'",
        ),
        (
            R.replace("fall", "falls") + '[{ notify = ["json://x/y"], ack_within_s = 5 }]\n',
            "unknown alert type 'falls'",
        ),
        (
            R + '[{ notify = ["json://x/y"], ack_within_s = 0 }]\n',
            "ack_within_s must be",
        ),
        (
            R + '[{ notify = ["json://x/y"], ack = 5 }]\n',
            "unknown key 'ack'",
        ),
        ("[priorities]\nfall = 'urgent'\n", "no [[route]]"),
    ],
)
def test_bad_rules_are_refused_with_the_reason(text: str, says: str) -> None:
    with pytest.raises(RulesError, match=None) as exc:
        parse_rules(text, "r.toml")
    assert says in str(exc.value) and "\n" not in str(exc.value)


@pytest.mark.parametrize(
    "text",
    [
        "[[route]\n",
        R + '[{ notify = ["nope://x"], ack_within_s = 5 }]\n',
    ],
)
def test_machi_alerts_run_stops_at_start_with_one_line(tmp_path: Path, text: str) -> None:
    rules = tmp_path / "rules.toml"
    rules.write_text(text)
    r = subprocess.run(
        [sys.executable, "-m", "machi.cli", "alerts", "run", "--rules", str(rules)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and str(rules) in lines[0], r.stderr


def test_signed_webhook_without_a_secret_stops_at_start(tmp_path: Path) -> None:
    rules = tmp_path / "rules.toml"
    rules.write_text(
        '[[route]]\ntypes = ["*"]\n'
        'tiers = [{ notify = ["hmac+https://x.example/h"], ack_within_s = 5 }]\n'
    )
    r = subprocess.run(
        [sys.executable, "-m", "machi.cli", "alerts", "run", "--rules", str(rules)],
        capture_output=True, text=True, timeout=60, env={"PATH": "/usr/bin"},
    )  # fmt: skip
    assert r.returncode == 2 and "MACHI_ALERTS_HMAC_SECRET" in r.stderr


def test_machi_alerts_run_without_rules_names_the_option() -> None:
    r = subprocess.run(
        [sys.executable, "-m", "machi.cli", "alerts", "run"],
        capture_output=True, text=True, timeout=60, env={"PATH": "/usr/bin"},
    )  # fmt: skip
    assert r.returncode == 2 and "MACHI_ALERT_RULES" in r.stderr
