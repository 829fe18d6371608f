"""Key and certificate files: written 0600 from the start, read strictly, pinned by hash.

Shared by the genesis ceremony (node/ceremony.py), the local network driver
(devtools/netgen.py), the validator (node/runtime) and the SDK, so every one of them writes
and reads a key file and computes a certificate pin the same way.
"""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Sequence
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from node import crypto
from node.files import read_regular

__all__ = [
    "KeyFileError",
    "cert_pin",
    "cert_pin_from_pem",
    "dns_names",
    "load_signing_key",
    "pem_cert",
    "pem_key",
    "pinned_certificates",
    "write_private_file",
    "write_signing_key",
]

log = logging.getLogger(__name__)


class KeyFileError(ValueError):
    """A key file is missing, unreadable or holds the wrong kind of key."""


# --- key files ---------------------------------------------------------------------------


def write_private_file(path: str | Path, data: bytes) -> None:
    """Create ``path`` with mode 0600 from the start; refuse to overwrite or follow a link."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    fd = os.open(path, flags, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def write_signing_key(path: str | Path, key: crypto.SigningKey) -> None:
    """Write an Ed25519 key as unencrypted PKCS8 PEM, mode 0600 (FileExistsError if present)."""
    pem = Ed25519PrivateKey.from_private_bytes(key.seed()).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    write_private_file(path, pem)


def load_signing_key(path: str | Path) -> crypto.SigningKey:
    """Read a PKCS8 PEM Ed25519 key. Warns (does not refuse) if others may read the file,
    once it is one: a file that is no key is refused without advice to chmod it (before
    review 33, `ledger keys show genesis.json` printed both)."""
    try:
        mode = os.stat(path).st_mode
        data = read_regular(path)
    except OSError as e:
        raise KeyFileError(f"{path}: cannot read the signing key ({e.strerror})") from e
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as e:
        raise KeyFileError(f"{path}: not an unencrypted PKCS8 PEM private key ({e})") from e
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyFileError(f"{path}: expected an Ed25519 key, found {type(key).__name__}")
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        log.warning(
            "%s is accessible by group or others (mode %o); run: chmod 600 %s",
            path,
            stat.S_IMODE(mode),
            path,
        )
    return crypto.SigningKey(key.private_bytes_raw())


def cert_pin(cert: x509.Certificate) -> bytes:
    """What genesis pins for a validator: SHA-256 of the certificate's DER form."""
    return crypto.sha256(cert.public_bytes(serialization.Encoding.DER))


def cert_pin_from_pem(pem: bytes) -> bytes:
    """The pin of a PEM certificate, e.g. ``context.auth_context()["x509_pem_cert"][0]``."""
    return cert_pin(x509.load_pem_x509_certificate(pem))


def pinned_certificates(bundle: bytes, pins: Sequence[bytes]) -> dict[int, bytes]:
    """Validator index -> its PEM certificate, for every certificate in ``bundle`` (PEM,
    e.g. ``validators.pem``); ``pins`` are genesis's, in validator order. ValueError for a
    bundle with no certificate, or with one that genesis pins for no validator: a run-time
    trust root is a pinned certificate or nothing."""
    try:
        certs = x509.load_pem_x509_certificates(bundle)
    except ValueError as e:
        raise ValueError(f"no PEM certificate could be read ({e})") from e
    index_by_pin = {pin: i for i, pin in enumerate(pins) if pin}
    found: dict[int, bytes] = {}
    for cert in certs:
        index = index_by_pin.get(cert_pin(cert))
        if index is None:
            subject = cert.subject.rfc4514_string()
            raise ValueError(f"the certificate of {subject!r} is not pinned by genesis")
        found[index] = pem_cert(cert)
    return found


def dns_names(pem: bytes) -> frozenset[str]:
    """The DNS names a PEM certificate's subjectAltName carries (node-XX, localhost...)."""
    cert = x509.load_pem_x509_certificate(pem)
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return frozenset()
    return frozenset(san.get_values_for_type(x509.DNSName))


def pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def pem_cert(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)
