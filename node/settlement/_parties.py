"""Theory of operation: which positions of a block name each party, committed (ADR 0025).

A non-observer reads a block party-filtered: only the transactions that name it, and the
corporate actions every participant reads (``CouponPay``, ``Distribute``, ``RedeemAll``).
Each one shown carries its receipt, but a receipt proves what is there, not that nothing
was left out. So execution commits, for every block with transactions, to a *party
index*: a Merkle tree (node.merkle, RFC 6962) whose leaves are, in key order,

- leaf 0, key ``""`` (sorts before every participant id): the public positions;
- one leaf per participant registered after the block, sorted by id (ASCII): the
  positions of the transactions whose body names it (``tx_names``).

A leaf is ``PARTY_LEAF || u16 len || key || digest``, ``digest = SHA-256(PARTY_POSITIONS
|| salt || u8 observer || u32 n || u32 position * n)`` and ``salt = SHA-256(PARTY_SALT ||
secret || key)``, the block ``secret = SHA-256(PARTIES_SECRET || u32 n || tx id * n)``
over the ids of the block's transactions in position order. ``observer`` is 1 when the
participant held an observer role (``OBSERVER_ROLES``) after the block: an observer reads
whole blocks, so a block filtered for it hides the others' trades, and its client must
learn that from the ledger, not from a node's reference data (the public leaf's is 0).
A party learns its own salt (in its proof) and the public one, never the secret: its
neighbours' digests, in its Merkle path or its absence proof, tell it nothing about
their positions or roles. A caller who knows every id of the block sees every
transaction of it already.

Every participant has a leaf, even with no position, so the ids in the tree are the
registry's, which every participant reads (GetReference): no leaf and no absence proof
tells who traded. A caller not registered after the block (added later) proves it has
no leaf with its two neighbours (adjacent leaves whose keys enclose it), and was no
observer then.

The index's size and root are the last leaf of the block's results tree
(``LEAF_PARTIES``), which the next block's header certifies (ADR 0005). A proof
(``PartyProof``) is encoded with the settlement codec and decodes or fails with its
``DecodeError``; ``PartyProof.positions_for`` checks it and returns the positions the
caller must be shown and whether it was an observer, or raises ``PartyProofError``.

Pure: no I/O, no clock, no randomness.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from node import crypto, merkle, tags
from node.config import BLOCK_TXS_MAX, ID_BYTES_MAX, MERKLE_PATH_LEN_MAX
from node.invariant import require
from node.settlement._codec import DecodeError, Reader, Writer
from node.settlement._tx import (
    CouponPay,
    Distribute,
    RedeemAll,
    SignedTx,
    Transaction,
    decode_body,
)

__all__ = [
    "PUBLIC_KEY",
    "PartyIndex",
    "PartyLeaf",
    "PartyProof",
    "PartyProofError",
    "PartyRoot",
    "decode_party_proof",
    "parties_leaf",
    "raw_names",
    "tx_names",
    "tx_public",
]

PUBLIC_KEY = ""  # the public leaf's key: before every participant id in byte order
_PRESENT, _ABSENT = 1, 2


class PartyProofError(ValueError):
    """A party proof that decodes but does not prove the positions it claims."""


def tx_public(tx: Transaction) -> bool:
    """A corporate action: its body names the instrument and the paying agent, nothing
    about any holder, so every participant reads it (node/access.py)."""
    return isinstance(tx, CouponPay | Distribute | RedeemAll)


def tx_names(tx: Transaction) -> frozenset[str]:
    """Every string a body names (any field but the chain id, of whatever kind, nested
    values too, so a new transaction kind is covered with no change here) and its
    required signers. The access layer keeps those that are participant ids."""
    named = set(tx.required_signers())
    for name in _fields(type(tx)):
        _strings(getattr(tx, name), named)
    return frozenset(named)


_FIELDS: dict[type, tuple[str, ...]] = {}  # per dataclass: its field names but the chain id


def _fields(kind: type) -> tuple[str, ...]:
    names = _FIELDS.get(kind)
    if names is None:
        names = tuple(f.name for f in dataclasses.fields(kind) if f.name != "chain_id")
        _FIELDS[kind] = names
    return names


def _strings(value: object, out: set[str]) -> None:
    if isinstance(value, str):
        out.add(value)
    elif isinstance(value, tuple | list | frozenset):
        for v in value:
            _strings(v, out)
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        for name in _fields(type(value)):
            _strings(getattr(value, name), out)


def raw_names(raw: bytes) -> tuple[frozenset[str], bool]:
    """(names, public) of a signed transaction; an undecodable one names nobody."""
    try:
        tx = decode_body(SignedTx.decode(raw).body)
    except DecodeError:
        return frozenset(), False
    return tx_names(tx), tx_public(tx)


def _key_bytes(key: str) -> bytes:
    return key.encode("ascii")


# A party index is built for every block with transactions, one leaf per participant
# (10,000 at most): these two encode with struct directly, not the codec's Writer (three
# times the calls), the same bytes (tests/unit/test_party_index.py checks them against it).
_U16 = struct.Struct(">H")


def leaf_data(key: str, digest: bytes) -> bytes:
    """``PARTY_LEAF || u16 len || key || digest``."""
    kb = _key_bytes(key)
    require(len(kb) <= ID_BYTES_MAX and len(digest) == crypto.HASH_LEN, "a party leaf's fields")
    return tags.PARTY_LEAF + _U16.pack(len(kb)) + kb + digest


def positions_digest(salt: bytes, positions: Sequence[int], observer: bool) -> bytes:
    """``SHA-256(PARTY_POSITIONS || salt || u8 observer || u32 n || u32 position * n)``."""
    n = len(positions)
    body = struct.pack(f">?I{n}I", observer, n, *positions)
    return hashlib.sha256(tags.PARTY_POSITIONS + salt + body).digest()


def parties_leaf(size: int, root: bytes) -> bytes:
    """The results tree's last leaf: the party index's size and root (``LEAF_PARTIES``).
    The size is committed too, so a proof's leaf indexes are the tree's (an RFC 6962 path
    checked against a claimed size could place a leaf of the right edge elsewhere)."""
    w = Writer().raw(tags.LEAF_PARTIES).u32(size)
    return w.fixed(root, crypto.HASH_LEN).finish()


@dataclass(frozen=True, slots=True)
class PartyRoot:
    """A party index's size and root: all the block's results tree holds of it (its last
    leaf). A node stores it with the block, so a receipt from an older block builds the
    results tree without working the index out again (ADR 0025, amendment)."""

    size: int
    root: bytes

    @property
    def leaf(self) -> bytes:
        return parties_leaf(self.size, self.root)


def _extended(prefix: Any, data: bytes) -> bytes:
    """SHA-256 of the prefix ``prefix`` has hashed, then ``data``."""
    h = prefix.copy()
    h.update(data)
    return bytes(h.digest())


class PartyIndex:
    """The party index of one block, built by execution (and by a node serving an older
    block again, from the same inputs). ``named``: per position, the names of its body
    and whether it is public; ``keys``: the participant ids registered after the block;
    ``tx_ids``: the ids of its transactions in position order; ``observers``: the
    participants that held an observer role after the block (``Registry.observers_at``)."""

    __slots__ = ("_digests", "_keys", "_observers", "_positions", "_salts", "_tree", "tx_count")

    def __init__(
        self,
        named: Sequence[tuple[frozenset[str], bool]],
        keys: Iterable[str],
        tx_ids: Sequence[bytes],
        *,
        observers: Iterable[str],
    ) -> None:
        require(len(tx_ids) == len(named), "a party index needs one id per transaction")
        self.tx_count = len(named)
        ordered = sorted({PUBLIC_KEY, *keys}, key=_key_bytes)
        # Only keys can be flagged (the public leaf is nobody's); a block with no
        # transactions has no index, so it certifies no flag either.
        keyed = frozenset(ordered) - {PUBLIC_KEY}
        self._observers = keyed.intersection(observers) if named else frozenset()
        positions: dict[str, list[int]] = {k: [] for k in ordered}
        for pos, (names, public) in enumerate(named):
            if public:
                positions[PUBLIC_KEY].append(pos)
            for n in names:
                mine = positions.get(n) if n != PUBLIC_KEY else None
                if mine is not None:
                    mine.append(pos)
        self._keys = tuple(ordered)
        self._positions = {k: tuple(v) for k, v in positions.items()}
        if not named:  # nothing to hide: no tree (an idle cluster's empty blocks)
            self._salts: dict[str, bytes] = {}
            self._digests: dict[str, bytes] = {}
            self._tree = merkle.MerkleTree([])
            return
        w = Writer().u32(len(tx_ids))
        for tid in tx_ids:
            w.fixed(tid, crypto.HASH_LEN)
        secret = crypto.sha256(tags.PARTIES_SECRET, w.finish())
        salted = hashlib.sha256(tags.PARTY_SALT + secret)  # each salt: this prefix, then the key
        self._salts = {k: _extended(salted, _key_bytes(k)) for k in ordered}
        self._digests = {
            k: positions_digest(self._salts[k], self._positions[k], k in self._observers)
            for k in ordered
        }
        self._tree = merkle.MerkleTree([leaf_data(k, self._digests[k]) for k in ordered])

    @property
    def leaf(self) -> bytes:
        """The index's size and root as the block's results tree holds them (its last
        leaf); an empty tree's for a block with no transactions."""
        return parties_leaf(self._tree.size, self._tree.root)

    @property
    def top(self) -> PartyRoot:
        """The index's size and root (what a node stores with the block)."""
        return PartyRoot(self._tree.size, self._tree.root)

    def positions(self, party: str) -> tuple[int, ...]:
        """What a party-filtered read shows ``party``: its positions and the public ones."""
        mine = self._positions.get(party, ()) if party != PUBLIC_KEY else ()
        return tuple(sorted({*mine, *self._positions[PUBLIC_KEY]}))

    def observer(self, party: str) -> bool:
        """Whether ``party`` held an observer role after the block, as its leaf commits: a
        node gives it the whole block, since its client refuses a filtered one. False
        for a block with no transactions (no index, and no transaction to hide)."""
        return party in self._observers

    def proof(self, party: str) -> PartyProof:
        """The proof of ``party``'s leaf (or of its absence) and of the public leaf."""
        if not self.tx_count:
            raise ValueError("a block with no transactions has no party index")
        public = self._opened(0)
        keys = self._keys
        if party != PUBLIC_KEY and party in self._positions:
            return PartyProof(self._tree.size, public, self._opened(keys.index(party)), ())
        left = 0
        for i, k in enumerate(keys):  # the last key before ``party``
            if _key_bytes(k) < _key_bytes(party):
                left = i
        around = [self._leaf(left)]
        if left + 1 < len(keys):
            around.append(self._leaf(left + 1))
        return PartyProof(self._tree.size, public, None, tuple(around))

    def _leaf(self, index: int) -> PartyLeaf:
        k = self._keys[index]
        return PartyLeaf(index, k, self._digests[k], self._tree.path(index))

    def _opened(self, index: int) -> OpenedLeaf:
        k = self._keys[index]
        flag, path = k in self._observers, self._tree.path(index)
        return OpenedLeaf(index, k, self._salts[k], flag, self._positions[k], path)


