"""Headless Chromium from Debian's ``chromium`` package, driven by Playwright for Python.

Playwright's own browser download is never used: it launches ``/usr/bin/chromium``
(``MACHI_CHROMIUM`` overrides the path) with flags that keep it off the network except
for the pages it is sent to. Used by the page tests and ``machi bench portal``.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Playwright

__all__ = ["CHROMIUM_ARGS", "axe_script", "chromium_path", "launch"]

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

#: Where ``make setup`` installs axe-core (npm install --prefix .machi/npm axe-core).
AXE = Path(".machi/npm/node_modules/axe-core/axe.min.js")


def chromium_path() -> str:
    path = os.environ.get("MACHI_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(path).exists():
        raise FileNotFoundError(
            f"Chromium is not installed at {path}: run `make setup` (apt-get install chromium)"
        )
    return path


def launch(pw: Playwright) -> Browser:
    return pw.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)


def axe_script(root: Path | None = None) -> Path:
    """axe.min.js installed by ``make setup``; FileNotFoundError says how to get it."""
    path = (root or Path.cwd()) / AXE
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: run `make setup` (it runs `make npm-deps`)")
    return path
