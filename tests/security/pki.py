"""A throwaway test PKI made with the ``openssl`` CLI (the ``cryptography`` package is
not a machi dependency): a CA, a server certificate for 127.0.0.1, client certificates
whose CN is the device id."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Cert:
    cert: Path
    key: Path


def _openssl(*args: str | Path) -> None:
    subprocess.run(["openssl", *map(str, args)], check=True, capture_output=True)


def make_ca(d: Path, name: str) -> Cert:
    d.mkdir(parents=True, exist_ok=True)
    ca = Cert(d / f"{name}.crt", d / f"{name}.key")
    _openssl(
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        "-subj", f"/CN={name}", "-keyout", ca.key, "-out", ca.cert,
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
    )  # fmt: skip
    return ca


def issue(ca: Cert, d: Path, cn: str, server: bool = False) -> Cert:
    """A leaf certificate signed by ``ca``; servers get an IP SAN for 127.0.0.1."""
    out = Cert(d / f"{cn}.crt", d / f"{cn}.key")
    csr = d / f"{cn}.csr"
    ext = d / f"{cn}.ext"
    usage = "serverAuth" if server else "clientAuth"
    san = "subjectAltName=IP:127.0.0.1\n" if server else ""
    ext.write_text(f"basicConstraints=CA:FALSE\nextendedKeyUsage={usage}\n{san}")
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={cn}",
             "-keyout", out.key, "-out", csr)  # fmt: skip
    _openssl("x509", "-req", "-in", csr, "-CA", ca.cert, "-CAkey", ca.key,
             "-CAcreateserial", "-days", "2", "-extfile", ext, "-out", out.cert)  # fmt: skip
    return out
