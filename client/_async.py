"""The asyncio client: endpoints, failover, submit with finality, queries, iterators.

Theory of operation. The client holds one TLS channel per endpoint (opened on first use)
and a *current* endpoint. Every call runs on the current endpoint; when that node is down
(UNAVAILABLE, a dropped connection, no answer within ``rpc_timeout_s``), silent while a
finality wait is parked there (it does not answer a status probe: paused, partitioned,
stuck), or answers with something that fails verification against genesis, the call
moves on to the next endpoint and repeats, at most ``FAILOVER_ROUNDS_MAX`` times per
endpoint. A node that stops answering is left within ``SILENT_NODE_FAILOVER_S``. The new
endpoint stays current for later calls. RESOURCE_EXHAUSTED (saturated node) is retried
on the next node with exponential backoff, at most ``BUSY_RETRIES_MAX`` times (so one
node that always says busy keeps no call); when it carries admission control's
``retry-after-ms`` hint, the call waits the hint (capped, with jitter) while that fits in
its deadline and asks the next node, at most ``OVERLOAD_RETRIES_MAX`` times, then raises
OverloadedError (docs/sdk.md "Overload").

One node's word that a submission is invalid or not permitted is not final: a submit so
refused, or a finality wait (``receipt``, ``wait_settled``), asks the next node once, and
raises only when that node refuses it too. A node
that says a finality wait timed out while more than ``FINALITY_EARLY_TOLERANCE_S`` of it
is left (an honest node never does: the client asks for what is left, within the node's
cap) gave a bad response: the wait moves on to the next node.

Submitting is safe to repeat because a transaction's id is the hash of its signed body
and the ledger applies an id at most once, ever: ``submit`` sends the same bytes to the
next node after a failure and waits there, and any node answers with the one receipt.
Receipts are verified against genesis (``verify_receipt``) before they are returned, and
blocks' commit certificates are checked, so a faulty node cannot make the client report
a trade that did not happen.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import math
from collections.abc import (
    AsyncGenerator,
    AsyncIterator,
    Awaitable,
    Callable,
    Iterator,
    Sequence,
)
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal, TypeVar, overload

import grpc
import grpc.aio

from client._answers import BoundedStub
from client._errors import (
    BadResponseError,
    BusyError,
    ClosedError,
    FinalityTimeoutError,
    InvalidFieldError,
    InvalidTransactionError,
    LedgerError,
    NotFoundError,
    OverloadedError,
    PermissionDeniedError,
    RejectedError,
    UnauthenticatedError,
    UnavailableError,
    with_details,
)
from client._identity import RequestSigner, identity_key
from client._keys import ParticipantKey
from client._limits import (
    ANSWER_PAGE_BYTES,
    BLOCK_STREAM_BEHIND_BLOCKS,
    BLOCK_STREAM_CHECK_S,
    BULK_RPC_TIMEOUT_S,
    BUSY_BACKOFF_BASE_S,
    BUSY_BACKOFF_MAX_S,
    BUSY_RETRIES_MAX,
    ENDPOINTS_MAX,
    FAILOVER_ROUND_BACKOFF_S,
    FAILOVER_ROUNDS_MAX,
    FINALITY_EARLY_TOLERANCE_S,
    OVERLOAD_RETRIES_MAX,
    RECEIVE_MESSAGE_BYTES_MAX,
    RECONNECT_BACKOFF_INITIAL_MS,
    RECONNECT_BACKOFF_MAX_MS,
    REPLAY_BLOCKS_MAX,
    REPLAY_PROGRESS_BLOCKS,
    RPC_TIMEOUT_DEFAULT_S,
    SILENCE_CHECK_S,
    SILENCE_FRESH_S,
    SILENCE_PROBE_TIMEOUT_S,
    SUBMIT_TIMEOUT_DEFAULT_S,
    TIMELINE_SPAN_MAX,
    WAIT_TIMEOUT_MAX_S,
)
from client._pages import read_pages
from client._prices import PriceBook, price_book
from client._reference import Reference, reference_from_pb
from client._replay import HoldersAt, Replay, ReplayedBlock
from client._stream import EOF, SubmitStream, overload_wait_s
from client._trades import SignedTransaction, Transactions, sign
from node.config import U64_MAX
from node.core import (
    Block,
    BlockHeader,
    DecodeError,
    Ed25519Verifier,
    Phase,
    Quorum,
    decode_block,
    decode_header,
    decode_qc,
    verify_certificate,
)
from node.crypto import HASH_LEN, sha256
from node.files import read_regular
from node.genesis import load_genesis
from node.keyfiles import dns_names, pinned_certificates
from node.netconfig import load_network
from node.receipt import (
    CertificateCache,
    InvalidReceiptError,
    Receipt,
    ResultProof,
    verify_block_results,
    verify_party_positions,
    verify_receipt,
)
from node.settlement import (
    QUIET_RESULTS_ROOT,
    Burn,
    Cancel,
    ClaimLock,
    CustodyAttestation,
    DvP,
    FreezeReason,
    FreezeRecord,
    Genesis,
    Hold,
    Lock,
    Mint,
    PendingDvP,
    Redeem,
    Release,
    ReleaseLock,
    RepoRecord,
    ReserveAttestation,
    ResultCode,
    Secured,
    SecuredKind,
    SignedTx,
    Swap,
    Transaction,
    Transfer,
    TxResult,
    decode_body,
    decode_result_code,
)
from node.settlement import DecodeError as TxDecodeError
from node.wire import RETRY_AFTER_METADATA
from node.wire import ledger_pb2 as pb
from node.wire.errors import Details, from_trailer

__all__ = [
    "AccountEvent",
    "AsyncLedgerClient",
    "Balances",
    "BlockEvent",
    "BlockTx",
    "BlockView",
    "Endpoint",
    "EndpointDown",
    "HolderView",
    "InstrumentView",
    "LockView",
    "NodeStatusView",
    "PendingTrade",
    "Settlement",
    "TxStatus",
]

T = TypeVar("T")
_Code = grpc.StatusCode
# The refusals a node answers a call with (node/runtime/_refuse.py). Every other code is
# the node's failure, not an answer: it is gone or unfit to answer (UNAVAILABLE,
# DEADLINE_EXCEEDED, INTERNAL, ...), busy (RESOURCE_EXHAUSTED, handled apart), or says
# what no Ledger node says (ABORTED, FAILED_PRECONDITION, DATA_LOSS, ...): another node may
# well answer.
_REFUSALS = frozenset(
    {_Code.INVALID_ARGUMENT, _Code.PERMISSION_DENIED, _Code.NOT_FOUND, _Code.UNAUTHENTICATED}
)


# --- values ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Endpoint:
    """A node's client port and the name its TLS certificate proves (``node-00``)."""

    address: str
    server_name: str


@dataclass(frozen=True, slots=True)
class Balances:
    """Every instrument's balance of ``account`` (minor units) after block ``height``."""

    account: str
    height: int
    amounts: dict[str, int]


@dataclass(frozen=True, slots=True)
class HolderView:
    """One holder of a bond or fund: units held now and, once redeemed, what it got."""

    account: str
    units: int
    redeemed_units: int
    redeemed_paid: int


@dataclass(frozen=True, slots=True)
class InstrumentView:
    """A bond's or fund's holders (participant id order) and paid periods (period ->
    (cash paid in all, holders paid)) after block ``height``, as one node reports them."""

    instrument: str
    height: int
    holders: tuple[HolderView, ...]
    paid: dict[int, tuple[int, int]]


@dataclass(frozen=True, slots=True)
class Settlement:
    """Where a pending DvP stands, as the node reports it (its word; the receipt's event
    proof proves the code): its latest result ``code`` at leaf ``index`` of block
    ``height``'s results, and the bond units and cash settled so far (ADR 0014)."""

    code: ResultCode
    height: int
    index: int
    settled_quantity: int
    settled_amount: int


@dataclass(frozen=True, slots=True)
class TxStatus:
    """PENDING: not in a block yet (mempool). COMMITTED: final, proven: the receipt carries
    its verified result proof (the ledger recorded the id with ``receipt.code``). INCLUDED:
    the receipt proves only that this copy is in a committed block; the next block proves
    whether the ledger recorded the id, and its result (a copy signed with a key governance
    rotated out is included and refused: ADR 0024)."""

    tx_id: bytes
    state: Literal["PENDING", "INCLUDED", "COMMITTED"]
    receipt: Receipt | None  # set when INCLUDED or COMMITTED
    settlement: Settlement | None = None  # set for a pending DvP recorded as such


@dataclass(frozen=True, slots=True)
class BlockTx:
    """One transaction of a block and the result the node reports for it (certified by
    the next block's header: use a receipt for a proof)."""

    position: int
    tx_id: bytes
    code: ResultCode
    tx: Transaction | None  # None: a body that does not decode (refused MALFORMED)
    raw: bytes
    recorded: bool  # this copy's result is tx_id's outcome; False: forged or duplicate copy


@dataclass(frozen=True, slots=True)
class BlockView:
    """A committed block whose commit certificate was checked against genesis."""

    height: int
    hash: bytes
    time_ms: int
    state_root: bytes
    certificate: bytes
    transactions: tuple[BlockTx, ...]
    # Events at the end of the block: pending trades' outcomes (ADR 0014), repos' lapses (ADR 0017).
    events: tuple[BlockEvent, ...] = ()
    # True when the node showed only the caller's transactions (a caller without an
    # observer role: docs/cluster.md "Security: who reads what"); ``receipts`` then proves
    # each of them in this block, offline, with verify_receipt.
    filtered: bool = False
    receipts: tuple[Receipt, ...] = ()
    # The state root after block ``height - 1`` that this block's certified header carries:
    # what a replay of blocks 1..height-1 must reach (``holders_at``).
    prior_root: bytes = b""
    # The block's transaction count, as its certified header says (a filtered view shows
    # fewer; one of a block without transactions hides none of them).
    tx_count: int = 0
    # The results root of block ``height - 1`` that this block's certified header carries.
    prior_results: bytes = b""
    # A whole block: True when its results, events and ``state_root`` are the ones block
    # ``height + 1``'s certified header commits to (ADR 0026). False only for the last
    # block of an idle chain, shown with no transactions and no events, which no block
    # certifies yet; ``blocks()`` yields it once the next block shows it was quiet. A
    # party-filtered view: True when ``state_root`` is the one the next block's certified
    # header carries (checked with its party proof); False for a block with no
    # transactions, which comes without that proof (its ``state_root`` is the node's word).
    results_proven: bool = True


