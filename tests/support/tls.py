"""A throwaway certificate authority and server certificate for 127.0.0.1, made with openssl."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Certificates:
    ca: Path
    cert: Path
    key: Path


# P-256 keys: made at once, where an RSA key's prime search takes up to a second.
NEW_KEY = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def make_certificates(folder: Path, names: str = "IP:127.0.0.1") -> Certificates:
    """A CA and a server certificate for ``names`` (a subjectAltName) signed by it (openssl on
    PATH)."""
    folder.mkdir(parents=True, exist_ok=True)
    ca_key, ca = folder / "ca.key", folder / "ca.crt"
    key, csr, cert = folder / "server.key", folder / "server.csr", folder / "server.crt"
    _openssl("req", "-x509", *NEW_KEY, "-days", "2", "-keyout", str(ca_key), "-out", str(ca),
             "-subj", "/CN=cbmon test CA")  # fmt: skip
    _openssl("req", *NEW_KEY, "-keyout", str(key), "-out", str(csr), "-subj", "/CN=127.0.0.1")
    extensions = folder / "san.cnf"
    extensions.write_text(f"subjectAltName={names}\n")
    signer = ["-CA", str(ca), "-CAkey", str(ca_key), "-CAcreateserial", "-days", "2"]
    _openssl("x509", "-req", "-in", str(csr), *signer, "-out", str(cert),
             "-extfile", str(extensions))  # fmt: skip
    return Certificates(ca, cert, key)


def make_self_signed(folder: Path) -> Certificates:
    """A certificate for IP 127.0.0.1 that signs itself, as a receiver set up in a hurry
    presents (``ca`` is the certificate itself: trusting it is trusting the receiver)."""
    folder.mkdir(parents=True, exist_ok=True)
    key, cert = folder / "self.key", folder / "self.crt"
    _openssl("req", "-x509", *NEW_KEY, "-days", "2",
             "-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1",
             "-addext", "subjectAltName=IP:127.0.0.1")  # fmt: skip
    return Certificates(cert, cert, key)
