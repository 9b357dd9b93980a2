"""Portal options and the targets file: the sample loads, bad values fail in one line
naming the option, ``machi api --print-config`` shows them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from contract.options import load_options
from contract.settings import ConfigError
from portal.options import PortalOptions
from portal.targets import load_targets
from tests.portal.conftest import SAMPLE_TARGETS


def test_sample_targets_load() -> None:
    t = load_targets(SAMPLE_TARGETS)
    assert {x.id for x in t.targets} == {"co2", "on_time", "meters"}
    co2 = next(x for x in t.targets if x.id == "co2")
    assert co2.baseline is not None and co2.baseline > co2.target  # a reduction
    half = co2.progress((co2.baseline + co2.target) / 2)
    assert half is not None and half.share == pytest.approx(0.5)
    assert co2.progress(co2.baseline * 2).share == 0.0  # type: ignore[union-attr]
    assert t.district_name("yamate", "ja") == "山手地区"
    assert t.district_name("nowhere", "en") == "nowhere"


@pytest.mark.parametrize(
    ("toml", "needle"),
    [
        ("[[targets]]\nid='x'\n", "targets.0.theme"),
        (
            "[[targets]]\nid='x'\ntheme='weather'\nkpi='k'\ndirection='up'\ntarget=1\nlabel_ja='a'\nlabel_en='a'\n",
            "theme",
        ),
        ("[districts.'bad id']\nja='a'\nen='b'\n", "district"),
        ("not toml [", "MACHI_PORTAL_TARGETS"),
    ],
)
def test_bad_targets_fail_naming_the_file(tmp_path: Path, toml: str, needle: str) -> None:
    f = tmp_path / "targets.toml"
    f.write_text(toml)
    with pytest.raises(ConfigError, match="MACHI_PORTAL_TARGETS") as exc:
        load_targets(f)
    assert needle in str(exc.value)
    assert "\n" not in str(exc.value)


@pytest.mark.parametrize(
    ("given", "needle"),
    [
        ({"portal_targets": "/no/such/file.toml"}, "MACHI_PORTAL_TARGETS"),
        ({"portal_base_url": "mieruka.example.jp"}, "MACHI_PORTAL_BASE_URL"),
        ({"portal_days": "0"}, "MACHI_PORTAL_DAYS"),
        ({"feedback_per_client": "0"}, "MACHI_PORTAL_FEEDBACK_PER_CLIENT"),
    ],
)
def test_bad_options_fail_in_one_line(given: dict[str, str], needle: str) -> None:
    with pytest.raises(ConfigError, match=needle):
        load_options(PortalOptions, **given)


def test_machi_api_print_config(tmp_path: Path) -> None:
    r = subprocess.run(
        [sys.executable, "-m", "machi.cli", "api", "--portal-days", "7", "--print-config"],
        capture_output=True,
        text=True,
        timeout=60,
        env={"MACHI_PORTAL_FEEDBACK_SECRET": "s3cret-value", "PATH": "/usr/bin:/bin"},
        cwd=tmp_path,
    )
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["portal_days"] == 7
    assert doc["feedback_db"].startswith("sqlite:///")
    assert doc["feedback_secret"] == "***"
    bad = subprocess.run(
        [sys.executable, "-m", "machi.cli", "api", "--portal-days", "0"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert bad.returncode == 2 and "MACHI_PORTAL_DAYS" in bad.stderr
