"""Theory of operation: the reference data (participants, instruments, admins) as ledger
state (docs/adr/0016-reference-data-in-state.md).

Genesis gives the initial participants and instruments; governance transactions
(node/settlement/_gov.py) write state records that replace or add to them. A
``Registry`` is the one way to look a participant or an instrument up: it reads a
record first and falls back to genesis, so a chain without governance records reads
exactly what genesis says. It reads through a ``StateView`` (the node at its head: the
admission precheck, the API, the access layer) or a block's ``Overlay`` (execution), so
a change made by a transaction is seen by every later transaction of the same block and
by every later block.

Records (a ``RecordKind`` byte, then ids NUL-padded to ``ID_BYTES_MAX``):

- ``PARTICIPANT | id`` -> the participant's fields after its id (``encode_participant``,
  the genesis encoding): an added participant, or a genesis one whose roles, tier or key
  governance changed.
- ``INSTRUMENT | id`` -> the instrument's terms after its id (``encode_instrument``): an
  added instrument, or a genesis one whose ``max_supply`` governance changed.
- ``SUPPLY_ATTESTATION | id`` -> ``u64 as_of_ms | 32 bytes attestation_sha256``: the last
  ``SetMaxSupply`` of that instrument, against which the next one must be newer.
- ``ADDED`` (no fields) -> ``u32 participants added | u32 instruments added``: so a limit
  check never scans (the counts are at most PARTICIPANTS_MAX and INSTRUMENTS_MAX).
- ``PARTICIPANT_SINCE | id`` -> ``u64 height``: the block that added the participant
  (written by ``apply_block`` through ``record_added``), so the participants registered
  after any block are known at the head: the keys of that block's party index (ADR 0025).
- ``OBSERVER_AT | id | u64 height`` -> ``u8 observer``: block ``height`` changed whether
  the participant holds an observer role (``OBSERVER_ROLES``; an added participant that
  holds one counts as a change), and this is what it was after that block. With
  genesis's roles these give the observers after any block, which that block's party
  index commits to (ADR 0025, amendment "observers"). One record per change, each made
  by an admin-signed governance transaction.

Cost: a registry caches what it read, so a block reads each id's record at most once
(one point read, a miss in the common case); the hot DvP path then pays a dict lookup.
A write goes through the registry, which updates its cache and the overlay together.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from datetime import date
from typing import Generic, Protocol, TypeVar

from node.config import ID_BYTES_MAX
from node.invariant import require
from node.settlement._codec import Reader, Writer
from node.settlement._model import (
    Genesis,
    Instrument,
    InstrumentKind,
    Participant,
    decode_instrument,
    decode_participant,
    encode_instrument,
    encode_participant,
    payment_schedule,
)
from node.settlement._schedule import day_start_ms
from node.settlement._state import RecordKind

__all__ = ["Attestation", "Records", "Registry"]

_PARTICIPANT = bytes([RecordKind.PARTICIPANT])
_INSTRUMENT = bytes([RecordKind.INSTRUMENT])
_ATTESTATION = bytes([RecordKind.SUPPLY_ATTESTATION])
_ADDED_KEY = bytes([RecordKind.ADDED])
_SINCE = bytes([RecordKind.PARTICIPANT_SINCE])
_OBSERVER_AT = bytes([RecordKind.OBSERVER_AT])


class Records(Protocol):
    """What a registry reads: a StateView or an Overlay."""

    def record(self, key: bytes) -> bytes | None: ...

    def records(
        self, prefix: bytes
    ) -> Iterator[tuple[bytes, bytes]] | list[tuple[bytes, bytes]]: ...


class Writable(Records, Protocol):
    def put_record(self, key: bytes, value: bytes) -> None: ...


def _pad(ident: str) -> bytes:
    return ident.encode("ascii").ljust(ID_BYTES_MAX, b"\0")


def _id_of(key: bytes) -> str:
    return key[1:].rstrip(b"\0").decode("ascii")


Attestation = tuple[int, bytes]  # (as_of_ms, attestation_sha256)


V = TypeVar("V")
V_co = TypeVar("V_co", covariant=True)


class _Lookup(Mapping[str, V], Generic[V]):
    """A read-only mapping over a registry's loader: what ``Genesis.participant_by_id``
    and friends are, but at the registry's point in the ledger."""

    __slots__ = ("_cache", "_ids", "_load")

    def __init__(self, load: Lookup[V], ids: Ids, cache: dict[str, V | None]) -> None:
        # The registry's own cache, read first: the hot DvP path then costs one dict
        # lookup per id instead of a call into the loader.
        self._load, self._ids, self._cache = load, ids, cache

    def _get(self, key: str) -> V | None:
        try:
            return self._cache[key]
        except KeyError:
            return self._load(key)

    def __getitem__(self, key: str) -> V:
        v = self._get(key)
        if v is None:
            raise KeyError(key)
        return v

    def get(self, key: str, default: V | None = None) -> V | None:  # type: ignore[override]
        v = self._get(key)
        return default if v is None else v

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self._get(key) is not None

    def __iter__(self) -> Iterator[str]:
        return iter(self._ids())

    def __len__(self) -> int:
        return len(self._ids())


