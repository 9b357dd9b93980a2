"""A plain `pip install .` carries what the demo reads (it once lacked deploy/)."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_wheel_carries_package_data(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q",
         "-w", str(tmp_path), str(ROOT)],
        check=True, capture_output=True, timeout=300, cwd=tmp_path,
    )  # fmt: skip
    (wheel,) = tmp_path.glob("machi-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for needed in (
        "deploy/mosquitto/machi.conf",
        "deploy/influxdb/influxdb.conf",
        "devices/registry.py",
        "machi/testkit/publish.py",
        "edge/samples/edge.toml",
        "firmware_bridge/nmea_gps/sample.toml",
        "dashboards/json/city/machi-overview.json",
    ):
        assert needed in names, f"{needed} is missing from the wheel"
