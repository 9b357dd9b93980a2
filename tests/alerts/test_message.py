"""What a notification carries, and what it never does."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from alerts import message
from alerts.channels import display, sign

ALERT = {"alert_id": "ab" * 12, "type": "spo2_low", "priority": "high", "device_id": "w-9",
         "site": "hama", "episode_ms": 1_700_000_000_000, "value": 84.0}  # fmt: skip


def test_no_health_value_unless_asked() -> None:
    n = message.build(ALERT, 2, "remind1", "k" * 32, "https://care.example/api/", False)
    assert "value" not in n.payload and "84" not in n.body and "84" not in n.title
    assert n.payload["link"] == "https://care.example/api/v1/alerts/" + "ab" * 12
    assert n.payload["reminder"] is True and n.payload["tier"] == 2
    assert n.title.startswith("[HIGH]") and "(reminder)" in n.title
    assert n.payload["time"] == "2023-11-14T22:13:20Z"
    shown = message.build(ALERT, 1, "notify", "k" * 32, "https://care.example/api", True)
    assert shown.payload["value"] == 84.0


def test_urls_are_shown_without_credentials_and_signatures_cover_the_timestamp() -> None:
    url = "mailtos://user:hunter2@smtp.example:587?from=a@b&to=c@d&pass=x"
    assert display(url) == "mailtos://smtp.example:587"
    assert sign(b"s", "1", b"{}") != sign(b"s", "2", b"{}")


def test_print_config_redacts_the_signing_secret(tmp_path: Path) -> None:
    rules = tmp_path / "rules.toml"
    rules.write_text(
        '[[route]]\ntypes = ["*"]\ntiers = [{ notify = ["mailtos://u:hunter2@smtp.example"'
        "], ack_within_s = 5 }]\n"
    )
    argv = ["alerts", "run", "--rules", str(rules), "--print-config"]
    r = subprocess.run(
        [sys.executable, "-m", "machi.cli", *argv],
        capture_output=True, text=True, timeout=60,
        env={"PATH": "/usr/bin", "MACHI_ALERTS_HMAC_SECRET": "top-secret-value"},
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "top-secret-value" not in r.stdout and "hunter2" not in r.stdout
    assert '"hmac_secret": "***"' in r.stdout