@dataclass(frozen=True, slots=True)
class PartyLeaf:
    """A neighbour's leaf as an absence proof shows it: its key and digest, not its
    positions."""

    index: int
    key: str
    digest: bytes
    path: tuple[bytes, ...]

    def root(self, size: int) -> bytes | None:
        return merkle.root_from_path(leaf_data(self.key, self.digest), self.index, size, self.path)


@dataclass(frozen=True, slots=True)
class OpenedLeaf:
    """A leaf shown with its salt, observer flag and positions (the caller's own, or the
    public one, whose flag is always 0)."""

    index: int
    key: str
    salt: bytes
    observer: bool
    positions: tuple[int, ...]
    path: tuple[bytes, ...]

    def root(self, size: int) -> bytes | None:
        digest = positions_digest(self.salt, self.positions, self.observer)
        return merkle.root_from_path(leaf_data(self.key, digest), self.index, size, self.path)


@dataclass(frozen=True, slots=True)
class PartyProof:
    """The public leaf, and the caller's leaf (``mine``) or, when it has none, the one or
    two adjacent leaves whose keys enclose it (``around``), in a tree of ``size``."""

    size: int
    public: OpenedLeaf
    mine: OpenedLeaf | None
    around: tuple[PartyLeaf, ...]

    def encode(self) -> bytes:
        w = Writer().u32(self.size)
        _put_opened(w, self.public, with_key=False)
        if self.mine is not None:
            w.u8(_PRESENT)
            _put_opened(w, self.mine, with_key=True)
        else:
            w.u8(_ABSENT).u8(len(self.around))
            for leaf in self.around:
                w.u32(leaf.index).blob16(_key_bytes(leaf.key), ID_BYTES_MAX)
                w.fixed(leaf.digest, crypto.HASH_LEN)
                _put_path(w, leaf.path)
        return w.finish()

    def positions_for(self, party: str, tx_count: int) -> tuple[bytes, tuple[int, ...], bool]:
        """Check this proof for ``party`` in a block of ``tx_count`` transactions: every
        leaf leads to one root, the public leaf is leaf 0, the caller's leaf names it (or
        the leaves around it enclose it, adjacent). Returns (the results-tree leaf of that
        size and root; the positions to show: the caller's and the public ones, sorted;
        whether ``party`` held an observer role after the block: its leaf's flag, False
        with no leaf); PartyProofError if anything fails. The caller then checks that leaf
        is the one the block's certified results tree ends with."""
        if not tx_count:
            raise PartyProofError("a block with no transactions has no party index")
        if not party.isascii() or not party:
            raise PartyProofError(f"{party!r} is not a participant id")
        if self.public.index != 0 or self.public.key != PUBLIC_KEY:
            raise PartyProofError("the public leaf is not leaf 0")
        root = self.public.root(self.size)
        if root is None:
            raise PartyProofError("the public leaf's path does not fit the tree")
        mine: tuple[int, ...] = ()
        observer = False  # no leaf: not registered after the block, so no observer then
        if self.mine is not None:
            if self.mine.key != party or self.mine.index == 0:
                raise PartyProofError(f"the leaf shown is {self.mine.key!r}'s, not {party!r}'s")
            if self.mine.root(self.size) != root:
                raise PartyProofError(f"{party}'s leaf does not lead to the public leaf's root")
            mine, observer = self.mine.positions, self.mine.observer
        else:
            self._check_absence(party, root)
        for ps in (self.public.positions, mine):
            if any(not 0 <= p < tx_count for p in ps) or any(
                a >= b for a, b in itertools.pairwise(ps)
            ):
                raise PartyProofError("positions out of order, repeated or past the block")
        shown = tuple(sorted({*mine, *self.public.positions}))
        return parties_leaf(self.size, root), shown, observer

    def _check_absence(self, party: str, root: bytes) -> None:
        key = _key_bytes(party)
        if not 1 <= len(self.around) <= 2:
            raise PartyProofError("an absence proof shows one or two neighbouring leaves")
        left = self.around[0]
        right = self.around[1] if len(self.around) == 2 else None
        if not _key_bytes(left.key) < key or (left.index == 0) != (left.key == PUBLIC_KEY):
            raise PartyProofError(f"the left neighbour {left.key!r} does not sort before {party!r}")
        if right is None:
            if left.index != self.size - 1:
                raise PartyProofError("the left neighbour is not the last leaf, and no right one")
        elif right.index != left.index + 1 or not key < _key_bytes(right.key):
            raise PartyProofError(f"the neighbours do not enclose {party!r}, adjacent")
        for leaf in self.around:
            if leaf.root(self.size) != root:
                raise PartyProofError("a neighbour's leaf does not lead to the public leaf's root")