@dataclass(frozen=True, slots=True)
class BlockEvent:
    """What happened at the end of a block, at leaf ``index`` of its results (after its
    transactions): a pending trade's later outcome, ``code`` (OK: settled,
    PARTIALLY_SETTLED, FAILED_DEADLINE, CANCELLED, MATURED, COSIGN_REQUIRED,
    TRADE_LIMIT) for the trade ``tx_id``; or a repo's lapse, ``REPO_LAPSED``, with
    ``tx_id`` its ``RepoOpen``'s id (``repo_lapse``; review 32)."""

    index: int
    tx_id: bytes
    code: ResultCode

    @property
    def repo_lapse(self) -> bool:
        """A repo still open past its default deadline ended DEFAULTED here; ``tx_id`` is
        the id of the ``RepoOpen`` that opened it (``transaction(tx_id)`` shows its terms),
        and the repo record (``repos``) names the defaulter."""
        return self.code is ResultCode.REPO_LAPSED


@dataclass(frozen=True, slots=True)
class BackedView:
    """A backed instrument at a height (docs/ledger.md "Custody and reserves"): its supply
    and its recorded attestations, oldest first (none: the genesis supply stands)."""

    instrument: str
    custody: bool  # a custody-backed bond; else a reserve-backed cash token
    supply: int
    attestations: tuple[CustodyAttestation, ...] | tuple[ReserveAttestation, ...]


def _backed(msg: pb.BackedInstrument) -> BackedView:
    """A BackedInstrument decoded; BadResponseError for a record that does not decode."""
    try:
        found: tuple[CustodyAttestation, ...] | tuple[ReserveAttestation, ...]
        if msg.custody:
            found = tuple(
                CustodyAttestation.decode(msg.instrument, a.as_of_ms, a.record)
                for a in msg.attestations
            )
        else:
            found = tuple(
                ReserveAttestation.decode(msg.instrument, a.as_of_ms, a.record)
                for a in msg.attestations
            )
    except (TxDecodeError, ValueError) as e:
        raise BadResponseError(f"an attestation of {msg.instrument} does not decode: {e}") from e
    return BackedView(msg.instrument, msg.custody, msg.supply, found)


@dataclass(frozen=True, slots=True)
class LockView:
    """One lock (docs/ledger.md "Locks and swaps"): ``amount`` units of the holder's
    ``instrument`` pledged to ``beneficiary`` until ``until_ms``, securing ``secures``;
    ``defaulted``: the parties recorded as defaulting on that obligation (the
    beneficiary may claim when the holder is one)."""

    lock_id: bytes
    holder: str
    instrument: str
    amount: int
    beneficiary: str
    until_ms: int
    secures: Secured
    height: int
    time_ms: int
    defaulted: tuple[str, ...]

    @property
    def claimable(self) -> bool:
        """Whether the holder's default is recorded (the block time must also be at or
        before ``until_ms`` when the claim executes)."""
        return self.holder in self.defaulted


def _lock_view(k: pb.LockInfo) -> LockView:
    secures = Secured(SecuredKind(k.secured_kind), bytes(k.secured_ref))
    return LockView(
        bytes(k.lock_id), k.holder, k.instrument, k.amount, k.beneficiary, k.until_ms,
        secures, k.height, k.time_ms, tuple(k.defaulted),
    )  # fmt: skip


@dataclass(frozen=True, slots=True)
class PendingTrade:
    """One pending DvP waiting for its legs (docs/ledger.md "Pending settlement")."""

    tx_id: bytes
    height: int
    position: int
    seller: str
    buyer: str
    bond: str
    cash: str
    lot_quantity: int
    lot_amount: int
    lots_left: int
    deadline_ms: int
    held_by_seller: bool
    held_by_buyer: bool

    @property
    def quantity_left(self) -> int:
        return self.lots_left * self.lot_quantity

    @property
    def amount_left(self) -> int:
        return self.lots_left * self.lot_amount


@dataclass(frozen=True, slots=True)
class AccountEvent:
    """A committed transaction naming ``account``; ``legs`` are the account's balance
    changes as (instrument, signed delta), zero for a refused transaction."""

    account: str
    height: int
    position: int
    time_ms: int
    tx_id: bytes
    kind: str  # MINT, BURN, TRANSFER or DVP
    code: ResultCode
    legs: tuple[tuple[str, int], ...]

    @property
    def ok(self) -> bool:
        return self.code is ResultCode.OK


@dataclass(frozen=True, slots=True)
class NodeStatusView:
    endpoint: Endpoint
    chain_id: str
    validator_id: str
    height: int
    view: int
    leader: int
    n: int
    q: int
    peers_connected: int
    mempool_txs: int
    halted: str  # empty unless the node stopped itself
    uptime_ms: int
    state_root: bytes
    block_hash: bytes = b""  # of its block ``height`` (unverified: a node's own word)


@dataclass(frozen=True, slots=True)
class BlockTiming:
    """When one validator first saw each consensus step of a block (wall-clock
    microseconds; 0 = not seen, or forgotten). The leader's marks are when it sent the
    proposal and formed the certificates; ``make bench`` takes the earliest over all."""

    height: int
    proposed_us: int
    prepare_qc_us: int
    commit_qc_us: int
    applied_us: int


@dataclass(frozen=True, slots=True)
class EndpointDown:
    """An endpoint that did not answer a status request, and why."""

    endpoint: Endpoint
    error: str


# --- the client --------------------------------------------------------------------------


