"""Write a GTFS static feed (zip of CSV tables)."""

from __future__ import annotations

import csv
import io
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path

Table = Sequence[Mapping[str, object]]


def write_gtfs(path: str | Path, tables: Mapping[str, Table]) -> Path:
    """Write ``{"stops.txt": [row, ...], ...}`` as a GTFS zip; columns from the first row."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, rows in tables.items():
            if not rows:
                raise ValueError(f"GTFS table {name} is empty")
            buf = io.StringIO()
            writer = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
            writer.writeheader()
            writer.writerows(rows)
            zf.writestr(name, buf.getvalue())
    tmp.replace(path)  # a reader never sees a half-written feed
    return path


def hms(seconds: int) -> str:
    """Seconds after midnight as GTFS ``HH:MM:SS`` (hours may pass 24)."""
    return f"{seconds // 3600:02d}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"
