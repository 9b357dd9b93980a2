"""A plain `pip install .` carries what the demo reads (it once lacked deploy/)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_wheel_carries_package_data(tmp_path: Path) -> None:
    # Build from a copy of the tracked files: setuptools would leave build/ in the tree.
    src = tmp_path / "src"
    files = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard"],
        check=True, capture_output=True, text=True, cwd=ROOT,
    ).stdout.split()  # fmt: skip
    for name in files:
        if (ROOT / name).is_file():
            (src / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, src / name)
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(src)],
        check=True,
        capture_output=True,
        timeout=300,
        cwd=tmp_path,
    )
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
