"""Render the boards to Grafana JSON, write them to ``dashboards/json/``, or check them.

The committed JSON is what Grafana's file provisioning loads (no Python needed there);
a test checks it equals what the code generates.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from grafana_foundation_sdk.cog.encoder import JSONEncoder

from dashboards.boards import BOARDS, Board

JSON_DIR = Path(__file__).resolve().parent / "json"


def board_json(board: Board) -> dict[str, Any]:
    """The dashboard as plain JSON data (what Grafana stores)."""
    data: dict[str, Any] = json.loads(json.dumps(board.build(), cls=JSONEncoder))
    return data


def render(data: dict[str, Any]) -> str:
    # ensure_ascii=False keeps the Japanese titles readable in review diffs.
    return json.dumps(data, indent=2, ensure_ascii=False, sort_keys=True) + "\n"


def board_path(board: Board, root: Path = JSON_DIR) -> Path:
    return root / board.folder.path / f"{board.uid}.json"


def export(root: Path = JSON_DIR) -> list[Path]:
    """Write every board; return the files that changed."""
    changed = []
    for board in BOARDS:
        path = board_path(board, root)
        text = render(board_json(board))
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
            changed.append(path)
    return changed


def stale(root: Path = JSON_DIR) -> list[Path]:
    """Files that are missing or differ from the generated JSON."""
    return [
        board_path(b, root)
        for b in BOARDS
        if not board_path(b, root).exists()
        or board_path(b, root).read_text(encoding="utf-8") != render(board_json(b))
    ]