class AsyncLedgerClient:
    """The SDK's primary API (``async with AsyncLedgerClient.from_run_dir() as c: ...``).

    Not safe to share between event loops; one client may serve many tasks of one loop.
    """

    def __init__(
        self,
        endpoints: Sequence[Endpoint],
        *,
        tls_certs: bytes,
        genesis: Genesis,
        rpc_timeout_s: float = RPC_TIMEOUT_DEFAULT_S,
        certificates: CertificateCache | None = None,
        identity: ParticipantKey | None = None,
        observer: bool = False,
    ) -> None:
        """``identity``: the participant key every call is signed with (docs/sdk.md
        "Identity"); without one every call is refused as UnauthenticatedError.
        ``observer``: the identity holds an observer role (an auditor's or a regulator's
        app says so): every party-filtered block is then a node's fault, refused and read
        from the next node. Without it a filtered block is refused only where its
        certified party index says the identity was an observer after it, which cannot
        tell an observer appointed since, nor see into a block with no transactions
        (ADR 0025, "Session 21").
        ``tls_certs``: the validators' TLS certificates (PEM, ``run/validators.pem``),
        each of which genesis must pin: an endpoint's one trust root is the pinned
        certificate carrying its ``server_name``, so no CA can vouch for a node.
        ``certificates``: commit certificates verified already, which several clients of
        one genesis may share (each block's certificate is then checked once in all)."""
        if not 0 < len(endpoints) <= ENDPOINTS_MAX:
            raise ValueError(f"give 1..{ENDPOINTS_MAX} endpoints, got {len(endpoints)}")
        if not rpc_timeout_s > 0:
            raise ValueError("rpc_timeout_s must be positive")
        self.endpoints = tuple(endpoints)
        self.genesis = genesis
        self._certified = CertificateCache() if certificates is None else certificates
        self.tx = Transactions(genesis)
        self._rpc_timeout_s = rpc_timeout_s
        # per endpoint, its one trust root and the genesis id of the validator it pins
        self._creds, self._validators = pinned_credentials(self.endpoints, tls_certs, genesis)
        self._channels: dict[int, grpc.aio.Channel] = {}
        self._stubs: dict[int, BoundedStub] = {}
        self._current = 0
        self._answered: dict[int, float] = {}  # endpoint -> loop time of its last answer
        self._probes: dict[int, asyncio.Task[bool]] = {}  # status probes in flight
        self._closed = False  # aclose() ran: no call, no channel from now on (review 34s)
        self._verifier = Ed25519Verifier([v.public_key for v in genesis.validators])
        self._signer = None if identity is None else RequestSigner(identity, genesis)
        if observer and identity is None:
            raise ValueError("observer=True needs the observer's identity")
        self._observer = observer

    @property
    def identity(self) -> str | None:
        """The participant this client calls as (None: no identity)."""
        return None if self._signer is None else self._signer.participant

    def _md(self, i: int, method: str, request: Any = None) -> tuple[tuple[str, str], ...]:
        """Signed identity metadata for one call of Ledger ``method`` to endpoint ``i``
        (signed for the validator whose pinned certificate the endpoint's channel checks:
        no other validator takes it)."""
        if self._signer is None:
            return ()
        return self._signer.metadata(self._validators[i], f"/ledger.v1.Ledger/{method}", request)

    @classmethod
    def from_run_dir(
        cls,
        run_dir: str | Path = "run",
        *,
        rpc_timeout_s: float = RPC_TIMEOUT_DEFAULT_S,
        certificates: CertificateCache | None = None,
        identity: str | Path | ParticipantKey | None = None,
        observer: bool = False,
    ) -> AsyncLedgerClient:
        """Every node of a run directory (network.json, validators.pem, genesis.json);
        ``identity`` a participant id (``"BANK01"``: its key is
        ``<run_dir>/participants/BANK01.key``), a key file's path, or a key."""
        endpoints, pinned, genesis = _run_dir_config(run_dir)
        key = None if identity is None else identity_key(run_dir, identity)
        return cls(
            endpoints,
            tls_certs=pinned,
            genesis=genesis,
            rpc_timeout_s=rpc_timeout_s,
            certificates=certificates,
            identity=key,
            observer=observer,
        )

    @property
    def current_endpoint(self) -> Endpoint:
        """The endpoint the next call goes to first."""
        return self.endpoints[self._current]

    async def __aenter__(self) -> AsyncLedgerClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close every channel. A call in flight in another task ends with ClosedError (so
        does a submit stream's submission), and every later call raises it at once: a
        closed client opens no channel again (review 34s)."""
        self._closed = True
        channels, self._channels, self._stubs = list(self._channels.values()), {}, {}
        for ch in channels:
            await ch.close(None)

    def sign(self, tx: Transaction | SignedTransaction, *keys: ParticipantKey) -> SignedTransaction:
        """:func:`client.sign` against this client's reference data (genesis until
        :meth:`reference` has read the ledger's)."""
        return sign(tx, *keys, genesis=self.tx.reference)

    # --- transport and failover ------------------------------------------------------------

    def _stub(self, i: int) -> Any:
        """Endpoint ``i``'s Ledger stub, whose answers are bounded before they are parsed
        (client/_answers.py: a lying node's flood of tiny entries is refused unbuilt)."""
        if self._closed:
            what = f"a call to {self.endpoints[i].address}"
            raise ClosedError(what, "this client is closed", sent=False)
        stub = self._stubs.get(i)
        if stub is None:
            ep = self.endpoints[i]
            ch = grpc.aio.secure_channel(
                ep.address,
                self._creds[i],
                options=[
                    ("grpc.ssl_target_name_override", ep.server_name),
                    ("grpc.max_receive_message_length", RECEIVE_MESSAGE_BYTES_MAX),
                    ("grpc.initial_reconnect_backoff_ms", RECONNECT_BACKOFF_INITIAL_MS),
                    ("grpc.min_reconnect_backoff_ms", RECONNECT_BACKOFF_INITIAL_MS),
                    ("grpc.max_reconnect_backoff_ms", RECONNECT_BACKOFF_MAX_MS),
                ],
            )
            self._channels[i] = ch
            stub = self._stubs[i] = BoundedStub(ch)
        return stub

    def _page_call(
        self, i: int, method: str, request: Callable[[bytes], Any]
    ) -> Callable[[bytes], Awaitable[Any]]:
        """One page of paged answer ``method`` from endpoint ``i``: what
        :func:`client._pages.read_pages` calls with each page's token. A page refused
        over the caller's read budget waits the node's hint and is asked again (bounded
        as ``_call`` bounds it): a read at the limits costs more than the budget's burst
        (the largest reference data ~0.3 s of the node's CPU), and starting the read
        over on the hint would never end it."""

        async def page(token: bytes) -> Any:
            req = request(token)
            for tries in itertools.count(1):
                try:
                    return await getattr(self._stub(i), method)(
                        req, timeout=self._rpc_timeout_s, metadata=self._md(i, method, req)
                    )
                except grpc.aio.AioRpcError as e:
                    hint_ms = _retry_after_ms(e)
                    if not hint_ms:
                        raise
                    await _wait_overload(f"{method} page", e, hint_ms, tries, None)
            raise AssertionError("unreachable: itertools.count does not end")

        return page

    def _advance(self, failed: int) -> None:
        """Move off endpoint ``failed`` (unless another task already did)."""
        if self._current == failed:
            self._current = (failed + 1) % len(self.endpoints)

    async def _call(
        self,
        what: str,
        fn: Callable[[int], Awaitable[T]],
        deadline: float | None = None,
        *,
        second_opinion: bool = False,
    ) -> T:
        """``fn(endpoint)`` on the current endpoint, failing over and backing off (bounded);
        admission control's hints are honoured until ``deadline`` (loop time). A refusal
        (``_REFUSALS``) is raised; with ``second_opinion`` only once a second node gives one
        too. Any other status is the node's fault, like a bad response: the next is asked."""
        errors: list[str] = []
        n = len(self.endpoints)
        failures = busy = overloaded = 0
        refused_by: int | None = None
        while failures < n * FAILOVER_ROUNDS_MAX:
            i = self._current
            try:
                with _closed_during(self, what):
                    result = await fn(i)
                self._answered[i] = asyncio.get_running_loop().time()
                return result
            except grpc.aio.AioRpcError as e:
                hint_ms = _retry_after_ms(e)
                if hint_ms:
                    overloaded += 1
                    # The next node after the hint, as when busy: one that always says
                    # overloaded (a liar, a node cut off with a backlog) keeps no call, nor
                    # the caller's retry after OverloadedError (review 35a).
                    self._advance(i)
                    await _wait_overload(what, e, hint_ms, overloaded, deadline)
                    continue
                if e.code() is _Code.RESOURCE_EXHAUSTED:
                    busy += 1
                    self._advance(i)  # the next node: one always busy keeps no call, nor
                    if busy > BUSY_RETRIES_MAX:  # the caller's retry after BusyError
                        raise _saturated(what, e) from e
                    await _busy_backoff(busy)
                    continue
                refusal = e.code() in _REFUSALS
                if refusal and not (second_opinion and refused_by in (None, i) and n > 1):
                    raise _mapped(e, what) from e
                if refusal:
                    refused_by = i  # one node's word: ask the next
                errors.append(f"{self.endpoints[i].address}: {e.code().name} {e.details()}")
            except ClosedError as e:
                if not (failures or busy or overloaded):
                    raise  # closed before the first attempt: nothing was sent
                # An attempt ended as the channel closed (gRPC's CANCELLED "Channel closed",
                # not always a CancelledError): what it sent may still settle.
                raise ClosedError(what, "the client was closed during the call") from e
            except (FinalityTimeoutError, OverloadedError):
                # The node held a finality wait to its end, or a paged read's pages stayed
                # over its hint (``_page_call``): the caller's next call (the resubmit, the
                # read again) goes to another node, so one that accepts and never finalizes,
                # or always says overloaded, cannot keep this client (session 29's review,
                # review 35a).
                self._advance(i)
                raise
            except (BadResponseError, _SilentNodeError) as e:
                errors.append(f"{self.endpoints[i].address}: {e}")
            failures += 1
            self._advance(i)
            if failures % n == 0:
                await asyncio.sleep(FAILOVER_ROUND_BACKOFF_S)
        raise UnavailableError(what, errors)

    # --- submit ----------------------------------------------------------------------------

    @overload
    async def submit(
        self,
        stx: SignedTransaction | bytes,
        *,
        wait: Literal[True] = ...,
        timeout_s: float = ...,
        prove_result: bool = ...,
    ) -> Receipt: ...

    @overload
    async def submit(
        self,
        stx: SignedTransaction | bytes,
        *,
        wait: Literal[False],
        timeout_s: float = ...,
        prove_result: bool = ...,
    ) -> bytes: ...

    async def submit(
        self,
        stx: SignedTransaction | bytes,
        *,
        wait: bool = True,
        timeout_s: float = SUBMIT_TIMEOUT_DEFAULT_S,
        prove_result: bool = True,
    ) -> Receipt | bytes:
        """Send a fully signed transaction; with ``wait`` return its verified receipt once
        final (with the result proof unless ``prove_result`` is False: the receipt is then
        not ``final``, it proves only that a copy is in a committed block, ADR 0024), else
        its id once a node accepted it.

        Raises RejectedError (final, refused), InvalidTransactionError, FinalityTimeoutError
        (after ``timeout_s``; resubmitting is safe), UnavailableError, BusyError, and its
        subclass OverloadedError (admission control: the nodes cannot settle it within
        ``timeout_s``; ``retry_after_s`` says when to try again).
        """
        signed = SignedTransaction.ready_to_send(stx)
        _check_timeout(timeout_s)
        tid = signed.tx_id
        deadline = asyncio.get_running_loop().time() + timeout_s

        async def attempt(i: int) -> Receipt | bytes:
            remaining_s = deadline - asyncio.get_running_loop().time()  # admission judges it
            req = pb.SubmitRequest(
                transaction=signed.raw, timeout_ms=max(1, math.ceil(remaining_s * 1000))
            )
            resp = await self._stub(i).Submit(
                req, timeout=self._rpc_timeout_s, metadata=self._md(i, "Submit", req)
            )
            if bytes(resp.tx_id) != tid:
                raise BadResponseError("the node answered with another transaction id")
            if resp.outcome not in _TAKEN:  # 0: the field left out (ADR 0020), not taken
                raise BadResponseError(
                    "no submit outcome (0)"
                    if resp.outcome == 0
                    else f"unknown submit outcome {resp.outcome}"
                )
            if not wait:
                return tid
            self._answered[i] = asyncio.get_running_loop().time()
            return await self._wait(i, tid, deadline, timeout_s, prove_result)

        result = await self._call(f"submit {tid.hex()}", attempt, deadline, second_opinion=True)
        if isinstance(result, Receipt) and result.refused:
            raise RejectedError(result)
        return result  # a pending DvP's receipt says PENDING_SETTLEMENT: see wait_settled

    async def _wait(
        self,
        i: int,
        tid: bytes,
        deadline: float,
        timeout_s: float,
        prove_result: bool,
        *,
        settled: bool = False,
    ) -> Receipt:
        """Wait at endpoint ``i``; _SilentNodeError as soon as it stops answering."""
        remaining = deadline - asyncio.get_running_loop().time()
        if remaining <= 0:
            raise FinalityTimeoutError(tid, timeout_s)
        req = pb.WaitRequest(
            tx_id=tid,
            timeout_ms=max(1, math.ceil(remaining * 1000)),
            prove_result=prove_result,
            wait_settled=settled,
        )
        call = self._stub(i).WaitForFinality(
            req,
            timeout=remaining + self._rpc_timeout_s,
            metadata=self._md(i, "WaitForFinality", req),
        )
        task: asyncio.Future[pb.Receipt] = asyncio.ensure_future(call)
        try:
            while not (await asyncio.wait({task}, timeout=SILENCE_CHECK_S))[0]:
                if not await self._answers(i):
                    raise _SilentNodeError(
                        f"no answer to a status probe within {SILENCE_PROBE_TIMEOUT_S:g} s "
                        "while waiting for finality"
                    )
            msg = task.result()
        except grpc.aio.AioRpcError as e:
            left_s = deadline - asyncio.get_running_loop().time()
            if e.code() is _Code.DEADLINE_EXCEEDED and left_s > FINALITY_EARLY_TOLERANCE_S:
                raise BadResponseError(
                    f"the node said the wait timed out with {left_s:.1f} s of it left"
                ) from e
            if e.code() is _Code.DEADLINE_EXCEEDED:
                timeout_error = FinalityTimeoutError(tid, timeout_s)
                raise with_details(timeout_error, _details(e), e.details() or "") from e
            raise
        finally:
            call.cancel()
            task.cancel()
        receipt = self._verified(msg, tid, prove_result)
        if not receipt.ok and receipt.result_proof is None:
            # Without its result proof a refusal is one node's word, and a settled trade
            # must never be reported as refused on that word: wait for the proof.
            return await self._wait(i, tid, deadline, timeout_s, prove_result=True, settled=settled)
        if settled and receipt.waiting:
            raise BadResponseError("the node ended a settlement wait before the final event")
        return receipt

    async def _answers(self, i: int) -> bool:
        """Whether endpoint ``i`` answered lately or answers a status probe now. Waits on one
        node share one probe, so a thousand parked waits cost one GetStatus a check."""
        loop = asyncio.get_running_loop()
        if loop.time() - self._answered.get(i, -math.inf) <= SILENCE_FRESH_S:
            return True
        probe = self._probes.get(i)
        if probe is None:
            probe = self._probes[i] = asyncio.ensure_future(self._probe(i))
            probe.add_done_callback(lambda _: self._probes.pop(i, None))
        return await asyncio.shield(probe)

    async def _probe(self, i: int) -> bool:
        try:
            req = pb.StatusRequest()
            await self._stub(i).GetStatus(
                req, timeout=SILENCE_PROBE_TIMEOUT_S, metadata=self._md(i, "GetStatus", req)
            )
        except (grpc.aio.AioRpcError, BadResponseError, ClosedError):
            return False
        self._answered[i] = asyncio.get_running_loop().time()
        return True

    def _verified(
        self,
        msg: pb.Receipt,
        tid: bytes,
        prove_result: bool,
        made: Callable[[pb.Receipt], Receipt] = Receipt.from_pb,
    ) -> Receipt:
        try:
            receipt = made(msg)
            if receipt.tx_id != tid:
                raise InvalidReceiptError("the receipt is for another transaction")
            verify_receipt(
                receipt, self.genesis, require_result=prove_result, cache=self._certified
            )
        except InvalidReceiptError as e:
            raise BadResponseError(f"receipt failed verification: {e}") from e
        return receipt

    # --- the submit stream -----------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def stream(self, *, prove_result: bool = True) -> AsyncIterator[SubmitStream]:
        """Many submissions over one ``SubmitStream`` call (client/_stream.py), failing
        over to the next node with what is in flight: ``fut = await s.submit(stx)``, then
        ``await fut`` for the verified receipt. Leaving
        the block waits for every outstanding submission's final event (an exception
        leaving it cancels the stream instead)."""
        s = await self.open_stream(prove_result=prove_result)
        try:
            yield s
        except BaseException:
            await s.cancel()
            raise
        await s.aclose()

    async def open_stream(self, *, prove_result: bool = True) -> SubmitStream:
        """Open a submit stream on the current endpoint, failing over like any call; close
        it with ``aclose()`` (or use :meth:`stream`). It fails over by itself later."""
        call, inflight_max, i = await self._call("open a submit stream", self._open_call)
        return SubmitStream(
            call,
            inflight_max,
            address=self.endpoints[i].address,
            prove_result=prove_result,
            rpc_timeout_s=self._rpc_timeout_s,
            verify=self._verified,
            proven=self._proven,
            reopen=self._reopen_stream,
            second=self._second_opinion if len(self.endpoints) > 1 else None,
        )

    def _leave(self, address: str) -> None:
        """The next call goes to another endpoint than ``address``."""
        for i, ep in enumerate(self.endpoints):
            if ep.address == address:
                self._advance(i)

    async def _reopen_stream(self, failed: str) -> tuple[Any, str]:
        """A new stream call on another endpoint than ``failed`` (the stream's resend)."""
        if self._closed:  # the client closed the stream's channel: no other node either
            raise ClosedError(f"submit stream to {failed}", "the client was closed")
        self._leave(failed)
        call, _, i = await self._call("reopen a submit stream", self._open_call)
        return call, self.endpoints[i].address

    async def _second_opinion(self, raw: bytes, refused_by: str, timeout_s: float) -> Receipt:
        """A stream's submission the node at ``refused_by`` refused at its precheck: the
        same bytes through ``submit`` from the next endpoint (which asks a second node in
        turn before it believes a refusal), its proven receipt within ``timeout_s``."""
        self._leave(refused_by)
        receipt: Receipt = await self.submit(raw, timeout_s=max(timeout_s, 0.001))
        return receipt

    async def _open_call(self, i: int) -> tuple[Any, int, int]:
        """A SubmitStream call at endpoint ``i`` once its ``opened`` event arrived: (call,
        the node's in-flight limit, i)."""
        call = self._stub(i).SubmitStream(metadata=self._md(i, "SubmitStream"))
        try:
            first = await asyncio.wait_for(call.read(), self._rpc_timeout_s)
        except TimeoutError as e:
            call.cancel()
            raise _SilentNodeError("no answer to opening a submit stream") from e
        except BaseException:
            call.cancel()
            raise
        if first is EOF or first.WhichOneof("kind") != "opened":
            call.cancel()
            raise BadResponseError("a submit stream did not start with its opened event")
        if first.opened.inflight_max < 1:
            call.cancel()
            raise BadResponseError("a submit stream allows no submission in flight")
        return call, first.opened.inflight_max, i

    async def _proven(self, tid: bytes, timeout_s: float) -> Receipt:
        return await self.receipt(tid, timeout_s=timeout_s, prove_result=True)

    # --- queries ---------------------------------------------------------------------------

    async def receipt(
        self,
        tx_id: bytes,
        *,
        wait: bool = True,
        timeout_s: float = SUBMIT_TIMEOUT_DEFAULT_S,
        prove_result: bool = True,
    ) -> Receipt:
        """The verified receipt of a transaction (whatever its result code). With ``wait``
        wait up to ``timeout_s`` for finality (FinalityTimeoutError); without, NotFoundError
        unless it is committed already, and (``prove_result``) its result proven already.
        ``prove_result=False`` may return a receipt that is not ``final``: it proves only
        that a copy of the transaction is in a committed block (ADR 0024)."""
        _check_timeout(timeout_s)
        if wait:
            deadline = asyncio.get_running_loop().time() + timeout_s
            return await self._call(
                f"receipt {tx_id.hex()}",
                lambda i: self._wait(i, tx_id, deadline, timeout_s, prove_result),
                second_opinion=True,  # an honest node waits for what it does not know yet
            )
        status = await self.transaction(tx_id)
        if status.receipt is None:
            raise NotFoundError(f"transaction {tx_id.hex()} is pending, not committed yet")
        if prove_result and status.receipt.result_proof is None:
            # Without its proof the code is one node's word (``transaction`` checks this
            # copy's inclusion only): a hostile node would drop the proof and call a refusal OK.
            raise NotFoundError(
                f"transaction {tx_id.hex()} is included in block {status.receipt.height}; its "
                f"result is proven once block {status.receipt.height + 1} commits (wait, or "
                "prove_result=False for its inclusion alone, not final)"
            )
        return status.receipt

    async def wait_settled(
        self, tx_id: bytes, *, timeout_s: float = SUBMIT_TIMEOUT_DEFAULT_S
    ) -> Receipt:
        """The verified receipt of a trade once its outcome is final. For a pending DvP
        (``PENDING_SETTLEMENT``) that is its final event, proven (``receipt.event_proof``):
        settled at height ``event_proof.height``, returned; failed at its deadline or
        cancelled, RejectedError (``code`` says which). Any other transaction: as
        ``receipt``. FinalityTimeoutError after ``timeout_s``; waiting again is safe."""
        _check_timeout(timeout_s)
        deadline = asyncio.get_running_loop().time() + timeout_s
        receipt = await self._call(
            f"settlement of {tx_id.hex()}",
            lambda i: self._wait(i, tx_id, deadline, timeout_s, True, settled=True),
            second_opinion=True,  # one node's refusal of a wait is not final (review 35a)
        )
        if receipt.refused:
            raise RejectedError(receipt)
        return receipt

    async def transaction(self, tx_id: bytes) -> TxStatus:
        """PENDING, INCLUDED or COMMITTED (with the verified receipt; COMMITTED only with its
        result proof, see TxStatus); NotFoundError if the node knows neither."""

        async def get(i: int) -> TxStatus:
            req = pb.TransactionRequest(tx_id=tx_id)
            msg = await self._stub(i).GetTransaction(
                req, timeout=self._rpc_timeout_s, metadata=self._md(i, "GetTransaction", req)
            )
            if msg.state == pb.COMMITTED:
                r = self._verified(msg.receipt, tx_id, prove_result=False)
                # Without its result proof the receipt shows this copy included, not the
                # id recorded: the node's "committed" is not proven yet (ADR 0024).
                state: Literal["INCLUDED", "COMMITTED"] = "COMMITTED" if r.final else "INCLUDED"
                return TxStatus(tx_id, state, r, _settlement(msg))
            if msg.state == pb.PENDING:
                return TxStatus(tx_id, "PENDING", None)
            # 0 is TX_STATE_UNSPECIFIED, a field left out (ADR 0020): no answer, not PENDING
            raise BadResponseError(
                "no transaction state (0)"
                if msg.state == 0
                else f"unknown transaction state {msg.state}"
            )

        return await self._call(f"transaction {tx_id.hex()}", get)

    async def pending(self) -> tuple[int, tuple[PendingTrade, ...]]:
        """(height, the pending trades after it), in recycling order (the node's word)."""

        async def get(i: int) -> tuple[int, tuple[PendingTrade, ...]]:
            req = pb.PendingRequest()
            msg = await self._stub(i).GetPending(
                req, timeout=self._rpc_timeout_s, metadata=self._md(i, "GetPending", req)
            )
            return msg.height, tuple(
                PendingTrade(
                    bytes(p.tx_id),
                    p.height,
                    p.position,
                    p.seller,
                    p.buyer,
                    p.bond,
                    p.cash,
                    p.lot_quantity,
                    p.lot_amount,
                    p.lots_left,
                    p.deadline_ms,
                    p.held_by_seller,
                    p.held_by_buyer,
                )
                for p in msg.instructions
            )

        return await self._call("pending trades", get)

    async def freezes(self) -> tuple[int, tuple[FreezeRecord, ...]]:
        """(height, every frozen account and holding after it) in (account, instrument)
        order (docs/ledger.md "Freezes"; the node's word, like ``pending``)."""

        async def get(i: int) -> tuple[int, tuple[FreezeRecord, ...]]:
            req = pb.FreezesRequest()
            msg = await self._stub(i).GetFreezes(
                req, timeout=self._rpc_timeout_s, metadata=self._md(i, "GetFreezes", req)
            )
            if any(f.reason not in FreezeReason._value2member_map_ for f in msg.freezes):
                raise BadResponseError("a freeze with a reason not on the documented list")
            return msg.height, tuple(
                FreezeRecord(
                    f.account, f.instrument, FreezeReason(f.reason), f.height, f.time_ms, f.by
                )
                for f in msg.freezes
            )

        return await self._call("freezes", get)

    async def locks(self, party: str = "") -> tuple[int, tuple[LockView, ...]]:
        """(height, the locks after it that the caller may read: those it holds or
        benefits from; all of them for an observer), only those naming ``party`` if given
        (docs/ledger.md "Locks and swaps"; the node's word, like ``pending``)."""

        async def get(i: int) -> tuple[int, tuple[LockView, ...]]:
            req = pb.LocksRequest(party=party)
            msg = await self._stub(i).GetLocks(
                req, timeout=self._rpc_timeout_s, metadata=self._md(i, "GetLocks", req)
            )
            if any(k.secured_kind not in SecuredKind._value2member_map_ for k in msg.locks):
                raise BadResponseError("a lock securing a kind not on the documented list")
            return msg.height, tuple(_lock_view(k) for k in msg.locks)

        return await self._call("locks", get)

    async def repos(
        self, repo_id: str = "", *, party: str = "", limit: int = 0
    ) -> tuple[int, tuple[RepoRecord, ...]]:
        """(height, repos after it, in id order): ``repo_id`` alone (NotFoundError if
        none, or if the caller is not a party to it), else the caller's (only those naming
        ``party`` if given), for an observer those naming ``party`` or with neither all;
        at most ``limit`` (0: REPO_LIST_MAX). A repo goes to its two parties and observers
        (docs/ledger.md "Repo"; docs/cluster.md "Security: who reads what")."""

        async def get(i: int) -> tuple[int, tuple[RepoRecord, ...]]:
            req = pb.ReposRequest(id=repo_id, party=party, limit=limit)
            msg = await self._stub(i).GetRepos(
                req, timeout=self._rpc_timeout_s, metadata=self._md(i, "GetRepos", req)
            )
            try:
                found = tuple(RepoRecord.decode(r.id, r.record) for r in msg.repos)
            except TxDecodeError as e:
                raise BadResponseError(f"a repo record does not decode: {e}") from e
            return msg.height, found

        return await self._call("repos", get)

    async def attestations(self, instrument: str = "") -> tuple[int, tuple[BackedView, ...]]:
        """(height, the backed instruments after it, in id order): each one's supply and
        attestations; only ``instrument`` if given. Readable by the instrument's issuer,
        its custodian and observers (PermissionDeniedError else; docs/ledger.md)."""

        async def get(i: int) -> tuple[int, tuple[BackedView, ...]]:
            def request(token: bytes) -> pb.AttestationsRequest:
                return pb.AttestationsRequest(
                    instrument=instrument, page_bytes_max=ANSWER_PAGE_BYTES, page_token=token
                )

            msg = await read_pages(
                self._page_call(i, "GetAttestations", request), ("instruments",), "attestations"
            )
            return msg.height, tuple(_backed(b) for b in msg.instruments)

        return await self._call("attestations", get)

    async def prices(self, instrument: str = "") -> PriceBook:
        """margin: every eligible instrument's recorded prices (one per source) and the
        price in force at the node's head; only ``instrument`` if given (NotFoundError
        unless eligible). Any participant (docs/ledger.md "Prices, margin and
        substitution")."""

        async def get(i: int) -> PriceBook:
            req = pb.PricesRequest(instrument=instrument)
            msg = await self._stub(i).GetPrices(
                req, timeout=self._rpc_timeout_s, metadata=self._md(i, "GetPrices", req)
            )
            return price_book(msg)

        return await self._call("prices", get)

    async def reference(self) -> Reference:
        """The ledger's reference data at a node's head (participants with roles, tier and
        key; instruments with terms, supply and cap; the admins and k), and from now on
        what this client's builders and :meth:`sign` check names and keys against, so a
        participant governance added can trade and a rotated key sign (ADR 0016). One
        node's word, not certified (like :meth:`pending`)."""

        async def get(i: int) -> Reference:
            def request(token: bytes) -> pb.ReferenceRequest:
                return pb.ReferenceRequest(page_bytes_max=ANSWER_PAGE_BYTES, page_token=token)

            msg = await read_pages(
                self._page_call(i, "GetReference", request),
                ("participants", "instruments"),
                "reference data",
            )
            return reference_from_pb(self.genesis, msg)

        ref = await self._call("reference data", get)
        self.tx.reference = ref.registry
        return ref

    async def balances(self, account: str) -> Balances:
        async def get(i: int) -> Balances:
            req = pb.BalancesRequest(account=account)
            msg = await self._stub(i).GetBalances(
                req, timeout=self._rpc_timeout_s, metadata=self._md(i, "GetBalances", req)
            )
            amounts = {b.instrument: b.amount for b in msg.balances}
            return Balances(msg.account, msg.height, amounts)

        return await self._call(f"balances of {account}", get)

    async def instrument(self, instrument: str) -> InstrumentView:
        """Holders and paid periods of a bond or fund (NotFoundError if unknown). Read from
        one node's state: not proven like a receipt (ADR 0013)."""

        async def get(i: int) -> InstrumentView:
            req = pb.InstrumentRequest(instrument=instrument)
            msg = await self._stub(i).GetInstrument(
                req, timeout=self._rpc_timeout_s, metadata=self._md(i, "GetInstrument", req)
            )
            holders = tuple(
                HolderView(h.account, h.units, h.redeemed_units, h.redeemed_paid)
                for h in msg.holders
            )
            paid = {p.period: (p.total, p.holders) for p in msg.paid}
            return InstrumentView(msg.instrument, msg.height, holders, paid)

        return await self._call(f"instrument {instrument}", get)

    async def block(self, height: int) -> BlockView:
        """Committed block ``height`` (NotFoundError above the node's head)."""

        async def get(i: int) -> BlockView:
            req = pb.BlockRequest(height=height)
            msg = await self._stub(i).GetBlock(
                req, timeout=self._rpc_timeout_s, metadata=self._md(i, "GetBlock", req)
            )
            view = self._block_view(msg)  # certified at the height it claims ...
            if view.height != height:  # ... which must be the one asked for (session 29)
                raise BadResponseError(f"block {view.height} given for block {height}")
            return view

        _check_height("height", height)
        return await self._call(f"block {height}", get)

    async def holders_at(
        self, instrument: str, height: int, *, progress: Callable[[int, int], None] | None = None
    ) -> HoldersAt:
        """A bond's or fund's holders after block ``height``, replayed here from genesis:
        blocks 1..height, each certified by a quorum, executed with the settlement layer's
        ``apply_block``, each replayed root checked against the next block's certified
        header (docs/ledger.md "Lifecycle"). ``proven`` is False only for the head block,
        whose root no header carries yet. Needs full blocks: an observer identity
        (PermissionDeniedError otherwise). ``height`` at most REPLAY_BLOCKS_MAX; ``progress``
        is called with (blocks replayed, height) every REPLAY_PROGRESS_BLOCKS blocks."""
        if not 1 <= height <= REPLAY_BLOCKS_MAX:
            raise InvalidFieldError("height", f"must be 1..{REPLAY_BLOCKS_MAX} (replay bound)")
        head = await self.head()
        if height >= head:
            # head() never exceeds the current endpoint's word; a block more than f
            # validators report reached exists: one node's low head is no "not found".
            head = max(head, await self._chain_height())
        if height > head:
            raise NotFoundError(f"block {height} is above the head ({head})")
        replay = Replay(self.genesis)
        replay.holders(instrument, proven=False)  # an unknown instrument fails before reading
        last = min(height + 1, head)  # block height+1's header certifies the root after height
        # The replay works out every result itself: an idle chain's last block, unproven,
        # goes at once (its root is checked against the next header when there is one).
        async with contextlib.aclosing(self._blocks(1, hold=False)) as blocks:
            async for b in blocks:
                rb = _replayed(b)
                if b.height > height:
                    replay.check_root(rb)
                    break
                replay.apply(rb)
                if progress is not None and b.height % REPLAY_PROGRESS_BLOCKS == 0:
                    progress(b.height, height)
                if b.height == last:
                    break
        return replay.holders(instrument, proven=last > height)

    async def head(self) -> int:
        """A committed height the chain has reached: the current endpoint's, but never above
        the height more than f endpoints report (f = 2q - n - 1, the Byzantine validators
        safety tolerates), which an honest one has therefore reached; with fewer answers,
        the lowest. A height is a validator's claim, not proven: one endpoint claiming
        2**63 had `ledger watch`, `ledger blocks`, `holders_at` and the console wait for
        ever for blocks that never come (session 30's review)."""

        async def get(i: int) -> int:
            req = pb.StatusRequest()
            msg = await self._stub(i).GetStatus(
                req, timeout=self._rpc_timeout_s, metadata=self._md(i, "GetStatus", req)
            )
            return int(msg.height)

        claimed = await self._call("head", get)
        if len(self.endpoints) == 1:
            return claimed  # nothing to compare it with
        heights = sorted(
            (s.height for s in await self.status() if isinstance(s, NodeStatusView)), reverse=True
        )
        if not heights:
            return claimed
        f = Quorum(len(self.genesis.validators), self.genesis.quorum).safety_bound
        return min(claimed, heights[min(f, len(heights) - 1)])

    async def status(self) -> list[NodeStatusView | EndpointDown]:
        """Every endpoint's status, one entry each, in order; never raises for a down node."""
        return list(await asyncio.gather(*(self._status(i) for i in range(len(self.endpoints)))))

    async def _status(self, i: int) -> NodeStatusView | EndpointDown:
        ep = self.endpoints[i]
        try:
            req = pb.StatusRequest()
            with _closed_during(self, f"status of {ep.address}"):
                s = await self._stub(i).GetStatus(
                    req, timeout=self._rpc_timeout_s, metadata=self._md(i, "GetStatus", req)
                )
        except grpc.aio.AioRpcError as e:
            return EndpointDown(ep, f"{e.code().name}: {e.details()}")
        except BadResponseError as e:  # e.g. an answer over its bounds (client/_answers.py)
            return EndpointDown(ep, str(e))
        return NodeStatusView(
            endpoint=ep,
            chain_id=s.chain_id,
            validator_id=s.validator_id,
            height=s.height,
            view=s.view,
            leader=s.leader,
            n=s.n,
            q=s.q,
            peers_connected=s.peers_connected,
            mempool_txs=s.mempool_txs,
            halted=s.halted,
            uptime_ms=s.uptime_ms,
            state_root=bytes(s.state_root),
            block_hash=bytes(s.block_hash),
        )

    async def block_hash_at(self, i: int, height: int) -> bytes | None:
        """Endpoint ``i``'s hash of its block ``height``, unverified (None if it did not
        answer): to find a node that disagrees with the others (``ledger status``). To read
        a block, use :meth:`block`, which checks its certificate."""
        req = pb.BlockRequest(height=height)
        try:
            with _closed_during(self, f"block {height}'s hash"):
                msg = await self._stub(i).GetBlock(
                    req, timeout=self._rpc_timeout_s, metadata=self._md(i, "GetBlock", req)
                )
        except (grpc.aio.AioRpcError, BadResponseError):
            return None
        return bytes(msg.block_hash)

    async def timelines(
        self, first_height: int, last_height: int
    ) -> list[list[BlockTiming] | EndpointDown]:
        """Every endpoint's consensus step times for blocks ``first_height`` to
        ``last_height`` (inclusive), one entry each, in order; never raises for a down node.
        Validators keep the last TIMELINE_HEIGHTS_MAX heights."""
        if not 1 <= first_height <= last_height:
            raise ValueError(
                f"need 1 <= first_height <= last_height, got {first_height}, {last_height}"
            )
        return list(
            await asyncio.gather(
                *(self._timeline(i, first_height, last_height) for i in range(len(self.endpoints)))
            )
        )

    async def _timeline(self, i: int, first: int, last: int) -> list[BlockTiming] | EndpointDown:
        """One endpoint's timings. A node refuses a read over the caller's read budget
        (RESOURCE_EXHAUSTED with a hint, metered since review 36p: a CLI report reads its
        blocks first): the span is asked again after the hint (capped at
        BUSY_BACKOFF_MAX_S), at most BUSY_RETRIES_MAX times, before the node counts as
        down."""
        out: list[BlockTiming] = []
        for lo in range(first, last + 1, TIMELINE_SPAN_MAX):
            req = pb.TimelineRequest(
                first_height=lo, last_height=min(last, lo + TIMELINE_SPAN_MAX - 1)
            )
            busy = 0
            while True:
                try:
                    with _closed_during(self, "timelines"):
                        msg = await self._stub(i).GetTimeline(
                            req,
                            timeout=max(self._rpc_timeout_s, BULK_RPC_TIMEOUT_S),
                            metadata=self._md(i, "GetTimeline", req),
                        )
                    break
                except grpc.aio.AioRpcError as e:
                    hint_ms = _retry_after_ms(e)
                    busy += 1
                    if not hint_ms or busy > BUSY_RETRIES_MAX:
                        return EndpointDown(self.endpoints[i], f"{e.code().name}: {e.details()}")
                    await asyncio.sleep(min(hint_ms / 1000, BUSY_BACKOFF_MAX_S))
                except BadResponseError as e:
                    return EndpointDown(self.endpoints[i], str(e))
            out.extend(
                BlockTiming(b.height, b.proposed_us, b.prepare_qc_us, b.commit_qc_us, b.applied_us)
                for b in msg.blocks
            )
        return out

    # --- iterators -------------------------------------------------------------------------

    def blocks(self, from_height: int = 1) -> AsyncGenerator[BlockView, None]:
        """Committed blocks from ``from_height`` on, then each new one, forever. When the
        node streaming them fails, it resumes at the next height on another node: every
        height exactly once, in order. UnavailableError after every endpoint failed
        ``FAILOVER_ROUNDS_MAX`` times in a row without delivering a block; BusyError when
        the nodes stay at their limit of block streams through the busy retries. Every block
        comes with its results proven (ADR 0026): the last block of an idle chain, which
        no block certifies yet, once the next one shows it had no results."""
        return self._blocks(from_height, hold=True)

    async def _blocks(self, from_height: int, *, hold: bool) -> AsyncGenerator[BlockView, None]:
        """:meth:`blocks`; without ``hold`` an unproven last block goes at once (a replay
        that works out the results itself)."""
        _check_height("from_height", from_height)
        next_height, failures, busy, errors = from_height, 0, 0, list[str]()
        held: BlockView | None = None  # block next_height, shown quiet and unproven
        n = len(self.endpoints)
        while True:
            i, saturated = self._current, False
            req = pb.StreamBlocksRequest(from_height=next_height)
            call = self._stub(i).StreamBlocks(req, metadata=self._md(i, "StreamBlocks", req))
            infos = aiter(call)
            try:
                while True:
                    expect = next_height + (held is not None)
                    with _closed_during(self, f"block stream at height {expect}"):
                        info = await self._next_block(infos, expect)
                    if info is None:
                        break
                    if info.height != expect:
                        # A call asks from next_height and holds nothing yet: an honest
                        # node never repeats a block (one repeating for ever kept this
                        # loop spinning on it: session 29's review).
                        raise BadResponseError(f"block {info.height} where {expect} was due")
                    view = self._block_view(info)
                    if held is not None:
                        _check_quiet(held, view)
                        next_height, failures, busy = next_height + 1, 0, 0
                        yield replace(held, results_proven=True)
                        held = None
                    if hold and not view.results_proven and not view.filtered:
                        held = view  # until its successor's header shows it was quiet
                        continue
                    next_height, failures, busy = next_height + 1, 0, 0
                    yield view
                errors.append(f"{self.endpoints[i].address}: the stream ended")
            except grpc.aio.AioRpcError as e:
                saturated = e.code() is _Code.RESOURCE_EXHAUSTED
                busy += saturated
                errors.append(_block_stream_failed(self.endpoints[i], e, busy, next_height))
            except BadResponseError as e:
                errors.append(f"{self.endpoints[i].address}: {e}")
            finally:
                call.cancel()
                held = None  # the next node shows it again
            failures += not saturated  # a busy node is no failure: _call's busy retries
            if failures >= n * FAILOVER_ROUNDS_MAX:
                raise UnavailableError(f"block stream at height {next_height}", errors)
            self._advance(i)
            if saturated:
                await _busy_backoff(busy)
            elif failures % n == 0:
                await asyncio.sleep(FAILOVER_ROUND_BACKOFF_S)

    async def _next_block(
        self, infos: AsyncIterator[pb.BlockInfo], due: int
    ) -> pb.BlockInfo | None:
        """The next message of a block stream (None: it ended), which owes
        block ``due``. While none comes, every BLOCK_STREAM_CHECK_S the endpoints are asked
        how far the chain is: BadResponseError once more than f of them (so an honest one)
        report it BLOCK_STREAM_BEHIND_BLOCKS past ``due``, since the node withholds what
        the chain has (a node keeping a stream open and silent parked ``blocks()``,
        ``events()`` and ``holders_at`` for ever: review 32)."""
        task = asyncio.ensure_future(anext(infos))
        try:
            while not (await asyncio.wait({task}, timeout=BLOCK_STREAM_CHECK_S))[0]:
                chain = await self._chain_height()
                if chain >= due + BLOCK_STREAM_BEHIND_BLOCKS:
                    raise BadResponseError(
                        f"no block {due} in {BLOCK_STREAM_CHECK_S:g} s, though more than f "
                        f"validators report the chain at {chain}: the node withholds it"
                    )
        finally:
            task.cancel()  # done already, unless the node is left
        try:
            return task.result()
        except StopAsyncIteration:
            return None

    async def _chain_height(self) -> int:
        """The highest height that more than f endpoints (f: the Byzantine validators
        safety tolerates) report reached, so an honest validator has committed it; 0 when
        no more than f answer."""
        heights = sorted(
            (s.height for s in await self.status() if isinstance(s, NodeStatusView)), reverse=True
        )
        f = Quorum(len(self.genesis.validators), self.genesis.quorum).safety_bound
        return heights[f] if len(heights) > f else 0

    async def events(
        self, account: str, from_height: int = 1
    ) -> AsyncGenerator[AccountEvent, None]:
        """Each committed transaction that names ``account``, in ledger order, with the
        account's balance changes; follows new blocks forever (failing over like
        :meth:`blocks`). A client whose identity reads party-filtered blocks (no observer)
        follows only its own account: PermissionDeniedError at the first filtered block
        for another one, whose transactions that do not name the caller it is not shown
        (review 20: they were left out silently)."""
        if account not in self.tx.reference.participant_by_id:
            raise InvalidFieldError("account", f"{account!r} is not a participant")
        async with contextlib.aclosing(self.blocks(from_height)) as blocks:
            async for b in blocks:
                # A filtered block without transactions hides none (one of an idle block
                # may reach an observer: no index, so no certified flag; review 20c).
                if b.filtered and b.tx_count and account != self.identity:
                    raise PermissionDeniedError(
                        f"block {b.height} is filtered for {self.identity}, which is shown "
                        f"only the transactions naming it: the events of {account} would "
                        f"leave out every one that does not name {self.identity} too (an "
                        "observer identity reads whole blocks)"
                    )
                for t in b.transactions:
                    ev = _event(account, b, t)
                    if ev is not None:
                        yield ev

    def _block_view(self, info: pb.BlockInfo) -> BlockView:
        """Decode ``info`` and check it against genesis: a block of this chain, at the
        height claimed, certified by a quorum of genesis validators."""
        if info.filtered:
            return self._filtered_view(info)
        g = self.genesis
        try:
            block = decode_block(bytes(info.block))
            qc = decode_qc(bytes(info.certificate))
        except DecodeError as e:
            raise BadResponseError(f"block {info.height} does not decode: {e}") from e
        if (
            block.chain_id != g.chain_id
            or block.height != info.height
            or block.hash != bytes(info.block_hash)
            or qc.block_hash != block.hash
            or qc.height != block.height
            or not verify_certificate(
                qc, g.chain_id, len(g.validators), g.quorum, self._verifier, phase=Phase.COMMIT
            )
        ):
            raise BadResponseError(f"block {info.height} is not certified for this chain")
        if len(info.results) != len(block.txs):
            raise BadResponseError(f"block {info.height}: results do not match its transactions")
        txs = tuple(
            _block_tx(i, raw, r)
            for i, (raw, r) in enumerate(zip(block.txs, info.results, strict=True))
        )
        events = tuple(_block_event(e) for e in info.events)
        return BlockView(
            height=block.height,
            hash=block.hash,
            time_ms=block.time_ms,
            state_root=bytes(info.state_root),
            certificate=bytes(info.certificate),
            transactions=txs,
            events=events,
            prior_root=block.state_root,
            tx_count=len(block.txs),
            prior_results=block.results_root,
            results_proven=self._whole_results_proven(info, block, events),
        )

    def _whole_results_proven(
        self, info: pb.BlockInfo, block: Block, events: tuple[BlockEvent, ...]
    ) -> bool:
        """Whether a whole block's results, events and state root are those block
        ``height + 1`` certifies (ADR 0026); BadResponseError if they are not, or if they
        come unproven though the block shows transactions or events (a node sends such a
        block once its successor, which consensus makes at once, is committed). Only a
        block showing neither may come unproven: an idle chain's last block."""
        if not info.HasField("parties_root_proof"):
            if block.txs or events:
                raise BadResponseError(
                    f"block {info.height} comes whole without the proof of its results and "
                    f"events (block {info.height + 1} certifies them; a node sends the block "
                    "once that one is committed)"
                )
            return False
        n = len(block.txs)
        if [r.position for r in info.results] != list(range(n)) or [e.index for e in events] != [
            *range(n, n + len(events))
        ]:
            raise BadResponseError(f"block {info.height}'s results are not in their leaf order")
        results = [_tx_result(r) for r in info.results]
        results += [TxResult(e.tx_id, e.code, recorded=False, event=True) for e in events]
        proof = ResultProof.from_pb(info.parties_root_proof)
        try:
            nxt = verify_block_results(
                block.height,
                block.hash,
                results,
                bytes(info.parties_leaf),
                proof,
                genesis=self.genesis,
                cache=self._certified,
            )
        except InvalidReceiptError as e:
            raise BadResponseError(f"block {info.height}: {e}") from e
        if nxt.state_root != bytes(info.state_root):
            raise BadResponseError(
                f"block {info.height}: the state root shown after it is not the one block "
                f"{nxt.height} certifies"
            )
        return True

    def _filtered_view(self, info: pb.BlockInfo) -> BlockView:
        """A party-filtered block: its header certified by a quorum, and each transaction
        shown proven in it by its receipt (Merkle path to the header's transactions root)."""
        header = bytes(info.header)
        try:
            h = decode_header(header)
            qc = decode_qc(bytes(info.certificate))
        except DecodeError as e:
            raise BadResponseError(f"block {info.height} does not decode: {e}") from e
        g = self.genesis
        if (
            h.chain_id != g.chain_id
            or h.height != info.height
            or h.hash != bytes(info.block_hash)
            or qc.block_hash != h.hash
            or qc.height != h.height
            or len(info.results) != len(info.receipts)
            or not verify_certificate(
                qc, g.chain_id, len(g.validators), g.quorum, self._verifier, phase=Phase.COMMIT
            )
        ):
            raise BadResponseError(f"block {info.height} is not certified for this chain")
        positions = [r.position for r in info.results]
        if any(a >= b for a, b in itertools.pairwise(positions)):
            # One transaction per position: a receipt listed twice would be counted twice.
            raise BadResponseError(
                f"block {info.height} lists the caller's transactions twice or out of order"
            )
        if tuple(positions) != self._committed_positions(info, h):
            raise BadResponseError(
                f"block {info.height} shows {self.identity} the transactions at positions "
                f"{positions}, not the ones its party index commits to: a node left some out "
                "(or added some)"
            )
        # A receipt of a filtered block carries only its own fields (ADR 0025, session
        # 33): it is made whole with the block's certified header and certificate.
        certificate = bytes(info.certificate)
        whole = functools.partial(
            Receipt.from_pb_in_block,
            height=h.height,
            block_hash=h.hash,
            block_time_ms=h.time_ms,
            certificate=certificate,
            block_header=header,
        )
        receipts = tuple(
            self._in_block(m, r, whole) for m, r in zip(info.receipts, info.results, strict=True)
        )
        txs = tuple(
            _block_tx(r.position, r.transaction, res)
            for r, res in zip(receipts, info.results, strict=True)
        )
        # The state after the block is the one block h + 1's header carries, certified
        # with the party proof checked above; a block with no transactions comes without
        # that proof, and its state root is then the node's word (session 29's review).
        if h.tx_count and bytes(info.state_root) != self._next_state_root(info):
            raise BadResponseError(
                f"block {info.height}'s state root is not the one block {info.height + 1} certifies"
            )
        return BlockView(
            height=h.height,
            hash=h.hash,
            time_ms=h.time_ms,
            state_root=bytes(info.state_root),
            certificate=certificate,
            transactions=txs,
            filtered=True,
            receipts=receipts,
            prior_root=h.state_root,
            tx_count=h.tx_count,
            prior_results=h.results_root,
            results_proven=bool(h.tx_count),
        )

    @staticmethod
    def _next_state_root(info: pb.BlockInfo) -> bytes:
        """The state root in the header of a filtered block's party proof (the block after
        it), which ``_committed_positions`` verified."""
        try:
            return decode_header(bytes(info.parties_root_proof.header)).state_root
        except DecodeError as e:
            raise BadResponseError(f"block {info.height + 1}'s header does not decode") from e

    def _committed_positions(self, info: pb.BlockInfo, h: BlockHeader) -> tuple[int, ...]:
        """The positions of block ``h`` a filtered read must show this client's identity
        (ADR 0025): its own and the public ones, as the block's party index proves them.
        A filtered block is for a caller the node identified, and never for one that held
        an observer role after the block (who reads whole blocks: a filtered one would
        hide the others' transactions). Whether it did is its leaf's flag, certified with
        the index; not the reference data, which is one node's word (review 20)."""
        me = self.identity
        if me is None:
            raise BadResponseError(
                f"block {info.height} is party-filtered, but this client has no identity"
            )
        if self._observer:
            raise BadResponseError(
                f"block {info.height} is party-filtered, but {me} is an observer (the "
                "client's observer=True): an observer reads whole blocks (if every node "
                f"filters, {me} holds no observer role on this ledger)"
            )
        if not h.tx_count:
            return ()  # nothing to hide
        if not info.party_proof or not info.HasField("parties_root_proof"):
            raise BadResponseError(
                f"block {info.height} is party-filtered without the proof that it shows all "
                f"of {me}'s transactions (its next block may not be committed yet)"
            )
        if len(info.result_paths) != len(info.results):
            raise BadResponseError(
                f"block {info.height} is party-filtered without the paths that certify each "
                "result it shows"
            )
        try:
            shown = [
                (r.position, _tx_result(r), tuple(p.hashes))
                for r, p in zip(info.results, info.result_paths, strict=True)
            ]
            positions, observer = verify_party_positions(
                h,
                me,
                bytes(info.party_proof),
                ResultProof.from_pb(info.parties_root_proof),
                self.genesis,
                results=shown,
                cache=self._certified,
            )
        except InvalidReceiptError as e:
            raise BadResponseError(f"block {info.height}: {e}") from e
        if observer:
            raise BadResponseError(
                f"block {info.height} is party-filtered, but its party index says {me} was "
                "an observer after it: an observer reads whole blocks"
            )
        return positions

    def _in_block(
        self,
        msg: pb.Receipt,
        result: pb.TransactionResult,
        whole: Callable[[pb.Receipt], Receipt],
    ) -> Receipt:
        receipt = self._verified(msg, bytes(result.tx_id), prove_result=False, made=whole)
        if receipt.position != result.position or int(receipt.code) != result.code:
            raise BadResponseError(f"a receipt of block {receipt.height} is not of that block")
        return receipt


# --- helpers -------------------------------------------------------------------------------


class _SilentNodeError(Exception):
    """The node a finality wait is parked at stopped answering: try the next one."""


@contextlib.contextmanager
def _closed_during(client: AsyncLedgerClient, what: str) -> Iterator[None]:
    """A call ``what`` whose channel ``client.aclose()`` closed under it: gRPC ends it with a
    bare CancelledError, which reads as the caller's own cancellation (a TaskGroup or a
    gather takes it so); it is ClosedError. A task really cancelled stays cancelled."""
    try:
        yield
    except asyncio.CancelledError:
        task = asyncio.current_task()
        if client._closed and task is not None and not task.cancelling():
            raise ClosedError(what, "the client was closed during the call") from None
        raise


def _run_dir_config(run_dir: str | Path) -> tuple[list[Endpoint], bytes, Genesis]:
    net = load_network(run_dir)
    endpoints = [Endpoint(x.client_address, x.name) for x in net.nodes]
    return endpoints, read_regular(net.tls_pinned), load_genesis(net.genesis)


def pinned_credentials(
    endpoints: Sequence[Endpoint], tls_certs: bytes, genesis: Genesis
) -> tuple[list[grpc.ChannelCredentials], list[str]]:
    """Per endpoint, TLS credentials whose only root is the genesis-pinned certificate that
    carries the endpoint's name (a server is the validator genesis pins, or refused), and
    that validator's genesis id (what a call to it is signed for)."""
    try:
        pinned = pinned_certificates(tls_certs, [v.tls_cert_sha256 for v in genesis.validators])
    except ValueError as e:
        raise ValueError(
            f"tls_certs: {e}; pass the validators' certificates (validators.pem)"
        ) from e
    creds, validators = [], []
    for ep in endpoints:
        roots = [i for i, pem in pinned.items() if ep.server_name in dns_names(pem)]
        if len(roots) != 1:
            raise ValueError(
                f"tls_certs: {len(roots)} pinned certificates carry the name "
                f"{ep.server_name!r} of endpoint {ep.address}; exactly one must"
            )
        creds.append(grpc.ssl_channel_credentials(pinned[roots[0]]))
        validators.append(genesis.validators[roots[0]].id)
    return creds, validators


# What a node answers a Submit it took (SubmitOutcome without its unspecified 0).
_TAKEN = frozenset({pb.ACCEPTED, pb.ALREADY_PENDING, pb.ALREADY_COMMITTED})


def _details(e: grpc.aio.AioRpcError) -> Details | None:
    """The refusal's structured details (ADR 0020), None from a node that sent none."""
    pairs: Any = e.trailing_metadata() or ()  # grpc.aio.Metadata, or pairs in tests
    return from_trailer(e.code(), e.details() or "", list(pairs))


def _retry_after_ms(e: grpc.aio.AioRpcError) -> int:
    """Admission control's hint on a RESOURCE_EXHAUSTED answer, 0 when there is none: the
    RetryInfo of its details, else (a node before ADR 0020) its ``retry-after-ms``."""
    if e.code() is not _Code.RESOURCE_EXHAUSTED:
        return 0
    details = _details(e)
    if details is not None:
        return details.retry_after_ms
    pairs: Any = e.trailing_metadata() or ()  # grpc.aio.Metadata, or pairs in tests
    for key, value in pairs:
        if key == RETRY_AFTER_METADATA:
            try:
                return max(0, int(value))
            except (TypeError, ValueError):
                return 0
    return 0


def _block_stream_failed(ep: Endpoint, e: grpc.aio.AioRpcError, busy: int, height: int) -> str:
    """The line a block stream at ``ep`` that failed with ``e`` adds to UnavailableError; a
    refusal is raised, and so is BusyError once RESOURCE_EXHAUSTED (a node's limit of
    block streams, per connection or in all) passed the busy retries: the nodes are busy,
    not down (review 34s: the 33rd stream of one client raised UnavailableError, "check
    the nodes are up")."""
    if e.code() in _REFUSALS:
        raise _mapped(e, "block stream") from e
    if busy > BUSY_RETRIES_MAX:
        raise _saturated(f"block stream at height {height}", e) from e
    return f"{ep.address}: {e.code().name} {e.details()}"


def _saturated(what: str, e: grpc.aio.AioRpcError) -> BusyError:
    """RESOURCE_EXHAUSTED through every busy retry: BusyError with the last node's word."""
    busy_error = BusyError(f"{what}: the nodes stay saturated: {e.details()}")
    return with_details(busy_error, _details(e), e.details() or "")


async def _busy_backoff(busy: int) -> None:
    """The pause before busy retry number ``busy`` (exponential, capped)."""
    await asyncio.sleep(min(BUSY_BACKOFF_MAX_S, BUSY_BACKOFF_BASE_S * 2 ** (busy - 1)))


async def _wait_overload(
    what: str, e: grpc.aio.AioRpcError, hint_ms: int, tries: int, deadline: float | None
) -> None:
    """Wait out admission control's hint before retry number ``tries``, or raise
    OverloadedError when the retries ran out or the wait would not fit in the deadline."""
    wait_s = overload_wait_s(hint_ms)
    now = asyncio.get_running_loop().time()
    if tries > OVERLOAD_RETRIES_MAX or (deadline is not None and now + wait_s >= deadline):
        overloaded = OverloadedError(f"{what}: {e.details()}", hint_ms / 1000)
        raise with_details(overloaded, _details(e), e.details() or "") from e
    await asyncio.sleep(wait_s)


def _check_height(field: str, height: int) -> None:
    """A height the wire can carry (uint64), else InvalidFieldError, not protobuf's
    ValueError ("Value out of range"), which the CLI would show as a traceback."""
    if height < 1:
        raise InvalidFieldError(field, "heights start at 1")
    if height > U64_MAX:
        raise InvalidFieldError(field, f"{height} is past the last possible height, 2**64 - 1")


def _check_timeout(timeout_s: float) -> None:
    if not 0 < timeout_s <= WAIT_TIMEOUT_MAX_S:
        raise InvalidFieldError("timeout_s", f"must be in (0, {WAIT_TIMEOUT_MAX_S:g}] seconds")


def _mapped(e: grpc.aio.AioRpcError, what: str) -> LedgerError:
    code, details = e.code(), e.details() or ""
    err: LedgerError
    if code is _Code.INVALID_ARGUMENT:
        err = InvalidTransactionError(f"{what}: refused by the node: {details}")
    elif code is _Code.NOT_FOUND:
        err = NotFoundError(_about(what, details))
    elif code is _Code.UNAUTHENTICATED:
        err = UnauthenticatedError(_about(what, details))
    elif code is _Code.PERMISSION_DENIED:
        err = PermissionDeniedError(_about(what, details))
    else:
        err = LedgerError(f"{what}: {code.name}: {details}")
    return with_details(err, _details(e), details)


def _about(what: str, details: str) -> str:
    """``what: details``, or the node's ``details`` alone when they name ``what`` already
    (``transaction ID is neither committed nor pending``: the id once, not twice)."""
    return details if details.startswith(f"{what} ") else f"{what}: {details}"


def _check_quiet(held: BlockView, nxt: BlockView) -> None:
    """Block ``held``, shown whole with no transactions, no events and no proof (an idle
    chain's last block), was quiet: the certified header of ``nxt``, its successor,
    carries the quiet results root and the state root shown (ADR 0026)."""
    if nxt.prior_results != QUIET_RESULTS_ROOT or nxt.prior_root != held.state_root:
        raise BadResponseError(
            f"block {held.height} was shown with no transactions, no events and no proof of "
            f"its results, but block {nxt.height}'s certified header says otherwise: the "
            "node hid them"
        )


def _replayed(b: BlockView) -> ReplayedBlock:
    return ReplayedBlock(
        b.height,
        b.hash,
        b.time_ms,
        b.certificate,
        tuple(t.raw for t in b.transactions),
        b.prior_root,
        # A filtered copy showing every transaction its certified header counts hides
        # none (an idle block's, which a hostile node may send an observer: review 32).
        b.filtered and len(b.transactions) < b.tx_count,
    )


def _block_tx(position: int, raw: bytes, result: pb.TransactionResult) -> BlockTx:
    """One certified transaction and the node's result for it. Its id is hashed here, as
    execution hashes it (the body's hash; the whole bytes' for a copy that does not
    decode): only the code and ``recorded`` are the node's word."""
    tx: Transaction | None = None
    try:
        stx = SignedTx.decode(raw)
    except TxDecodeError:
        tid = sha256(raw)
    else:
        tid = stx.tx_id
        with contextlib.suppress(TxDecodeError):
            tx = decode_body(stx.body)
    if bytes(result.tx_id) != tid:
        raise BadResponseError(
            f"the id the node gives the transaction at position {position} is not its hash"
        )
    code = decode_result_code(result.code, BadResponseError)
    return BlockTx(position, tid, code, tx, raw, result.recorded)


def _tx_result(r: pb.TransactionResult) -> TxResult:
    """A transaction's result as the node gives it, to be checked against its leaf."""
    code = decode_result_code(r.code, BadResponseError)
    return TxResult(_result_id(r), code, recorded=r.recorded)


def _block_event(e: pb.TransactionResult) -> BlockEvent:
    return BlockEvent(e.position, _result_id(e), decode_result_code(e.code, BadResponseError))


def _result_id(r: pb.TransactionResult) -> bytes:
    """A result's id, which its leaf holds as 32 bytes: any other length is a node's fault
    (BadResponseError, so the next node is read), never an encoding error here (review 22)."""
    tid = bytes(r.tx_id)
    if len(tid) != HASH_LEN:
        raise BadResponseError(
            f"a result at position {r.position} of block {r.height} has an id of {len(tid)} "
            f"bytes, not {HASH_LEN}"
        )
    return tid


def _settlement(msg: pb.TransactionStatus) -> Settlement | None:
    if not msg.HasField("settlement"):
        return None
    s = msg.settlement
    code = decode_result_code(s.code, BadResponseError)
    return Settlement(code, s.height, s.index, s.settled_quantity, s.settled_amount)


def _legs(account: str, tx: Transaction) -> tuple[tuple[str, int], ...]:
    """The account's (instrument, delta) legs if ``tx`` applies."""
    legs: list[tuple[str, int]] = []
    if isinstance(tx, Mint):
        legs += [(tx.instrument, tx.amount)] if tx.to == account else []
    elif isinstance(tx, Burn):
        legs += [(tx.instrument, -tx.amount)] if tx.holder == account else []
    elif isinstance(tx, Transfer):
        legs += [(tx.instrument, -tx.amount)] if tx.sender == account else []
        legs += [(tx.instrument, tx.amount)] if tx.receiver == account else []
    elif isinstance(tx, DvP | PendingDvP):  # a pending one's later events are not legs here
        if tx.seller == account:
            legs += [(tx.bond, -tx.quantity), (tx.cash, tx.amount)]
        if tx.buyer == account:
            legs += [(tx.bond, tx.quantity), (tx.cash, -tx.amount)]
    elif isinstance(tx, Swap | ClaimLock):  # lock: docs/ledger.md "Locks and swaps"
        legs += _lock_legs(account, tx)
    return tuple(legs)


def _lock_legs(account: str, tx: Swap | ClaimLock) -> list[tuple[str, int]]:
    if isinstance(tx, ClaimLock):
        moves = [(tx.instrument, tx.holder, tx.beneficiary, tx.amount)]
    else:
        moves = [
            (tx.instrument_a, tx.party_a, tx.party_b, tx.quantity_a),
            (tx.instrument_b, tx.party_b, tx.party_a, tx.quantity_b),
        ]
    out = [(i, -n) for i, src, _, n in moves if src == account]
    return out + [(i, n) for i, _, dst, n in moves if dst == account]


def _parties(tx: Transaction) -> set[str] | None:
    """Who ``tx`` names; None for a payment to every holder (coupon, distribution,
    redemption of all), whose payees and amounts depend on the state, not the body."""
    if isinstance(tx, Mint):
        return {tx.to, tx.by}
    if isinstance(tx, Burn | Redeem):
        return {tx.holder, tx.by} if isinstance(tx, Burn) else {tx.holder}
    if isinstance(tx, Transfer):
        return {tx.sender, tx.receiver}
    if isinstance(tx, DvP | PendingDvP | Cancel):
        return {tx.seller, tx.buyer}
    if isinstance(tx, Hold | Release):
        return {tx.by}
    if isinstance(tx, Lock | ClaimLock):
        return {tx.holder, tx.beneficiary}
    if isinstance(tx, ReleaseLock):
        return {tx.holder, tx.by}
    if isinstance(tx, Swap):
        return {tx.party_a, tx.party_b}
    return None


def _event(account: str, b: BlockView, t: BlockTx) -> AccountEvent | None:
    # A copy not recorded under its id (forged signature, replay) is nothing the account
    # did: reporting its refusal would misstate the outcome of the id (ADR 0007).
    if t.tx is None or not t.recorded:
        return None
    parties = _parties(t.tx)
    if parties is not None and account not in parties:
        return None
    legs = _legs(account, t.tx)
    if t.code is not ResultCode.OK:
        legs = tuple((inst, 0) for inst, _ in legs)
    return AccountEvent(
        account, b.height, t.position, b.time_ms, t.tx_id, t.tx.KIND.name, t.code, legs
    )
