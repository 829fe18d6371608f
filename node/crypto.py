"""Ed25519 signatures and SHA-256 hashing, strict by construction.

Every signature in the system goes through :func:`verify`: lengths and the scalar rule
(``S < L``, refusing the classic malleation ``S + L``) are checked here, whatever the
library does, then libsodium's ``crypto_sign_open`` checks the equation, refusing also
non-canonical and small-order public keys and small-order ``R`` (ADR 0009: it is twice as
fast as OpenSSL's verify through ``cryptography`` and stricter). Genesis refuses off-curve,
small-order and mixed-order keys (:func:`is_acceptable_public_key`). Signing is
deterministic (RFC 8032), so the same key and message always give the same signature.

Domain separation: every signed message starts with a tag naming what it is (one home
for all of them: ``node.tags``), so a signature over a transaction can never be replayed
as a consensus vote or vice versa.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict

import nacl.bindings
import nacl.exceptions
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
)

__all__ = [
    "ED25519_L",
    "HASH_LEN",
    "PUBLIC_KEY_LEN",
    "SIGNATURE_LEN",
    "SigningKey",
    "VerifiedSignatures",
    "is_acceptable_public_key",
    "sha256",
    "verify",
]

# Order of the Ed25519 base point; a canonical signature has S < L.
ED25519_L = 2**252 + 27742317777372353535851937790883648493
HASH_LEN = 32  # SHA-256: block hashes, roots, transaction ids
PUBLIC_KEY_LEN = 32
SIGNATURE_LEN = 64


def sha256(*parts: bytes) -> bytes:
    """SHA-256 of the concatenation of ``parts``."""
    h = hashlib.sha256()
    for p in parts:
        h.update(p)
    return h.digest()


def is_acceptable_public_key(public_key: bytes) -> bool:
    """True when ``public_key`` is the canonical encoding of a point on the curve, in its
    prime-order subgroup and not of small order (libsodium's ``is_valid_point``): an
    honest key ``a * B`` always is. Refused: off-curve encodings (OpenSSL loads any 32
    bytes), small-order keys (a signature under one verifies for many messages) and keys
    with a small-order component (a mixed-order key verifies differently under cofactored
    and cofactorless rules)."""
    if len(public_key) != PUBLIC_KEY_LEN:
        return False
    return bool(nacl.bindings.crypto_core_ed25519_is_valid_point(public_key))


def verify(public_key: bytes, message: bytes, signature: bytes) -> bool:
    """Strict Ed25519 verification: False for any malformed, malleated or wrong signature."""
    if len(signature) != SIGNATURE_LEN or len(public_key) != PUBLIC_KEY_LEN:
        return False
    if int.from_bytes(signature[32:], "little") >= ED25519_L:
        return False
    return _library_verify(public_key, message, signature)


def _library_verify(public_key: bytes, message: bytes, signature: bytes) -> bool:
    """libsodium's verification (cofactorless, byte comparison of ``R``; refuses
    non-canonical or small-order ``A`` and small-order ``R``)."""
    try:
        nacl.bindings.crypto_sign_open(signature + message, public_key)
    except nacl.exceptions.CryptoError:
        return False
    return True


class VerifiedSignatures:
    """Signature checks shared by admission and execution (bounded): a validator checks a
    client's signatures when the transaction arrives (``admit``, which remembers the ones
    that verify) and again when a committed block executes it (``__call__``, which uses a
    remembered success once and forgets it, and verifies anything else without
    remembering it). So the memo holds only transactions accepted here and still in
    flight, and nothing unverified ever passes: the key is key, message and signature."""

    def __init__(self, size_max: int) -> None:
        self._size_max = size_max
        self._ok: OrderedDict[tuple[bytes, bytes, bytes], None] = OrderedDict()
        self.hits = 0

    def admit(self, public_key: bytes, message: bytes, signature: bytes) -> bool:
        if not verify(public_key, message, signature):
            return False
        self._ok[(public_key, message, signature)] = None
        if len(self._ok) > self._size_max:
            self._ok.popitem(last=False)
        return True

    def __call__(self, public_key: bytes, message: bytes, signature: bytes) -> bool:
        key = (public_key, message, signature)
        if key in self._ok:
            del self._ok[key]
            self.hits += 1
            return True
        return verify(public_key, message, signature)

    def __len__(self) -> int:
        return len(self._ok)


class SigningKey:
    """An Ed25519 private key. Created from 32 seed bytes; never printed."""

    __slots__ = ("_key", "public_key")

    def __init__(self, seed: bytes) -> None:
        if len(seed) != 32:
            raise ValueError(f"an Ed25519 seed is 32 bytes, got {len(seed)}")
        self._key = Ed25519PrivateKey.from_private_bytes(seed)
        self.public_key: bytes = self._key.public_key().public_bytes_raw()

    @classmethod
    def generate(cls) -> SigningKey:
        """A fresh key from the operating system's randomness (for genesis, never in the core)."""
        return cls(Ed25519PrivateKey.generate().private_bytes_raw())

    def seed(self) -> bytes:
        """The 32 secret seed bytes, for writing a key file (mode 0600)."""
        return self._key.private_bytes_raw()

    def sign(self, message: bytes) -> bytes:
        return self._key.sign(message)

    def __repr__(self) -> str:
        return f"SigningKey(public_key={self.public_key.hex()[:16]}...)"
