"""LMDB store: one environment per node, one fsynced write transaction per block.

Sub-databases: ``meta`` (chain id, genesis, head), ``blocks``/``certs``/``blockmeta``/
``results``/``parties`` by big-endian height (``parties``: the size and root of the
block's party index, ADR 0025; absent for blocks a store of before session 20 wrote),
``txindex`` (tx id -> height, position, code), ``balances`` (account NUL instrument ->
u64), ``supply`` and ``intake`` (u64 arrival number + tx_key(raw) -> tx id + raw: client
transactions acknowledged and not yet committed, docs/adr/0006; keyed by arrival so that
a restart replays them in the order the FIFO mempool had them; an entry of a store of
before review 31 is keyed by tx_key(raw) alone and replays first). The consensus core's
vote and lock live beside them in the data directory, in their own small file with one
fdatasync per save (``SAFETY_FILE``, docs/adr/0010); the ``safety`` sub-database only
held them before that, and is read once to migrate.

LMDB's copy-on-write B-tree commits atomically, so a process killed at any instant reopens
at the old head or the new one (tests/unit/test_crash.py kills a writer with SIGKILL to
check). The map size starts small and doubles when full, up to LMDB_MAP_SIZE_MAX_BYTES
(or the ``map_size_max_bytes`` given), instead of failing the commit; at the ceiling, and
on any other LMDB error (disk full, I/O error), a write raises StorageError and the
validator halts (fail-stop).

Single-threaded use: reads go through one cached read transaction that is renewed after
every commit, so reads between two commits see one consistent snapshot.
"""

from __future__ import annotations

import fcntl
import functools
import os
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

import lmdb

from node import codec, config
from node.crypto import HASH_LEN
from node.invariant import require
from node.settlement import (
    BlockOutcome,
    Genesis,
    Head,
    TxRecord,
    genesis_state_root,
)
from node.store import _records as rec
from node.store._base import GenesisMismatchError, Storage, StorageError, StoredBlock
from node.store._safety_file import SafetyFile, fsync_dir

__all__ = ["SAFETY_FILE", "LmdbStore"]

SAFETY_FILE = "consensus-safety"  # in the data directory, next to LMDB's data.mdb
_SAFETY_KEY = b"consensus"  # where the safety state lived in LMDB before SAFETY_FILE

_DBS = (
    "meta",
    "blocks",
    "certs",
    "blockmeta",
    "results",
    "txindex",
    "balances",
    "supply",
    "safety",  # read once to migrate to SAFETY_FILE, then emptied
    "intake",
    "records",  # state records (ADR 0013): key -> canonical value
    "parties",  # height -> its party index's size and root (ADR 0025, amendment)
)


_F = TypeVar("_F", bound=Callable[..., Any])
_T = TypeVar("_T")


def _reading(method: _F) -> _F:
    """An LMDB read that fails (I/O error, a closed environment) or finds a record that
    does not decode (a corrupt data directory) raises StorageError."""

    @functools.wraps(method)
    def wrapper(self: LmdbStore, *args: Any) -> Any:
        try:
            return method(self, *args)
        except lmdb.Error as e:
            raise self._failed(StorageError(f"LMDB read failed: {type(e).__name__}: {e}")) from e
        except codec.DecodeError as e:
            raise self._failed(StorageError(f"corrupt record in the data directory: {e}")) from e

    return wrapper  # type: ignore[return-value]


def _check_file_covers_pages(env: lmdb.Environment, path: str) -> None:
    """StorageError unless data.mdb holds every page its meta page names: LMDB maps the
    file, and the first read of a page past its end (a file cut short by a bad restore or
    a full disk during a copy) killed the process with SIGBUS, saying nothing (session
    29's review)."""
    info, stat = env.info(), env.stat()
    needed = (info["last_pgno"] + 1) * stat["psize"]
    size = os.path.getsize(os.path.join(path, "data.mdb"))
    if size < needed:
        raise StorageError(
            f"{path}/data.mdb is {size} bytes but its last page ends at {needed}: the file "
            "was cut short; restore the data directory"
        )


_ARRIVAL_BYTES = 8  # an intake entry's arrival number, before its tx_key


def _arrival(stored: bytes) -> int:
    """The arrival number of an intake entry's LMDB key; -1 for none (a legacy key)."""
    if len(stored) != _ARRIVAL_BYTES + HASH_LEN:
        return -1
    return int.from_bytes(stored[:_ARRIVAL_BYTES], "big")


