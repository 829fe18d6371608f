"""Replaying committed blocks on the client: the ledger's state at a past height, proven.

The store keeps no history, so a node can only say who holds what now. A client that reads
full blocks 1..H (each certified by a quorum, checked by ``AsyncLedgerClient._block_view``)
and executes them with the settlement layer's own ``apply_block`` reaches the state after
block H itself. Block h+1's certified header carries the state root after block h, so each
replayed root is checked against the quorum's: the answer rests on the quorum, not on the
word of the node that served the blocks. The root after the head block is certified by no
header yet; the replay says so (``proven`` False) instead of pretending.
"""

from __future__ import annotations

from dataclasses import dataclass

from client._errors import BadResponseError, InvalidFieldError, PermissionDeniedError
from node.settlement import (
    BlockContext,
    Genesis,
    Instrument,
    InstrumentKind,
    Redeemed,
    Registry,
    apply_block,
    instrument_state,
)

__all__ = ["HoldersAt", "Replay", "ReplayedBlock"]


@dataclass(frozen=True, slots=True)
class ReplayedBlock:
    """What a replay needs of one committed block (a ``BlockView`` has these fields)."""

    height: int
    hash: bytes
    time_ms: int
    certificate: bytes
    raw_txs: tuple[bytes, ...]
    prior_root: bytes  # the header's state root after block height - 1
    filtered: bool = False  # a party-filtered copy that hides transactions


@dataclass(frozen=True, slots=True)
class HolderAt:
    account: str
    units: int
    redeemed_units: int
    redeemed_paid: int


@dataclass(frozen=True, slots=True)
class HoldersAt:
    """A bond's or fund's holders (participant id order) and paid periods (period -> (cash
    paid in all, holders paid)) after block ``height``, replayed on the client from genesis.
    ``proven``: block height+1's certified header carries ``state_root``; False only when
    ``height`` was the head (no header certifies its root yet)."""

    instrument: str
    height: int
    holders: tuple[HolderAt, ...]
    paid: dict[int, tuple[int, int]]
    state_root: bytes
    proven: bool


class Replay:
    """Blocks 1, 2, ... applied in order on a MemoryStore from genesis, each one's prior
    root checked against the replayed state before it is applied."""

    def __init__(self, genesis: Genesis) -> None:
        # Imported here: node.store's package loads LMDB, which the SDK otherwise never
        # imports (a client without a replay stays free of the storage engine).
        from node.store import MemoryStore

        self.store = MemoryStore(genesis)

    @property
    def height(self) -> int:
        return self.store.head().height

    def check_root(self, block: ReplayedBlock) -> None:
        """Refuse ``block`` unless its header's prior root is the replayed root after
        block ``height - 1`` (BadResponseError: a forged block or a divergent replay)."""
        if block.filtered:
            raise PermissionDeniedError(
                f"block {block.height} came filtered to the caller's own transactions: a "
                "replay needs full blocks; ask as a regulator, compliance or auditor"
            )
        head = self.store.head()
        if block.height != head.height + 1:
            raise BadResponseError(f"block {block.height} given after block {head.height}")
        if block.prior_root != head.state_root:
            raise BadResponseError(
                f"block {block.height}'s header certifies a state root after block "
                f"{head.height} that the replay did not reach: a block was altered, or this "
                "client executes differently from the validators"
            )

    def apply(self, block: ReplayedBlock) -> None:
        """Check ``block`` (check_root) and execute it on the replayed state."""
        self.check_root(block)
        ctx = BlockContext(block.height, block.time_ms)
        outcome = apply_block(self.store, block.raw_txs, ctx)
        self.store.commit_block(block.hash, b"", block.certificate, ctx, outcome)

    def holders(self, instrument: str, *, proven: bool) -> HoldersAt:
        """``instrument``'s holders in the replayed state (every holder: the caller read
        full blocks, so it may read every holding)."""
        inst = _payable(Registry.of(self.store), instrument)  # governance's too
        state = instrument_state(self.store, inst)
        units = dict(state.holdings)
        accounts = sorted(set(units) | set(state.redeemed))
        return HoldersAt(
            instrument=inst.id,
            height=self.height,
            holders=tuple(_holder(a, units.get(a, 0), state.redeemed.get(a)) for a in accounts),
            paid={k: (p.total, p.holders) for k, p in sorted(state.paid.items())},
            state_root=self.store.head().state_root,
            proven=proven,
        )


def _payable(reg: Registry, instrument: str) -> Instrument:
    inst = reg.instrument(instrument)
    if inst is None or inst.kind is InstrumentKind.CASH:
        raise InvalidFieldError(
            "instrument", f"{instrument!r} is not a bond or fund of this ledger"
        )
    return inst


def _holder(account: str, units: int, redeemed: Redeemed | None) -> HolderAt:
    done = Redeemed(0, 0) if redeemed is None else redeemed
    return HolderAt(account, units, done.units, done.paid)
