"""Test helpers shared by the protocol folders' tests (needs pytest; not used at run time)."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, TypeVar

import pytest

from firmware_bridge.base import DeviceError, Source
from firmware_bridge.pty import PtySimulator
from firmware_bridge.registry import make_source

S = TypeVar("S")


def open_source(cfg: dict[str, Any], cls: type[S], kind: str) -> S:
    """The source the registry builds from ``cfg``, checked to be a ``cls`` producing
    contract ``kind``, opened."""
    src = make_source(cfg)
    assert isinstance(src, cls) and src.kind == kind, (type(src), src.kind)
    src.open()
    return src


def read_n(src: Source, n: int, limit: float = 5.0) -> list[dict[str, Any]]:
    """Call ``src.read()`` until ``n`` readings arrived or ``limit`` seconds passed."""
    out: list[dict[str, Any]] = []
    deadline = time.monotonic() + limit
    while len(out) < n and time.monotonic() < deadline:
        out += src.read()
    return out


def unplug_and_replug(src: Source, sim: PtySimulator, reads: int = 5) -> None:
    """Pull the device out from under an open ``src`` and plug it back in.

    Asserts what the edge agent relies on: ``read()`` raises DeviceError within
    ``reads`` calls, ``open()`` fails while the device is gone, and after the replug
    ``src`` is open again.
    """
    sim.unplug()
    with pytest.raises(DeviceError):
        for _ in range(reads):
            src.read()
    src.close()
    with pytest.raises(DeviceError):
        src.open()  # the port's path is gone
    sim.replug()
    src.open()


def captures_dir(sub: str) -> Path:
    """``<captures>/<sub>``: the real device captures kept beside the project.

    ``MACHI_CAPTURES`` names the folder; by default it is ``../shared/captures`` from the
    repository root. The test that asks is skipped when the folder is absent: captures
    are read in place and never copied into the repository.
    """
    env = os.environ.get("MACHI_CAPTURES")
    root = Path(env) if env else Path(__file__).resolve().parents[1] / ".." / "shared" / "captures"
    path = root / sub
    if not path.is_dir():
        pytest.skip(f"no captures at {path} (set MACHI_CAPTURES to the captures folder)")
    return path