class Lookup(Protocol[V_co]):
    def __call__(self, key: str, /) -> V_co | None: ...


class Ids(Protocol):
    def __call__(self) -> tuple[str, ...]: ...


class Registry:
    """Participants, instruments and admins at one point of the ledger (see the module
    docstring); genesis values unless a governance record replaces them."""

    __slots__ = (
        "_ids",
        "_instruments",
        "_new",
        "_observed",
        "_participants",
        "_schedules",
        "genesis",
        "instrument_by_id",
        "participant_by_id",
        "schedules",
        "source",
    )

    def __init__(self, genesis: Genesis, source: Records) -> None:
        self.genesis, self.source = genesis, source
        self._participants: dict[str, Participant | None] = {}
        self._instruments: dict[str, Instrument | None] = {}
        self._schedules: dict[str, tuple[int, ...] | None] = {}
        self._ids: tuple[str, ...] | None = None
        self._new: list[str] = []  # participants this registry added (one block's)
        # participants this registry wrote (one block's): whether each observed before
        self._observed: dict[str, bool] = {}
        self.participant_by_id: Mapping[str, Participant] = _Lookup(
            self.participant, lambda: self.participant_ids, self._participants
        )
        self.instrument_by_id: Mapping[str, Instrument] = _Lookup(
            self.instrument, self._instrument_ids, self._instruments
        )
        self.schedules: Mapping[str, tuple[int, ...]] = _Lookup(
            self.schedule, lambda: (), self._schedules
        )

    @classmethod
    def of(cls, view: StateViewLike) -> Registry:
        """The registry of a store or any StateView (at its head)."""
        return cls(view.genesis, view)

    @classmethod
    def at_genesis(cls, genesis: Genesis) -> Registry:
        """Genesis values only: what a client checks offline before it has a certified
        answer (a key governance rotated or added is not in it)."""
        return cls(genesis, _NoRecords())

    @classmethod
    def from_values(
        cls,
        genesis: Genesis,
        participants: Iterable[Participant],
        instruments: Iterable[Instrument],
        attestations: Mapping[str, Attestation] | None = None,
    ) -> Registry:
        """A registry holding these values (a node's GetReference answer, on a client):
        each one that differs from genesis becomes the record governance would write."""
        reg = cls(genesis, _MemoryRecords())
        for p in participants:
            if genesis.participant_by_id.get(p.id) != p:
                reg.put_participant(p, new=p.id not in genesis.participant_by_id)
        for i in instruments:
            if genesis.instrument_by_id.get(i.id) != i:
                reg.put_instrument(i, new=i.id not in genesis.instrument_by_id)
        for iid, (as_of_ms, digest) in (attestations or {}).items():
            reg.put_attestation(iid, as_of_ms, digest)
        return reg

    # --- identity of the chain: never changes --------------------------------------
    @property
    def chain_id(self) -> str:
        return self.genesis.chain_id

    @property
    def genesis_time_ms(self) -> int:
        return self.genesis.genesis_time_ms

    @property
    def admins(self) -> tuple[str, ...]:
        return self.genesis.admins

    @property
    def threshold(self) -> int:
        return self.genesis.admin_threshold

    # --- reads --------------------------------------------------------------------
    def participant(self, pid: str) -> Participant | None:
        if pid in self._participants:
            return self._participants[pid]
        raw = self.source.record(_PARTICIPANT + _pad(pid)) if _fits(pid) else None
        if raw is None:
            p = self.genesis.participant_by_id.get(pid)
        else:
            r = Reader(raw)
            p = decode_participant(r, pid)
            r.done()
        self._participants[pid] = p
        return p

    def instrument(self, iid: str) -> Instrument | None:
        if iid in self._instruments:
            return self._instruments[iid]
        raw = self.source.record(_INSTRUMENT + _pad(iid)) if _fits(iid) else None
        if raw is None:
            inst = self.genesis.instrument_by_id.get(iid)
        else:
            r = Reader(raw)
            inst = decode_instrument(r, iid)
            r.done()
        self._instruments[iid] = inst
        return inst

    def schedule(self, iid: str) -> tuple[int, ...] | None:
        """A bond's or fund's payment dates (00:00 UTC ms, period 1 first); None for cash
        and unknown ids."""
        if iid in self._schedules:
            return self._schedules[iid]
        inst = self.instrument(iid)
        s: tuple[int, ...] | None = None
        if inst is not None and inst.kind is not InstrumentKind.CASH:
            s = self.genesis.schedules.get(iid)
            if s is None:  # added by governance, validated then like a genesis one
                s = payment_schedule(inst, self.genesis.genesis_time_ms)
        self._schedules[iid] = s
        return s

    def maturity_ms(self, iid: str) -> int | None:
        """00:00 UTC of a bond's maturity date; None for anything else."""
        inst = self.instrument(iid)
        if inst is None or inst.kind is not InstrumentKind.BOND:
            return None
        return day_start_ms(date.fromisoformat(inst.maturity_date))

    @property
    def participant_ids(self) -> tuple[str, ...]:
        """Every participant id, sorted: the order every payment to holders follows."""
        if self._ids is None:
            added = (_id_of(k) for k, _ in self.source.records(_PARTICIPANT))
            self._ids = tuple(sorted({*self.genesis.participant_by_id, *added}))
        return self._ids

    def participants_at(self, height: int) -> tuple[str, ...]:
        """The participant ids registered after block ``height`` (sorted): those of now,
        less those a later block added (participants are never removed)."""
        ids = self.participant_ids
        if not self.added()[0]:
            return ids
        since = {_id_of(k): Reader(v).u64() for k, v in self.source.records(_SINCE)}
        return tuple(p for p in ids if since.get(p, 0) <= height)

    def observers_at(self, height: int) -> frozenset[str]:
        """The participants that held an observer role after block ``height``: genesis's
        roles, then each one's last ``OBSERVER_AT`` change at or before ``height``
        (records sort by id, then height). Roles are not kept per height, so this, not
        the participants' records (which hold their roles now), is what a node serving an
        older block works its party index out with."""
        status = {p.id: p.observer for p in self.genesis.participants}
        for key, value in self.source.records(_OBSERVER_AT):
            if int.from_bytes(key[-8:], "big") <= height:
                r = Reader(value)
                status[_id_of(key[:-8])] = r.flag()
                r.done()
        return frozenset(p for p, observes in status.items() if observes)

    def _instrument_ids(self) -> tuple[str, ...]:
        """Genesis order, then those governance added in id order."""
        known = self.genesis.instrument_by_id
        added = sorted(i for i in map(_id_of, (k for k, _ in self.source.records(_INSTRUMENT))))
        return (*(i.id for i in self.genesis.instruments), *(i for i in added if i not in known))

    def added(self) -> tuple[int, int]:
        """(participants, instruments) governance added to genesis's."""
        raw = self.source.record(_ADDED_KEY)
        if raw is None:
            return 0, 0
        r = Reader(raw)
        out = r.u32(), r.u32()
        r.done()
        return out

    def attestation(self, iid: str) -> Attestation | None:
        """The last SetMaxSupply's (as_of_ms, attestation_sha256) of ``iid``."""
        raw = self.source.record(_ATTESTATION + _pad(iid))
        if raw is None:
            return None
        r = Reader(raw)
        out = r.u64(), r.fixed(32)
        r.done()
        return out

    # --- writes (execution only, through the block's overlay) ---------------------
    def _writable(self) -> Writable:
        src = self.source
        require(hasattr(src, "put_record"), "a registry over a StateView is read-only")
        return src  # type: ignore[return-value]

    def put_participant(self, p: Participant, *, new: bool) -> None:
        w = self._writable()
        if p.id not in self._observed:  # its first write this block: what it was before
            before = None if new else self.participant(p.id)
            self._observed[p.id] = before is not None and before.observer
        w.put_record(_PARTICIPANT + _pad(p.id), encode_participant(Writer(), p).finish())
        self._participants[p.id] = p
        if new:
            self._count_added(1, 0)
            self._ids = None
            self._new.append(p.id)

    def record_added(self, height: int) -> None:
        """Note block ``height`` as where the participants this registry added were added,
        and where those whose observer role it changed changed (execution, once per
        block; no write when it did neither)."""
        for pid in self._new:
            self._writable().put_record(_SINCE + _pad(pid), Writer().u64(height).finish())
        self._new.clear()
        for pid, before in sorted(self._observed.items()):
            after = self.participant_by_id[pid].observer
            if after != before:
                key = _OBSERVER_AT + _pad(pid) + height.to_bytes(8, "big")
                self._writable().put_record(key, Writer().flag(after).finish())
        self._observed.clear()

    def put_instrument(self, inst: Instrument, *, new: bool) -> None:
        w = self._writable()
        w.put_record(_INSTRUMENT + _pad(inst.id), encode_instrument(Writer(), inst).finish())
        self._instruments[inst.id] = inst
        self._schedules.pop(inst.id, None)
        if new:
            self._count_added(0, 1)

    def put_attestation(self, iid: str, as_of_ms: int, digest: bytes) -> None:
        value = Writer().u64(as_of_ms).fixed(digest, 32).finish()
        self._writable().put_record(_ATTESTATION + _pad(iid), value)

    def _count_added(self, participants: int, instruments: int) -> None:
        p, i = self.added()
        value = Writer().u32(p + participants).u32(i + instruments).finish()
        self._writable().put_record(_ADDED_KEY, value)


class _MemoryRecords:
    def __init__(self) -> None:
        self._records: dict[bytes, bytes] = {}

    def record(self, key: bytes) -> bytes | None:
        return self._records.get(key)

    def records(self, prefix: bytes) -> list[tuple[bytes, bytes]]:
        return sorted((k, v) for k, v in self._records.items() if k.startswith(prefix))

    def put_record(self, key: bytes, value: bytes) -> None:
        self._records[key] = value


class _NoRecords:
    def record(self, key: bytes) -> bytes | None:
        return None

    def records(self, prefix: bytes) -> list[tuple[bytes, bytes]]:
        return []


class StateViewLike(Records, Protocol):
    @property
    def genesis(self) -> Genesis: ...


def _fits(ident: str) -> bool:
    """Only a well-formed id can have a record (a client's typo must not raise here)."""
    try:
        raw = ident.encode("ascii")
    except UnicodeEncodeError:
        return False
    return 0 < len(raw) <= ID_BYTES_MAX and b"\0" not in raw
