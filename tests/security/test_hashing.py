"""The credential hash is Mosquitto's own ``$7$`` format, checked both ways."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from devices.hashing import (
    HashFormatError,
    hash_secret,
    new_secret,
    parse_hash,
    verify_secret,
)


def test_hash_roundtrip_and_salt() -> None:
    secret = new_secret()
    a, b = hash_secret(secret), hash_secret(secret)
    assert a != b, "each hash must get a fresh salt"
    assert verify_secret(secret, a) and verify_secret(secret, b)
    assert not verify_secret(secret + "x", a)
    iterations, salt, digest = parse_hash(a)
    assert iterations == 1000 and len(salt) == 12 and len(digest) == 64
    assert secret not in a


def test_secrets_are_long_and_distinct() -> None:
    secrets = {new_secret() for _ in range(100)}
    assert len(secrets) == 100
    assert all(len(s) >= 43 and ":" not in s and "@" not in s for s in secrets)


def test_verifies_a_hash_written_by_mosquitto_passwd(tmp_path: Path) -> None:
    tool = shutil.which("mosquitto_passwd")
    assert tool, "mosquitto_passwd ships with mosquitto; run `make setup`"
    pw = tmp_path / "pw"
    subprocess.run([tool, "-c", "-b", str(pw), "dev-1", "s3cret"], check=True)
    user, encoded = pw.read_text().strip().split(":", 1)
    assert user == "dev-1" and encoded.startswith("$7$")
    assert verify_secret("s3cret", encoded)
    assert not verify_secret("s3cret ", encoded)


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "$6$abc$def",
        "$7$x$AAAA$AAAA",
        "$7$1000$!!$AAAA",
        "$7$1000$AAAA$AAAA",
        "$7$0$AAAA$" + "A" * 88,
    ],
)
def test_malformed_hashes_are_refused(bad: str) -> None:
    with pytest.raises(HashFormatError):
        parse_hash(bad)
