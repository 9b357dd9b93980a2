"""API keys with scopes: ``public`` < ``care`` < ``operator``.

Keys come from ``MACHI_API_KEYS`` (``key:scope,key:scope``) and/or a keys file with one
``key:scope`` per line (``#`` comments). A key is identified in logs and the audit log
by ``key_id``: the first 12 hex digits of its SHA-256, never the secret itself.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from pathlib import Path

from contract.settings import ConfigError

SCOPES = ("public", "care", "operator")
_RANK = {s: i for i, s in enumerate(SCOPES)}
MIN_KEY_LEN = 16


@dataclass(frozen=True)
class Principal:
    key_id: str
    scope: str

    def allows(self, needed: str) -> bool:
        return _RANK[self.scope] >= _RANK[needed]


ANONYMOUS = Principal("anonymous", "public")


def key_id(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()[:12]


def _parse_entry(entry: str, where: str) -> tuple[str, str]:
    secret, sep, scope = entry.strip().rpartition(":")
    if not sep or not secret or scope not in SCOPES:
        raise ConfigError(
            f"{where}: API key entry must be 'key:scope' with scope one of "
            f"{', '.join(SCOPES)} (got {entry.strip()[:4]}...:{scope!r})"
        )
    if len(secret) < MIN_KEY_LEN:
        raise ConfigError(
            f"{where}: an API key must be at least {MIN_KEY_LEN} characters "
            "(e.g. `python -c 'import secrets; print(secrets.token_urlsafe(24))'`)"
        )
    return secret, scope


class KeyStore:
    """Looks keys up in constant time per key."""

    def __init__(self, keys: dict[str, str]) -> None:
        self._keys = [(k.encode(), Principal(key_id(k), s)) for k, s in keys.items()]

    @classmethod
    def load(cls, env_value: str = "", keys_file: str | Path | None = None) -> KeyStore:
        keys: dict[str, str] = {}
        for entry in env_value.split(","):
            if entry.strip():
                secret, scope = _parse_entry(entry, "MACHI_API_KEYS")
                keys[secret] = scope
        if keys_file:
            path = Path(keys_file)
            try:
                text = path.read_text()
            except OSError as exc:
                raise ConfigError(f"API keys file {path}: {exc.strerror}") from None
            for n, raw in enumerate(text.splitlines(), 1):
                if raw.strip() and not raw.lstrip().startswith("#"):
                    secret, scope = _parse_entry(raw, f"{path}:{n}")
                    keys[secret] = scope
        return cls(keys)

    def __len__(self) -> int:
        return len(self._keys)

    def lookup(self, secret: str) -> Principal | None:
        given = secret.encode()
        found = None
        for k, principal in self._keys:
            if hmac.compare_digest(k, given):
                found = principal
        return found
