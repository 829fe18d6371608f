"""Participants' signing keys: the PKCS8 PEM files that ``make genesis`` writes.

A :class:`ParticipantKey` ties a key to the participant id it signs for, so signing can
check, before anything is sent, that the key is the one genesis lists for that id.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from client._errors import KeyFileError
from node.crypto import SigningKey
from node.keyfiles import load_signing_key, write_signing_key
from node.settlement import Genesis, Registry
from node.settlement._codec import check_id

__all__ = ["ParticipantKey", "generate_key", "load_key"]


@dataclass(frozen=True, slots=True)
class ParticipantKey:
    """A participant id and its Ed25519 signing key (never printed)."""

    participant: str
    key: SigningKey

    @property
    def public_key(self) -> bytes:
        return self.key.public_key

    def matches(self, genesis: Genesis | Registry) -> bool:
        """True when genesis (or a registry of the ledger's reference data) lists this key
        for ``participant``."""
        p = genesis.participant_by_id.get(self.participant)
        return p is not None and p.public_key == self.key.public_key


def _participant_id(path: Path, participant: str | None) -> str:
    pid = path.stem if participant is None else participant
    try:
        check_id(pid, "participant id")
    except ValueError as e:
        raise KeyFileError(f"{path}: {e} (pass participant= explicitly)") from e
    return pid


def load_key(path: str | Path, participant: str | None = None) -> ParticipantKey:
    """Read a participant's key; ``participant`` defaults to the file stem
    (``participants/BANK01.key`` signs for BANK01). KeyFileError if the file is missing,
    unreadable or not an Ed25519 PKCS8 PEM key."""
    p = Path(path)
    pid = _participant_id(p, participant)
    if not p.is_file():
        raise KeyFileError(f"{p}: no such key file")
    return ParticipantKey(pid, load_signing_key(p))


def generate_key(path: str | Path, participant: str) -> ParticipantKey:
    """Create a fresh key in a new file (mode 0600); KeyFileError if the file exists, so an
    existing identity is never overwritten. Its public key must then go into genesis."""
    p = Path(path)
    pid = _participant_id(p, participant)
    key = SigningKey.generate()
    try:
        write_signing_key(p, key)
    except FileExistsError as e:
        raise KeyFileError(f"{p}: already exists; refusing to overwrite a key") from e
    except OSError as e:
        raise KeyFileError(f"{p}: cannot write the key ({e.strerror})") from e
    return ParticipantKey(pid, key)
