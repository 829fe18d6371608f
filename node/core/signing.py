"""The signer and verifier the core is given, and certificate verification.

The core never touches keys or a crypto library directly: production injects
:class:`Ed25519Signer` / :class:`Ed25519Verifier` (``node.crypto``, strict Ed25519); the
simulator may inject a fast keyed-hash scheme. :func:`verify_certificate` is what a client
uses to check finality offline from a commit certificate alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from node import crypto
from node.core.types import (
    Phase,
    QuorumCert,
    TimeoutCert,
    signable_lock_view,
    timeout_message,
    vote_message,
)

__all__ = [
    "Ed25519Signer",
    "Ed25519Verifier",
    "Signer",
    "Verifier",
    "verify_certificate",
    "verify_timeout_cert",
]


class Signer(Protocol):
    """Signs with this validator's own key."""

    def sign(self, message: bytes) -> bytes: ...


class Verifier(Protocol):
    """Checks a signature by the validator at ``index`` of the genesis validator list."""

    def verify(self, index: int, message: bytes, signature: bytes) -> bool: ...


class Ed25519Signer:
    def __init__(self, key: crypto.SigningKey) -> None:
        self._key = key

    def sign(self, message: bytes) -> bytes:
        return self._key.sign(message)


class Ed25519Verifier:
    def __init__(self, public_keys: Sequence[bytes]) -> None:
        self._keys = tuple(public_keys)

    def verify(self, index: int, message: bytes, signature: bytes) -> bool:
        if not 0 <= index < len(self._keys):
            return False
        return crypto.verify(self._keys[index], message, signature)


def _distinct_signers(indexes: Sequence[int], n: int, q: int) -> bool:
    return (
        len(indexes) >= q and len(set(indexes)) == len(indexes) and all(0 <= i < n for i in indexes)
    )


def verify_certificate(
    qc: QuorumCert,
    chain_id: str,
    n: int,
    q: int,
    verifier: Verifier,
    *,
    phase: Phase | None = None,
) -> bool:
    """True when ``qc`` holds at least q valid signatures by distinct validators.

    Pass ``phase=Phase.COMMIT`` to check a commit certificate (finality of the block).
    """
    if phase is not None and qc.phase != phase:
        return False
    if qc.phase not in (Phase.PREPARE, Phase.COMMIT) or len(qc.signatures) > n:
        return False
    if not _distinct_signers([i for i, _ in qc.signatures], n, q):
        return False
    msg = vote_message(chain_id, qc.phase, qc.view, qc.height, qc.block_hash)
    return all(verifier.verify(i, msg, sig) for i, sig in qc.signatures)


def verify_timeout_cert(tc: TimeoutCert, chain_id: str, n: int, q: int, verifier: Verifier) -> bool:
    """True when ``tc`` holds q valid timeouts by distinct validators for one view *and*
    proves its highest claims: ``high_commit`` certifies the highest committed height an
    entry reports, ``high_lock`` is a prepare QC of the highest lock view reported there,
    for the next height. Nothing else in an entry is acted on."""
    if len(tc.entries) > n or not _distinct_signers([e.voter for e in tc.entries], n, q):
        return False
    if not all(signable_lock_view(e.pqc_view) for e in tc.entries):
        return False
    if not _proves(tc.high_commit, Phase.COMMIT, tc.top_height, None):
        return False
    if not _proves(tc.high_lock, Phase.PREPARE, tc.top_height + 1, tc.top_lock_view):
        return False
    certs = [qc for qc in (tc.high_commit, tc.high_lock) if qc is not None]
    if not all(verify_certificate(qc, chain_id, n, q, verifier) for qc in certs):
        return False
    return all(
        verifier.verify(
            e.voter,
            timeout_message(chain_id, tc.view, e.committed_height, e.pqc_view),
            e.signature,
        )
        for e in tc.entries
    )


def _proves(qc: QuorumCert | None, phase: Phase, height: int, view: int | None) -> bool:
    """The shape check of a TC's proof: present exactly when there is a claim to prove
    (a committed height above 0, or a lock view), of that phase, height and view."""
    if phase is Phase.COMMIT:
        if height == 0:
            return qc is None
        return qc is not None and qc.phase is phase and qc.height == height
    if view is None:
        return qc is None
    return qc is not None and qc.phase is phase and qc.height == height and qc.view == view
