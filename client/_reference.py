"""The ledger's reference data as a client sees it (docs/sdk.md "Governance").

Participants and instruments start as genesis lists them; governance (ADR 0016) adds
participants and instruments, changes roles, tiers, keys and supply caps. A client reads
the current values with ``GetReference`` (one node's word, like ``pending`` and
``freezes``: not certified) and its builders and ``sign`` then check names and keys
against them instead of genesis.
"""

from __future__ import annotations

from dataclasses import dataclass

from client._errors import BadResponseError
from node import crypto
from node.settlement import (
    Genesis,
    GenesisError,
    Instrument,
    InstrumentKind,
    Participant,
    Registry,
    Role,
)
from node.wire import ledger_pb2 as pb

__all__ = ["Reference", "reference_from_pb"]


@dataclass(frozen=True)
class Reference:
    """Participants, instruments (with supply and cap), admins and k after block ``height``."""

    height: int
    registry: Registry  # lookups: participant_by_id, instrument_by_id, schedules
    supplies: dict[str, int]  # only those the caller may read (docs/cluster.md)
    admins: tuple[str, ...]
    threshold: int

    @property
    def participants(self) -> tuple[Participant, ...]:
        reg = self.registry
        return tuple(reg.participant_by_id[p] for p in reg.participant_ids)

    @property
    def instruments(self) -> tuple[Instrument, ...]:
        return tuple(self.registry.instrument_by_id.values())


def reference_from_pb(genesis: Genesis, msg: pb.Reference) -> Reference:
    """Decode and sanity-check a node's answer; BadResponseError if it is not well formed."""
    if tuple(msg.admins) != genesis.admins or msg.threshold != genesis.admin_threshold:
        raise BadResponseError("the admins or threshold differ from genesis")
    attested = {
        i.id: (i.attested_as_of_ms, bytes(i.attestation_sha256))
        for i in msg.instruments
        if len(i.attestation_sha256) == crypto.HASH_LEN
    }
    # The registry encodes every record (ids, tiers): a value that does not encode is the
    # node's malformed answer, not the caller's error (session 29's review).
    try:
        parts = [_participant(p) for p in msg.participants]
        insts = [_instrument(i) for i in msg.instruments]
        registry = Registry.from_values(genesis, parts, insts, attested)
    except (ValueError, GenesisError) as e:
        raise BadResponseError(f"malformed reference data: {e}") from None
    return Reference(
        msg.height,
        registry,
        {i.id: i.supply for i in msg.instruments if i.HasField("supply")},
        genesis.admins,
        genesis.admin_threshold,
    )


def _participant(p: pb.ReferenceParticipant) -> Participant:
    if not crypto.is_acceptable_public_key(bytes(p.public_key)):
        raise ValueError(f"participant {p.id!r}: not an acceptable public key")
    return Participant(p.id, bytes(p.public_key), frozenset(Role(r) for r in p.roles), p.kyc_tier)


def _instrument(i: pb.ReferenceInstrument) -> Instrument:
    return Instrument(
        i.id, InstrumentKind(i.kind), i.issuer, i.currency, i.unit_face_minor, i.maturity_date,
        i.coupon_bp, i.coupon_freq, i.max_supply, i.payment_cash, i.paying_agent,
        i.issue_date, i.distribution_day,
    )  # fmt: skip
