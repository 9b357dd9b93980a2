"""Credential secrets and their hashes, in Mosquitto's ``$7$`` PBKDF2-SHA512 format.

The registry stores this exact string, so exporting the password file never needs the
secret again and the hash is verifiable by both machi and the broker.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

#: mosquitto_passwd 2.0 writes 101. Secrets are 256-bit random tokens, so iterations add
#: little against guessing; 1000 keeps a reconnect storm of thousands of devices cheap.
ITERATIONS = 1000
SALT_BYTES = 12  # what mosquitto_passwd uses
_MAX_ITERATIONS = 1_000_000


class HashFormatError(ValueError):
    """A stored hash that is not in ``$7$iterations$salt$hash`` form."""


def new_secret() -> str:
    """A fresh random secret (256 bits, URL-safe, no ':' so it survives any URL)."""
    return secrets.token_urlsafe(32)


def hash_secret(secret: str, iterations: int = ITERATIONS, salt: bytes | None = None) -> str:
    """``$7$<iterations>$<b64 salt>$<b64 PBKDF2-SHA512>`` as mosquitto 2.0 reads it."""
    if not 1 <= iterations <= _MAX_ITERATIONS:
        raise ValueError(f"iterations must be within 1..{_MAX_ITERATIONS}, got {iterations}")
    salt = secrets.token_bytes(SALT_BYTES) if salt is None else salt
    digest = hashlib.pbkdf2_hmac("sha512", secret.encode(), salt, iterations)
    return f"$7${iterations}${_b64(salt)}${_b64(digest)}"


def verify_secret(secret: str, encoded: str) -> bool:
    """True if ``secret`` matches ``encoded`` (constant-time compare)."""
    iterations, salt, digest = parse_hash(encoded)
    candidate = hashlib.pbkdf2_hmac("sha512", secret.encode(), salt, iterations)
    return hmac.compare_digest(candidate, digest)


def parse_hash(encoded: str) -> tuple[int, bytes, bytes]:
    """Split a ``$7$`` hash into (iterations, salt, digest); raise HashFormatError."""
    parts = encoded.split("$")
    if len(parts) != 5 or parts[0] != "" or parts[1] != "7":
        raise HashFormatError(f"hash {encoded[:12]!r}... is not a $7$ PBKDF2-SHA512 hash")
    try:
        iterations = int(parts[2])
        salt = base64.b64decode(parts[3], validate=True)
        digest = base64.b64decode(parts[4], validate=True)
    except ValueError as exc:
        raise HashFormatError(f"hash is malformed: {exc}") from None
    if not 1 <= iterations <= _MAX_ITERATIONS or len(digest) != 64 or not salt:
        raise HashFormatError("hash has an implausible iteration count, salt or digest length")
    return iterations, salt, digest


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")