def _put_opened(w: Writer, leaf: OpenedLeaf, *, with_key: bool) -> None:
    w.u32(leaf.index)
    if with_key:  # the caller's leaf: its key and observer flag (the public leaf's is 0)
        w.blob16(_key_bytes(leaf.key), ID_BYTES_MAX).flag(leaf.observer)
    w.fixed(leaf.salt, crypto.HASH_LEN)
    w.limit(len(leaf.positions), BLOCK_TXS_MAX, "positions of a party")
    w.u32(len(leaf.positions))
    for p in leaf.positions:
        w.u32(p)
    _put_path(w, leaf.path)


def _put_path(w: Writer, path: Sequence[bytes]) -> None:
    w.limit(len(path), MERKLE_PATH_LEN_MAX, "hashes in a Merkle path")
    w.u8(len(path))
    for h in path:
        w.fixed(h, crypto.HASH_LEN)


def _get_opened(r: Reader, *, key: str | None) -> OpenedLeaf:
    index = r.u32()
    k, observer = (_get_key(r), r.flag()) if key is None else (key, False)
    salt = r.fixed(crypto.HASH_LEN)
    n = r.limit(r.u32(), BLOCK_TXS_MAX, "positions of a party")
    positions = tuple(r.u32() for _ in range(n))
    return OpenedLeaf(index, k, salt, observer, positions, _get_path(r))