def _got(raw: Any) -> bytes:
    """A record every committed height has; its absence is a corrupt data directory."""
    if raw is None:
        raise rec.RecordError("a committed block's record is missing")
    return bytes(raw)


def _bkey(account: str, instrument: str) -> bytes:
    return f"{account}\x00{instrument}".encode("ascii")


def _split_bkey(key: bytes) -> tuple[str, str]:
    """(account, instrument) of a balance key; RecordError if it is not ``_bkey``'s form."""
    parts = key.decode("ascii", errors="replace").split("\x00")
    if len(parts) != 2 or not key.isascii():
        raise rec.RecordError(f"balance key {key[:80]!r} is not ASCII account NUL instrument")
    return parts[0], parts[1]


class LmdbStore(Storage):
    def __init__(
        self,
        path: str | os.PathLike[str],
        genesis: Genesis,
        *,
        map_size_bytes: int = config.LMDB_MAP_SIZE_INITIAL_BYTES,
        map_size_max_bytes: int = config.LMDB_MAP_SIZE_MAX_BYTES,
    ) -> None:
        os.makedirs(path, mode=0o700, exist_ok=True)
        self._genesis = genesis
        self._map_size_max = min(map_size_max_bytes, config.LMDB_MAP_SIZE_MAX_BYTES)
        self._lock: int | None = _lock_directory(os.fspath(path))
        try:
            self._env = lmdb.open(
                os.fspath(path),
                map_size=min(map_size_bytes, self._map_size_max),
                max_dbs=config.LMDB_MAX_DBS,
                max_readers=config.LMDB_MAX_READERS,
                sync=True,
                metasync=True,
            )
        except lmdb.Error as e:  # not an LMDB file (cut inside its meta pages, overwritten)
            self._unlock()
            raise StorageError(f"cannot open the data directory {path}: {e}") from e
        except BaseException:
            self._unlock()
            raise
        self._rtxn: Any = None
        try:
            _check_file_covers_pages(self._env, os.fspath(path))
            self._db = {name: self._env.open_db(name.encode()) for name in _DBS}
            self._init_or_check_genesis(os.fspath(path))
            self._head = self._read_head()
            self._intake_keys = self._intake_index()
            self._intake_next = _arrival(next(reversed(self._intake_keys.values()), b"")) + 1
            self._safety = self._safety_io("open", lambda: self._open_safety(os.fspath(path)))
        except BaseException:
            self._close_lmdb()
            raise

    # --- setup -----------------------------------------------------------------------
    def _init_or_check_genesis(self, path: str) -> None:
        stored = self._txn().get(b"chain_id", db=self._db["meta"])
        if stored is not None:
            self._check_format()
            if bytes(stored) != self._genesis.chain_id.encode():
                shown = bytes(stored).decode(errors="replace")[:16]
                raise GenesisMismatchError(
                    f"data directory holds chain {shown}..., genesis is "
                    f"{self._genesis.chain_id[:16]}...; use the matching genesis or a new "
                    "data directory"
                )
            return
        for name in (SAFETY_FILE, SAFETY_FILE + ".tmp"):
            if os.path.exists(os.path.join(path, name)):
                # This validator voted here: its store cannot be new. An emptied data.mdb (a
                # failed restore, a copy cut short) started again from genesis would lose
                # the acknowledged intake and the committed head (session 29's review).
                raise StorageError(
                    f"{path} holds no chain but has {name}: this validator ran here and its "
                    "store was lost or emptied; restore the data directory, or (after "
                    "recovery from the other validators, docs/deploy.md) start from a new one"
                )
        self._write(self._write_genesis)
        # A new data directory: its entry in its parent made durable before the node can
        # vote (POSIX promises a new directory's entry only after an fsync of its parent;
        # the safety file's saves sync the directory itself). Gone after a power failure,
        # it would take the safety file with it: a restart as if it had never voted.
        parent = os.path.dirname(os.path.abspath(path))
        try:
            fsync_dir(parent)
        except OSError as e:
            raise StorageError(
                f"cannot make the new data directory durable in {parent}: {e.strerror or e}"
            ) from e

    def _check_format(self) -> None:
        """Refuse a data directory made under another genesis format (its first byte):
        its stored results and records use another numbering of result codes (ADR 0020),
        which this node would misread. Said before the chain id check, which would also
        fail, with a message that hides why."""
        stored = self._txn().get(b"genesis", db=self._db["meta"])
        have = b"" if stored is None else bytes(stored[:1])
        want = self._genesis.canonical_bytes[:1]
        if have != want:
            found = have[0] if have else "none"
            raise StorageError(
                f"data directory written with genesis format {found}; this node reads format "
                f"{want[0]} (result codes renumbered, docs/adr/0020-wire-conventions.md): "
                "start a new data directory under a genesis made by this version"
            )

    def _write_genesis(self, txn: Any) -> None:
        g = self._genesis
        meta = self._db["meta"]
        txn.put(b"chain_id", g.chain_id.encode(), db=meta)
        txn.put(b"genesis", g.canonical_bytes, db=meta)
        supply: dict[str, int] = {}
        for h in g.holdings:
            txn.put(
                _bkey(h.account, h.instrument), rec.encode_u64(h.amount), db=self._db["balances"]
            )
            supply[h.instrument] = supply.get(h.instrument, 0) + h.amount
        for inst, amount in supply.items():
            txn.put(inst.encode(), rec.encode_u64(amount), db=self._db["supply"])
        head = Head(0, bytes(HASH_LEN), genesis_state_root(g))
        txn.put(b"head", rec.encode_head(head), db=meta)

    def _read_head(self) -> Head:
        raw = self._txn().get(b"head", db=self._db["meta"])
        try:
            return rec.decode_head(b"" if raw is None else bytes(raw))
        except rec.RecordError as e:
            raise StorageError(
                f"store has no valid head record ({e}); the data directory is corrupt"
            ) from e

    # --- transactions ----------------------------------------------------------------
    def _txn(self) -> Any:
        if self._rtxn is None:
            self._rtxn = self._env.begin()
        return self._rtxn

    def _drop_reader(self) -> None:
        if self._rtxn is not None:
            self._rtxn.abort()
            self._rtxn = None

    def _write(self, fn: Callable[[Any], None]) -> None:
        """Run ``fn`` in one durable write transaction, growing the map when it is full.
        Any other LMDB failure (disk full, I/O error) aborts the transaction and raises
        StorageError: the store is still at its last durable commit."""
        self._drop_reader()
        while True:
            try:
                with self._env.begin(write=True) as txn:
                    fn(txn)
                return
            except lmdb.MapFullError:
                self._grow()
            except lmdb.Error as e:
                raise self._failed(
                    StorageError(f"LMDB write failed: {type(e).__name__}: {e}")
                ) from e

    def _grow(self) -> None:
        size = self._env.info()["map_size"]
        if size >= self._map_size_max:
            raise self._failed(
                StorageError(
                    f"LMDB map reached its limit of {self._map_size_max} bytes; "
                    "raise LMDB_MAP_SIZE_MAX_BYTES or free disk space"
                )
            )
        self._env.set_mapsize(min(size * config.LMDB_MAP_GROW_FACTOR, self._map_size_max))

    # --- StateView ---------------------------------------------------------------------
    @property
    def genesis(self) -> Genesis:
        return self._genesis

    def head(self) -> Head:
        return self._head

    @_reading
    def balance(self, account: str, instrument: str) -> int:
        raw = self._txn().get(_bkey(account, instrument), db=self._db["balances"])
        return 0 if raw is None else rec.decode_u64(bytes(raw))

    @_reading
    def supply(self, instrument: str) -> int:
        raw = self._txn().get(instrument.encode(), db=self._db["supply"])
        return 0 if raw is None else rec.decode_u64(bytes(raw))

    @_reading
    def tx_record(self, tx_id: bytes) -> TxRecord | None:
        raw = self._txn().get(tx_id, db=self._db["txindex"])
        return None if raw is None else rec.decode_tx_record(bytes(raw))

    @_reading
    def record(self, key: bytes) -> bytes | None:
        raw = self._txn().get(key, db=self._db["records"])
        return None if raw is None else bytes(raw)

    @_reading
    def records(self, prefix: bytes) -> Iterator[tuple[bytes, bytes]]:
        # A list read in one go: a caller may commit (and so renew the read transaction)
        # before it finishes walking; kinds bound their own number of records.
        out: list[tuple[bytes, bytes]] = []
        cursor = self._txn().cursor(db=self._db["records"])
        if cursor.set_range(prefix):
            for key, value in cursor:
                if not bytes(key).startswith(prefix):
                    break
                out.append((bytes(key), bytes(value)))
        return iter(out)

    @_reading
    def all_balances(self) -> dict[tuple[str, str], int]:
        out: dict[tuple[str, str], int] = {}
        for key, raw in self._txn().cursor(db=self._db["balances"]):
            value = rec.decode_u64(bytes(raw))
            if value:
                account, instrument = _split_bkey(bytes(key))
                out[(account, instrument)] = value
        return out

    @_reading
    def block(self, height: int) -> StoredBlock | None:
        if not 0 < height <= self._head.height:
            return None
        key = rec.encode_u64(height)
        txn = self._txn()
        block_hash, root, time_ms = rec.decode_block_meta(
            _got(txn.get(key, db=self._db["blockmeta"]))
        )
        results = rec.decode_results(_got(txn.get(key, db=self._db["results"])))
        parties = txn.get(key, db=self._db["parties"])  # None: written before session 20
        return StoredBlock(
            height,
            block_hash,
            _got(txn.get(key, db=self._db["blocks"])),
            _got(txn.get(key, db=self._db["certs"])),
            time_ms,
            root,
            results,
            None if parties is None else rec.decode_party_root(bytes(parties)),
        )

    # --- writes ------------------------------------------------------------------------
    def _write_block(
        self, block: StoredBlock, outcome: BlockOutcome, intake_done: Sequence[bytes]
    ) -> None:
        pruned: list[bytes] = []

        def fn(txn: Any) -> None:
            nonlocal pruned
            pruned = self._intake_delete(txn, intake_done)
            key = rec.encode_u64(block.height)
            txn.put(key, block.block_bytes, db=self._db["blocks"])
            txn.put(key, block.certificate, db=self._db["certs"])
            meta = rec.encode_block_meta(block.block_hash, block.state_root, block.time_ms)
            txn.put(key, meta, db=self._db["blockmeta"])
            txn.put(key, rec.encode_results(block.results), db=self._db["results"])
            if block.parties is not None:  # always: commit_block takes it from the outcome
                txn.put(key, rec.encode_party_root(block.parties), db=self._db["parties"])
            for tid, record in outcome.recorded:
                # overwrite=False: an id is recorded once, ever; apply_block guarantees it.
                fresh = txn.put(
                    tid, rec.encode_tx_record(record), db=self._db["txindex"], overwrite=False
                )
                require(fresh, f"transaction id {tid.hex()} recorded twice")
            for (account, instrument), value in outcome.balances.items():
                txn.put(_bkey(account, instrument), rec.encode_u64(value), db=self._db["balances"])
            for instrument, value in outcome.supplies.items():
                txn.put(instrument.encode(), rec.encode_u64(value), db=self._db["supply"])
            for rkey, rvalue in outcome.records.items():
                if rvalue is None:
                    txn.delete(rkey, db=self._db["records"])
                else:
                    txn.put(rkey, rvalue, db=self._db["records"])
            head = Head(block.height, block.block_hash, block.state_root)
            txn.put(b"head", rec.encode_head(head), db=self._db["meta"])

        self._write(fn)
        self._head = Head(block.height, block.block_hash, block.state_root)
        self._intake_forget(pruned)

    # --- intake log ----------------------------------------------------------------------
    def intake_put(self, entries: Sequence[tuple[bytes, bytes, bytes]]) -> None:
        # tx_key -> (LMDB key, value): a new entry at the next arrival number; one already
        # there keeps its key, so its place (its value, a function of the key, is the same)
        put: dict[bytes, tuple[bytes, bytes]] = {}
        fresh = 0
        for key, tid, raw in entries:
            require(len(key) == len(tid) == HASH_LEN, "intake keys and ids are 32 bytes")
            stored = self._intake_keys.get(key) or put.get(key, (b"", b""))[0]
            if not stored:
                stored = (self._intake_next + fresh).to_bytes(_ARRIVAL_BYTES, "big") + key
                fresh += 1
            put[key] = (stored, rec.encode_intake(tid, raw))

        def fn(txn: Any) -> None:
            for stored, value in put.values():
                txn.put(stored, value, db=self._db["intake"])

        if entries:
            self._write(fn)
            self._intake_next += fresh
            self._intake_keys.update((key, stored) for key, (stored, _) in put.items())

    @_reading
    def intake(self) -> list[tuple[bytes, bytes]]:
        """In arrival order (docs/adr/0006, amendment): the FIFO mempool's order."""
        cursor = self._txn().cursor(db=self._db["intake"])
        found = sorted(((bytes(k), bytes(v)) for k, v in cursor), key=lambda kv: len(kv[0]))
        return [rec.decode_intake(v) for _, v in found]

    def intake_count(self) -> int:
        return len(self._intake_keys)

    def intake_drop(self, keys: Sequence[bytes]) -> None:
        dropped: list[bytes] = []

        def fn(txn: Any) -> None:
            nonlocal dropped
            dropped = self._intake_delete(txn, keys)

        if keys:
            self._write(fn)
            self._intake_forget(dropped)

    def _intake_delete(self, txn: Any, keys: Sequence[bytes]) -> list[bytes]:
        """Delete the entries of these tx_keys; the tx_keys it deleted."""
        if not self._intake_keys:
            return []  # the common case under no backlog: nothing to look up
        gone = []
        for key in keys:
            stored = self._intake_keys.get(key)
            if stored is not None and txn.delete(stored, db=self._db["intake"]):
                gone.append(key)
        return gone

    def _intake_forget(self, keys: Sequence[bytes]) -> None:
        for key in keys:
            del self._intake_keys[key]

    @_reading
    def _intake_index(self) -> dict[bytes, bytes]:
        """tx_key -> the entry's LMDB key, in arrival order: entries of a store of before
        review 31 (keyed by tx_key alone, no arrival number) first, in key order."""
        cursor = self._txn().cursor(db=self._db["intake"])
        stored = sorted((bytes(k) for k in cursor.iternext(values=False)), key=len)
        if any(len(k) not in (HASH_LEN, _ARRIVAL_BYTES + HASH_LEN) for k in stored):
            raise rec.RecordError("an intake key of neither 32 nor 40 bytes")
        return {k[-HASH_LEN:]: k for k in stored}

    # --- consensus safety state (docs/adr/0010) -------------------------------------------
    def save_safety(self, data: bytes) -> None:
        self._safety_io("save", lambda: self._safety.save(data))

    def load_safety(self) -> bytes | None:
        return self._safety_io("load", self._safety.load)

    def _open_safety(self, path: str) -> SafetyFile:
        """Open SAFETY_FILE; on the first start after an upgrade, move the state LMDB held
        into it (the file is durable before the LMDB copy is deleted, so a crash between
        the two migrates again or finds the file, holding that copy). Both present and
        different means an older version ran here after the upgrade (a rollback) and
        kept votes the file never saw: refused, never one of them thrown away."""
        file = SafetyFile(os.path.join(path, SAFETY_FILE))
        try:
            old = self._legacy_safety()
            if old is not None:
                if file.exists() and not file.holds(old):
                    raise StorageError(
                        f"LMDB's safety sub-database in {path} holds a consensus state the "
                        f"file {SAFETY_FILE} never held: an older version ran on this data "
                        "directory after the upgrade and voted from it. Refusing to guess "
                        "which is newer (docs/adr/0010-safety-state-file.md, step 6)"
                    )
                if not file.exists():
                    file.save(old)
                self._write(lambda txn: txn.delete(_SAFETY_KEY, db=self._db["safety"]))
        except BaseException:
            file.close()
            raise
        return file

    @_reading
    def _legacy_safety(self) -> bytes | None:
        raw = self._txn().get(_SAFETY_KEY, db=self._db["safety"])
        return None if raw is None else bytes(raw)

    def _safety_io(self, what: str, fn: Callable[[], _T]) -> _T:
        """``fn()``; an I/O error or a corrupt file raises StorageError (fail-stop)."""
        try:
            return fn()
        except StorageError as e:
            raise self._failed(e) from None
        except OSError as e:
            raise self._failed(
                StorageError(f"safety-state file {what} failed: {type(e).__name__}: {e}")
            ) from e

    def close(self) -> None:
        self._safety.close()
        self._close_lmdb()

    def _close_lmdb(self) -> None:
        self._drop_reader()
        self._env.close()
        self._unlock()

    def _unlock(self) -> None:
        if self._lock is not None:
            os.close(self._lock)  # releases the flock
            self._lock = None


def _lock_directory(path: str) -> int:
    """An exclusive flock on the data directory, held by the returned descriptor: a second
    process on the same directory (a supervisor's restart of a node it wrongly thinks dead,
    two containers on one volume) would vote with this validator's key from its own
    safety state: equivocation. The kernel drops the lock when the process dies, so a
    crash leaves none behind."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise StorageError(
            f"data directory {path} is in use by another process (a second validator on it "
            "would vote with the same key: equivocation); stop that one first"
        ) from None
    except BaseException:
        os.close(fd)
        raise
    return fd
