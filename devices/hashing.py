"""Credential secrets and their hashes, in Mosquitto's ``$7$`` PBKDF2-SHA512 format.

The registry stores this exact string, so exporting the password file never needs the
secret again and the hash is verifiable by both machi and the broker.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

from contract.registry import MAX_ITERATIONS, HashFormatError, parse_hash

__all__ = [
    "HashFormatError",
    "hash_secret",
    "new_secret",
    "parse_hash",
    "verify_secret",
]

#: mosquitto_passwd 2.0 writes 101. Secrets are 256-bit random tokens, so iterations add
#: little against guessing; 1000 keeps a reconnect storm of thousands of devices cheap.
ITERATIONS = 1000
SALT_BYTES = 12  # what mosquitto_passwd uses


def new_secret() -> str:
    """A fresh random secret (256 bits, URL-safe, no ':' so it survives any URL)."""
    return secrets.token_urlsafe(32)


def hash_secret(secret: str, iterations: int = ITERATIONS, salt: bytes | None = None) -> str:
    """``$7$<iterations>$<b64 salt>$<b64 PBKDF2-SHA512>`` as mosquitto 2.0 reads it."""
    if not 1 <= iterations <= MAX_ITERATIONS:
        raise ValueError(f"iterations must be within 1..{MAX_ITERATIONS}, got {iterations}")
    salt = secrets.token_bytes(SALT_BYTES) if salt is None else salt
    digest = hashlib.pbkdf2_hmac("sha512", secret.encode(), salt, iterations)
    return f"$7${iterations}${_b64(salt)}${_b64(digest)}"


def verify_secret(secret: str, encoded: str) -> bool:
    """True if ``secret`` matches ``encoded`` (constant-time compare)."""
    iterations, salt, digest = parse_hash(encoded)
    candidate = hashlib.pbkdf2_hmac("sha512", secret.encode(), salt, iterations)
    return hmac.compare_digest(candidate, digest)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")
