"""The settlement state as execution sees it: the read interface and a block's overlay.

State is balances, supplies, the transaction index and **state records**
(docs/adr/0013-state-records.md): a sorted key-value space for everything the ledger
remembers beyond balances (coupon periods paid, holdings redeemed, pending
instructions). A record key is a ``RecordKind`` byte followed by fixed-width big-endian
fields, so keys of one kind sort in the order of their fields and a prefix scan walks
them in that order. Values are canonical encodings (``node.codec``) that each kind's
module owns. Records are part of the state root like every balance.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from enum import IntEnum
from typing import TYPE_CHECKING, Protocol

from node.config import RECORD_KEY_BYTES_MAX, RECORD_VALUE_BYTES_MAX, U64_MAX
from node.invariant import require
from node.settlement._model import Genesis
from node.settlement._result import ResultCode

if TYPE_CHECKING:
    from node.settlement._registry import Registry

__all__ = ["Head", "Overlay", "RecordKind", "StateView", "TxRecord"]


class RecordKind(IntEnum):
    """The first byte of a record key. Values are stable: they are on disk and under the
    state root. Each kind's module documents its key fields and value encoding."""

    # life (issue 14 items 1-3): node/settlement/_lifecycle.py documents them
    COUPON_PAID = 1
    DISTRIBUTED = 2
    REDEEMED = 3
    # pend: pending settlement (node/settlement/_pending.py)
    PENDING = 16
    PENDING_OUTCOME = 17
    PENDING_COUNT = 18
    PENDING_RECHECK = 19
    PENDING_PARTY = 20
    # freeze: freezes (node/settlement/_freeze.py)
    FREEZE = 32
    FREEZE_COUNT = 33
    # gov: reference data (node/settlement/_registry.py)
    PARTICIPANT = 48
    INSTRUMENT = 49
    SUPPLY_ATTESTATION = 50
    ADDED = 51
    PARTICIPANT_SINCE = 52  # the block that added a participant (ADR 0025)
    OBSERVER_AT = 53  # a block that changed whether a participant observes (ADR 0025)
    # reserve: attestations (node/settlement/_reserve.py)
    CUSTODY = 64
    RESERVES = 65
    # kyc: KYC tier rules and AML (node/settlement/_compliance.py)
    KYC_RULES = 80
    KYC_VOLUME = 81
    # lock: locks (issue 18 item 1; node/settlement/_lock.py documents them). 96-111.
    LOCK = 96
    LOCK_TOTAL = 97
    LOCK_HOLDER = 98
    LOCK_SECURED = 99
    LOCK_DEFAULT = 100
    LOCK_COUNT = 101
    # repo: repurchase agreements (issue 18 item 2; node/settlement/_repo.py). 112-127.
    REPO = 112
    REPO_PARTY = 113
    REPO_OPEN_COUNT = 114
    REPO_CLOSE_TX = 115
    REPO_DUE = 116  # an open repo by its default deadline (session 31: repos lapse)
    REPO_NEXT_DUE = 117
    # margin: price attestations (node/settlement/_price.py)
    PRICE = 128


@dataclass(frozen=True, slots=True)
class Head:
    height: int
    block_hash: bytes
    state_root: bytes


@dataclass(frozen=True, slots=True)
class TxRecord:
    """Where and how a transaction id was first recorded."""

    height: int
    position: int
    code: ResultCode


class StateView(Protocol):
    """Read access to the state as of the last committed block."""

    @property
    def genesis(self) -> Genesis: ...

    def head(self) -> Head: ...

    def balance(self, account: str, instrument: str) -> int: ...

    def supply(self, instrument: str) -> int: ...

    def tx_record(self, tx_id: bytes) -> TxRecord | None: ...

    def record(self, key: bytes) -> bytes | None: ...

    def records(self, prefix: bytes) -> Iterator[tuple[bytes, bytes]]:
        """Every record whose key starts with ``prefix``, in key order."""
        ...


def check_record(key: bytes, value: bytes | None) -> None:
    """A record write within the limits every store can keep (``require``: a breach is a
    bug in the kind's module, never a client's input)."""
    require(0 < len(key) <= RECORD_KEY_BYTES_MAX, f"record key of {len(key)} bytes")
    require(value is None or len(value) <= RECORD_VALUE_BYTES_MAX, "record value too large")


class Overlay:
    """The block's writes on top of the view; reads see earlier transactions of the block."""

    __slots__ = ("balances", "recorded", "records_written", "registry", "supplies", "view")

    def __init__(self, view: StateView) -> None:
        # Imported here: the registry reads records through an overlay (ADR 0016).
        from node.settlement._registry import Registry

        self.view = view
        self.balances: dict[tuple[str, str], int] = {}
        self.supplies: dict[str, int] = {}
        self.recorded: dict[bytes, TxRecord] = {}
        self.records_written: dict[bytes, bytes | None] = {}  # None: deleted
        # The block's reference data: reads see this block's governance writes.
        self.registry: Registry = Registry(view.genesis, self)

    def balance(self, account: str, instrument: str) -> int:
        v = self.balances.get((account, instrument))
        return self.view.balance(account, instrument) if v is None else v

    def supply(self, instrument: str) -> int:
        v = self.supplies.get(instrument)
        return self.view.supply(instrument) if v is None else v

    def seen(self, tx_id: bytes) -> bool:
        return tx_id in self.recorded or self.view.tx_record(tx_id) is not None

    def record(self, key: bytes) -> bytes | None:
        if key in self.records_written:
            return self.records_written[key]
        return self.view.record(key)

    def records(self, prefix: bytes) -> list[tuple[bytes, bytes]]:
        """Every live record under ``prefix`` in key order, this block's writes included.
        A list, not an iterator: callers write while they walk."""
        merged = dict(self.view.records(prefix))
        for key, value in self.records_written.items():
            if key.startswith(prefix):
                if value is None:
                    merged.pop(key, None)
                else:
                    merged[key] = value
        return sorted(merged.items())

    def put_record(self, key: bytes, value: bytes) -> None:
        check_record(key, value)
        self.records_written[key] = value

    def delete_record(self, key: bytes) -> None:
        check_record(key, None)
        self.records_written[key] = None

    def move(self, instrument: str, src: str, dst: str, amount: int) -> None:
        """Move ``amount``; the caller has already checked both bounds."""
        src_bal, dst_bal = self.balance(src, instrument), self.balance(dst, instrument)
        require(amount <= src_bal and dst_bal + amount <= U64_MAX, "unchecked move")
        self.balances[(src, instrument)] = src_bal - amount
        self.balances[(dst, instrument)] = dst_bal + amount

    def adjust_supply(self, instrument: str, holder: str, delta: int) -> None:
        """Mint (delta > 0) or burn (delta < 0); balance and supply move together."""
        bal, sup = self.balance(holder, instrument), self.supply(instrument)
        require(0 <= bal + delta <= U64_MAX and 0 <= sup + delta <= U64_MAX, "unchecked mint")
        self.balances[(holder, instrument)] = bal + delta
        self.supplies[instrument] = sup + delta
