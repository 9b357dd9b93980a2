"""RFC 3339 time parsing with user errors (422 over HTTP, exit code 2 on the CLI)."""

from __future__ import annotations

import re
from datetime import datetime

__all__ = ["TimeError", "parse_time"]

_RFC3339 = re.compile(
    r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d{1,6})?([Zz]|[+-]\d{2}:\d{2})\Z"
)


class TimeError(ValueError):
    """A time or window the caller gave is malformed; the message says how to fix it."""


def parse_time(value: str, name: str) -> datetime:
    """An RFC 3339 timestamp with a zone, or a :class:`TimeError` that says what is wrong."""
    if not _RFC3339.match(value):
        raise TimeError(
            f"{name}={value!r} is not an RFC 3339 timestamp with a time zone, "
            "e.g. 2024-05-01T00:00:00Z or 2024-05-01T09:00:00+09:00"
        )
    try:
        return datetime.fromisoformat(value.replace("z", "Z").replace("t", "T"))
    except ValueError as exc:
        raise TimeError(f"{name}={value!r}: {exc}") from None
