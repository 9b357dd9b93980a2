"""Polling: the one way tests and tools wait for a condition."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

__all__ = ["wait_for", "wait_until"]


def wait_until(
    probe: Callable[[], T], done: Callable[[T], bool], timeout: float = 30.0, every: float = 0.2
) -> T:
    """Poll ``probe`` until ``done(value)`` or the timeout; return the last value."""
    deadline = time.monotonic() + timeout
    value = probe()
    while not done(value) and time.monotonic() < deadline:
        time.sleep(every)
        value = probe()
    return value


def wait_for(
    pred: Callable[[], T | None],
    timeout: float = 15.0,
    what: str = "the condition",
    every: float = 0.05,
) -> T:
    """Poll ``pred`` until it returns something truthy and return that; AssertionError
    naming ``what`` after ``timeout`` seconds."""
    value = wait_until(pred, bool, timeout, every)
    if value is None or not value:
        raise AssertionError(f"timed out after {timeout}s waiting for {what}")
    return value
