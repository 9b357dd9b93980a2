"""Identifier rules shared by topics, tags and file names."""

from __future__ import annotations

import re

#: The pattern as the contract documents it.
ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
# Python's ``$`` also matches before a trailing newline; ``\Z`` does not, and a newline
# in a tag would start a new line-protocol line.
STRICT_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}\Z"
ID_RE = re.compile(STRICT_ID_PATTERN)


def check_id(value: str, what: str = "device_id") -> str:
    """Return ``value`` if it is a valid contract identifier, else raise ValueError."""
    if not isinstance(value, str) or not ID_RE.match(value):
        raise ValueError(
            f"{what} {value!r} is invalid: it must match {ID_PATTERN} "
            "(1-64 letters, digits, '_', '.', '-', starting with a letter or digit)"
        )
    return value
