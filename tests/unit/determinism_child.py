"""Child process for test_determinism.py: executes a file of blocks on a fresh store and
prints, after every block, what the validators must agree on.

    python -m tests.unit.determinism_child GENESIS BLOCKS KIND DIR [--inject hash-order]

``GENESIS`` is a genesis file (read with ``load_genesis``, as a validator does),
``BLOCKS`` one block per line: ``time_ms`` then the block's transactions in hex, spaces
between. ``KIND`` is ``memory`` or ``lmdb`` (in ``DIR``). An LMDB run is a validator's
life: it checks every transaction through a ``crypto.VerifiedSignatures`` first and
executes with it (admission, then execution using the memo), and it closes and reopens
its store every ``REOPEN_EVERY`` blocks (a restart: every cache starts cold), so a memo or
cache hit that changed an outcome would show; the memory run verifies every signature
afresh and never restarts.

Printed, one line per block: the height, the state root, the results root and every
result (``r`` recorded, ``u`` unrecorded copy, ``e`` event, then the code's number); then
one ``state`` line, the SHA-256 of every non-zero balance and every state record at the
end (so two stores that agree on every root also agree on what they hold). At the end
one ``repos`` line, every repo as ``id:status:defaulter:how`` (``how`` is ``lapsed`` for a
repo that defaulted with no close submitted, session 31: the parent reads who defaulted
here; the lapse's event is on its block's line since review 32). At the end
every block's party index is worked out again from the store at its head, as a node
serving an older block does (``node.runtime._source.party_index``), and must be the one
its execution certified (exit status 1 and a message if not).

``--inject hash-order`` is the negative control: recycling walks the pending book in the
order of a Python set, which depends on the process's string and bytes hashing
(PYTHONHASHSEED); the parent checks that its comparison catches it.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from node import crypto
from node.genesis import load_genesis
from node.runtime._source import party_index
from node.settlement import (
    BlockContext,
    Genesis,
    Registry,
    RepoRecord,
    RepoStatus,
    _compliance,
    all_repos,
    apply_block,
    precheck,
)
from node.settlement._state import Overlay, RecordKind
from node.store import LmdbStore, MemoryStore, Storage

INJECT_HASH_ORDER = "hash-order"
REOPEN_EVERY = 37  # blocks between two restarts of an LMDB run
_PENDING = bytes([RecordKind.PENDING])


def _inject_hash_order() -> None:
    """Recycling sees the pending book in set order (the negative control's defect)."""
    ordered = Overlay.records

    def in_set_order(self: Overlay, prefix: bytes) -> list[tuple[bytes, bytes]]:
        found = ordered(self, prefix)
        return list(set(found)) if prefix == _PENDING else found

    Overlay.records = in_set_order  # type: ignore[method-assign]


def _result(flag: int, code: int) -> str:
    return f"{'ure'[flag]}{code}"


def _state(store: Storage) -> str:
    """A digest of every non-zero balance and every state record."""
    h = crypto.sha256(repr(sorted(store.all_balances().items())).encode())
    for kind in range(256):
        for key, value in store.records(bytes([kind])):
            h = crypto.sha256(h, len(key).to_bytes(4, "big"), key, value)
    return h.hex()


def run(
    genesis: Genesis, blocks: Sequence[tuple[int, list[bytes]]], kind: str, directory: str
) -> None:
    lmdb = kind == "lmdb"
    store: Storage = LmdbStore(directory, genesis) if lmdb else MemoryStore(genesis)
    verify = crypto.VerifiedSignatures(100_000) if lmdb else crypto.verify
    for time_ms, txs in blocks:
        if lmdb and store.head().height % REOPEN_EVERY == REOPEN_EVERY - 1:
            store.close()
            store = LmdbStore(directory, genesis)
            _compliance._decoded.cache_clear()  # cold, as in a new process
        if isinstance(verify, crypto.VerifiedSignatures):
            reg = Registry.of(store)
            for raw in txs:
                precheck(reg, raw, verify.admit)
        ctx = BlockContext(store.head().height + 1, time_ms)
        out = apply_block(store, txs, ctx, verify=verify)
        store.commit_block(crypto.sha256(b"block", ctx.time_ms.to_bytes(8, "big")), b"", b"",
                           ctx, out)  # fmt: skip
        results = " ".join(_result(r.flag, r.code) for r in out.results)
        print(ctx.height, out.state_root.hex(), out.results_root.hex(), results)
    print("state", _state(store))
    print("repos", " ".join(_repo_line(r) for r in all_repos(store)))
    _check_rebuilt(store, blocks)
    store.close()


def _repo_line(rec: RepoRecord) -> str:
    lapsed = rec.status is RepoStatus.DEFAULTED and not any(rec.close_tx)
    return f"{rec.id}:{rec.status.name}:{rec.defaulter or '-'}:{'lapsed' if lapsed else 'ended'}"


def _check_rebuilt(store: Storage, blocks: Sequence[tuple[int, list[bytes]]]) -> None:
    """Every block's party index, worked out again at the head as a node serving an
    older block (or restarting) does, is the one its execution certified."""
    for height, (_, txs) in enumerate(blocks, start=1):
        sb = store.block(height)
        assert sb is not None and sb.parties is not None
        rebuilt = party_index(store, sb, tuple(txs))
        if rebuilt.top != sb.parties:
            raise SystemExit(f"block {height}: the party index worked out again differs")


def _blocks(path: Path) -> list[tuple[int, list[bytes]]]:
    out = []
    for line in path.read_text().splitlines():
        time_ms, *txs = line.split(" ")
        out.append((int(time_ms), [bytes.fromhex(t) for t in txs]))
    return out


def main(argv: Sequence[str]) -> int:
    genesis_path, blocks_path, kind, directory, *rest = argv
    if rest == ["--inject", INJECT_HASH_ORDER]:
        _inject_hash_order()
    elif rest:
        raise SystemExit(f"unknown options {rest}")
    run(load_genesis(genesis_path), _blocks(Path(blocks_path)), kind, directory)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