def _get_key(r: Reader) -> str:
    raw = r.blob16(ID_BYTES_MAX)
    try:
        return raw.decode("ascii")
    except UnicodeDecodeError as e:
        raise DecodeError("a party key is not ASCII") from e


def _get_path(r: Reader) -> tuple[bytes, ...]:
    n = r.limit(r.u8(), MERKLE_PATH_LEN_MAX, "hashes in a Merkle path")
    return tuple(r.fixed(crypto.HASH_LEN) for _ in range(n))


def decode_party_proof(data: bytes) -> PartyProof:
    """The proof ``data`` encodes; DecodeError (the settlement codec's) if it is not one
    canonical encoding (short, trailing bytes, a bad kind, a limit broken)."""
    r = Reader(data)
    size = r.u32()
    public = _get_opened(r, key=PUBLIC_KEY)
    kind = r.u8()
    if kind == _PRESENT:
        proof = PartyProof(size, public, _get_opened(r, key=None), ())
    elif kind == _ABSENT:
        count = r.u8()
        if not 1 <= count <= 2:
            raise DecodeError(f"an absence proof shows 1 or 2 leaves, not {count}")
        around = tuple(
            PartyLeaf(r.u32(), _get_key(r), r.fixed(crypto.HASH_LEN), _get_path(r))
            for _ in range(count)
        )
        proof = PartyProof(size, public, None, around)
    else:
        raise DecodeError(f"unknown party proof kind {kind}")
    r.done()
    return proof
