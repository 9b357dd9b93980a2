"""Print every fault test's accounting line at the end of the run, even without ``-s``."""

from __future__ import annotations

import pytest

from tests.faults.accounting import SUMMARIES


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if SUMMARIES:
        terminalreporter.section("fault suite: seq accounting")
        for line in SUMMARIES:
            terminalreporter.write_line(line)
