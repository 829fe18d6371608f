"""Adversarial review of the client port (node/runtime/_api.py, _handlers.py, _access.py)
against a hostile authenticated client, and of the SDK's unary calls (client/_async.py)
against a hostile node, by an adversarial review (session 14). Each defect it found is
pinned here and fixed, each guarded by a known mutant; the last one (a filtered block
could not prove it left nothing out) by a protocol change, ADR 0025. Every test drives
the real code in-process: the gate, the servicer's methods with a stand-in context, a
real ``Node`` on the test's loop, a chain of real blocks (``tests.chain_helpers``), or
the real ``AsyncLedgerClient`` with stand-in stubs. No cluster.
"""

from __future__ import annotations

import asyncio
import dataclasses
import socket
import time
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import grpc
import grpc.aio
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from client import (
    AsyncLedgerClient,
    BadResponseError,
    BusyError,
    Endpoint,
    FinalityTimeoutError,
    InvalidFieldError,
    LedgerError,
    ParticipantKey,
    ResultCode,
    Transactions,
    UnavailableError,
)
from node import crypto
from node.access import Caller, signed_metadata
from node.config import (
    CLIENT_CONNECTION_IDLE_MS,
    HEALTH_WATCHES_PER_CONNECTION_MAX,
    REFLECTION_STREAMS_PER_CONNECTION_MAX,
)
from node.core import Block
from node.genesis import DemoNetwork, demo_genesis
from node.merkle import MerkleTree
from node.runtime import Metrics, Node
from node.runtime._access import Gate, GateFullError
from node.runtime._api import HealthService, LedgerService, ReflectionService, filtered_block_pb
from node.runtime._handlers import add_service
from node.runtime._server import new_client_server
from node.settlement import (
    BlockContext,
    PartyIndex,
    Registry,
    _parties,
    apply_block,
    decode_party_proof,
    precheck,
    results_leaves,
    results_root,
)
from node.store import MemoryStore
from node.wire import ledger_pb2 as pb
from tests.chain_helpers import Chain
from tests.gov_helpers import add_participant, new_key
from tests.gov_helpers import signed as gov_signed
from tests.ledger_helpers import TxFactory, pinned_tls, shared_net
from tests.patience import HANG_S
from tests.repo_helpers import RepoTx

NET = shared_net()
G = NET.genesis
M = "/ledger.v1.Ledger/GetStatus"
T0 = 1_800_000_000_000


# --- 1. one participant takes the node-wide nonce memory: every other caller is refused ---


def _md(pid: str, nonce: int) -> tuple[tuple[str, str], ...]:
    key = NET.participant_keys[pid]
    n = nonce.to_bytes(16, "big")
    return signed_metadata(key, pid, G.chain_id, M, b"", node="val00", time_ms=T0, nonce=n)


def test_one_participant_cannot_take_every_request_nonce_of_the_node() -> None:
    """Scenario: BANK01 (any authenticated participant, one connection) sends signed
    GetStatus calls with fresh nonces and ``ledger-time-ms`` 20 s ahead (the edge of the
    window, so each nonce stays remembered 40 s). At the real limits, 200,000 nonces in
    40 s = 5,000 calls/s would fill the gate, and the node would then refuse every
    caller, the SDK's silence probes included. What holds: BANK01 is refused once it
    holds its share (REQUEST_NONCES_PER_PARTICIPANT_MAX, a tenth of the node's), with
    LIMIT_REACHED naming that limit, and every other participant goes on. Shown here with
    a gate of 100 nonces and shares of 10 (the rule does not depend on the size)."""
    gate = Gate(
        lambda: Registry.at_genesis(G),
        lambda: T0,
        "val00",
        nonces_max=100,
        participant_nonces_max=10,
    )
    for n in range(10):
        gate.admit(M, b"", _md("BANK01", n))
    # the flood itself: BANK01's next call is refused, naming its own share
    with pytest.raises(GateFullError) as refused:
        gate.admit(M, b"", _md("BANK01", 10))
    assert refused.value.limit == "request nonces per participant"
    # another participant still gets in (it held no nonce at all), up to its own share
    assert gate.admit(M, b"", _md("BANK02", 0)).participant == "BANK02"
    # and the node-wide pool still bounds the whole: ten participants at their share fill it
    others = sorted(set(NET.participant_keys) - {"BANK01"})
    for pid in others[:9]:
        for n in range(1 if pid == "BANK02" else 0, 10):
            gate.admit(M, b"", _md(pid, n))
    assert len(gate) == 100
    with pytest.raises(GateFullError) as full:
        gate.admit(M, b"", _md(others[9], 0))
    assert full.value.limit == "request nonces"


# --- 2. GetRepos: another participant's repos, told by PERMISSION_DENIED vs an answer -----


class _Aborted(Exception):
    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(code, message)
        self.code, self.message = code, message


class _Ctx:
    """What a servicer's unary method uses of its context."""

    def peer(self) -> str:
        return "ipv4:127.0.0.1:5000"

    def time_remaining(self) -> float | None:
        return None

    async def abort(self, code: grpc.StatusCode, message: str, trailing: object = None) -> None:
        raise _Aborted(code, message)


def _run_block(store: MemoryStore, *txs: bytes) -> None:
    head = store.head()
    ctx = BlockContext(head.height + 1, store.genesis.genesis_time_ms + 1_000)
    out = apply_block(store, list(txs), ctx)
    block_hash = crypto.sha256(b"block", ctx.height.to_bytes(8, "big"))
    store.commit_block(block_hash, b"", b"", ctx, out)


def _repo_service() -> LedgerService:
    """The servicer over a ledger holding one repo: R1, BANK01 borrows from BANK02."""
    store = MemoryStore(G)
    _run_block(store, RepoTx(NET, G.genesis_time_ms + 1_000).open("R1", "BANK01", "BANK02"))
    node: Any = SimpleNamespace(
        store=store, metrics=Metrics(), registry=lambda: Registry.of(store), clock_ms=lambda: 0
    )
    return LedgerService(node, {})


async def _answer(
    svc: LedgerService, caller: str, req: pb.ReposRequest, *, observer: bool = False
) -> str:
    """What ``caller`` sees: OK with the number of repos, or the status code's name and
    the message (with the asked id taken out, so two answers compare)."""
    Gate.enter(Caller(caller, observer=observer))
    try:
        return f"OK {len((await svc.GetRepos(req, _Ctx())).repos)}"  # type: ignore[arg-type]
    except _Aborted as e:
        return f"{e.code.name} {e.message.replace(repr(req.id), '<id>')}"


async def test_a_third_party_cannot_tell_whether_another_participant_has_repos() -> None:
    """Scenario: BANK03, party to no repo, asks GetRepos(party="BANK02") and
    GetRepos(party="BANK04"). BANK02 borrows/lends in R1, BANK04 in none. The review
    found the first PERMISSION_DENIED and the second OK with nothing: a position (BANK02
    is in a repo) told to a participant docs/cluster.md says reads only its own. Now a
    non-observer's ``party`` filters its own repos, as GetLocks does: both answers are
    the same empty list."""
    svc = _repo_service()
    # negative controls: the parties see R1, with or without the other party named, and
    # an observer sees BANK02's
    assert await _answer(svc, "BANK01", pb.ReposRequest()) == "OK 1"
    assert await _answer(svc, "BANK01", pb.ReposRequest(party="BANK02")) == "OK 1"
    assert await _answer(svc, "BANK01", pb.ReposRequest(party="BANK04")) == "OK 0"
    assert await _answer(svc, "AUDITOR", pb.ReposRequest(party="BANK02"), observer=True) == "OK 1"
    with_repo = await _answer(svc, "BANK03", pb.ReposRequest(party="BANK02"))
    without = await _answer(svc, "BANK03", pb.ReposRequest(party="BANK04"))
    assert with_repo == without == "OK 0", (with_repo, without)


async def test_a_third_party_cannot_tell_which_repo_ids_exist() -> None:
    """Repo ids are names the parties choose (R1, R2, ...), not hashes: the review found
    PERMISSION_DENIED for an id that exists and NOT_FOUND for one that does not, so any
    participant could enumerate the ledger's repos. Now both are the same NOT_FOUND."""
    svc = _repo_service()
    assert await _answer(svc, "BANK01", pb.ReposRequest(id="R1")) == "OK 1"  # control
    assert await _answer(svc, "AUDITOR", pb.ReposRequest(id="R1"), observer=True) == "OK 1"
    existing = await _answer(svc, "BANK03", pb.ReposRequest(id="R1"))
    missing = await _answer(svc, "BANK03", pb.ReposRequest(id="R2"))
    assert existing == missing, (existing, missing)
    assert existing.startswith("NOT_FOUND")


# --- 3. GetRepos with a non-ASCII id or party: an exception escapes the handler -----------


@pytest.mark.parametrize("field", ["id", "party"])
async def test_a_non_ascii_repo_id_or_party_gets_a_status_not_an_exception(field: str) -> None:
    """Scenario: any authenticated participant sends GetRepos(id="R\u00e9") or
    GetRepos(party="R\u00e9"). The review found the ASCII padding of a state key raising
    UnicodeEncodeError out of the servicer (gRPC UNKNOWN): a ``ledger repos --id`` typo
    through the SDK then cost 2 x n calls and ended as UnavailableError (retry_safe=True)
    for a request that can never succeed. Now: INVALID_ARGUMENT naming the field."""
    svc = _repo_service()
    Gate.enter(Caller("REGULATOR", observer=True))
    with pytest.raises(_Aborted) as refused:
        await svc.GetRepos(pb.ReposRequest(**{field: "R\u00e9"}), _Ctx())  # type: ignore[arg-type]
    assert refused.value.code is grpc.StatusCode.INVALID_ARGUMENT
    assert field in refused.value.message


@pytest.mark.parametrize("party", ["BANK 05", "R\u00e9", "x" * 65])
async def test_a_locks_party_that_is_not_an_id_is_invalid_not_answered_with_no_locks(
    party: str,
) -> None:
    """Scenario: the SDK's ``locks("BANK 05")`` (a typo; the CLI's ``--party`` refuses it
    itself). GetLocks compared the party with each lock's names and answered no locks,
    which reads as "none pledged"; GetRepos refuses the same party. Now INVALID_ARGUMENT
    naming the field; well-formed parties with no locks are still answered (the control:
    lower case, ``. _ : -``, 64 bytes)."""
    svc = _repo_service()
    Gate.enter(Caller("REGULATOR", observer=True))
    with pytest.raises(_Aborted) as refused:
        await svc.GetLocks(pb.LocksRequest(party=party), _Ctx())  # type: ignore[arg-type]
    assert refused.value.code is grpc.StatusCode.INVALID_ARGUMENT
    assert "party" in refused.value.message
    for well_formed in ("BANK09", "bank-9.x:y_z", "B" * 64):
        answered = await svc.GetLocks(pb.LocksRequest(party=well_formed), _Ctx())  # type: ignore[arg-type]
        assert list(answered.locks) == [], well_formed


# --- 4. a party-filtered block costs the node no more than a lookup once worked out -------


@pytest.fixture(scope="module")
def solo() -> DemoNetwork:
    return demo_genesis(validators=1, quorum=1, seed=b"review-client-api")


async def _node_with_a_full_block(net: DemoNetwork, txs: int) -> tuple[Node, Any]:
    """A real one-validator node that committed ``txs`` DvPs in one block."""
    store = MemoryStore(net.genesis)
    node = Node(net.genesis, 0, net.validator_keys[0], store, Metrics())
    node.start()
    txf = TxFactory(net)
    raws = [txf.signed(txf.dvp()) for _ in range(txs)]
    await asyncio.gather(*(node.submit(r, precheck(net.genesis, r).tx_id) for r in raws))
    async with asyncio.timeout(60):
        while sum(len(store.block(h).results) for h in range(1, store.head().height + 1)) < txs:
            await asyncio.sleep(0.01)
    big = max(
        (store.block(h) for h in range(1, store.head().height + 1)),
        key=lambda b: len(b.results),
    )
    return node, big


async def test_reading_a_block_again_does_not_decode_its_transactions_again(
    solo: DemoNetwork, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Scenario: a participant (not an observer, party to none of the block's trades)
    calls GetBlock(h) for a committed full block again and again, or holds its 8
    StreamBlocks per connection (64 per node) from height 1. Each request costs its
    sender one Ed25519 signature (~50 us). Found by the review: every such read decoded
    every body of the block twice (1,499 DvPs: 50 ms a read against 2.2 ms for an
    observer), so ~20 GetBlock/s from one client held the node's loop (which consensus
    shares). Guarded: what a filtered read shows is the block's party index (ADR 0025),
    which execution built and the node keeps with the block's Merkle trees: the first
    read of a block executed here decodes no body; an older one's index is worked out
    once, decoding each body once, and every later read of the block, by any caller or
    stream, reuses it."""
    node, big = await _node_with_a_full_block(solo, 300)
    decodes = 0
    real = _parties.decode_body

    def counting(body: bytes) -> Any:
        nonlocal decodes
        decodes += 1
        return real(body)

    monkeypatch.setattr(_parties, "decode_body", counting)
    caller = Caller("BANK05", observer=False)
    try:
        assert not node.trees_kept(big.height)  # never read: its index is execution's
        first = filtered_block_pb(node, big, caller)
        assert first.filtered and decodes == 0
        node._trees_cache.clear()  # as if read long after: worked out again
        first = filtered_block_pb(node, big, caller)
        # control: the first read works it out, one decode per transaction
        assert first.filtered and decodes == len(node.block_parts(big)[1]) > 200
        decodes = 0
        filtered_block_pb(node, big, caller)
        assert decodes < 30, f"the same block read again decoded {decodes} bodies"
    finally:
        node.stop()
        node.close()


def test_an_older_blocks_party_index_is_worked_out_with_the_participants_of_its_height() -> None:
    """A block's party index has a leaf for each participant registered after the block
    (ADR 0025); governance adds participants later (never removes one). Block 1 names
    BANK99 (a transfer to it, refused: not a participant yet), block 2 adds BANK99, and a
    node that did not execute block 1 (restarted: the index is not kept) works block 1's
    index out again: with the participants of height 1 (``PARTICIPANT_SINCE``), so its
    root is the one block 2 certifies, and BANK99, added after, is proven to have no leaf
    and is shown none of block 1."""
    pinned, certs = pinned_tls(NET)
    chain, txf = Chain(pinned), TxFactory(pinned)
    chain.commit([txf.signed(txf.dvp()), txf.signed(txf.transfer("BANK01", "BANK99"))])
    chain.commit([gov_signed(pinned, add_participant(txf, "BANK99"))])
    chain.commit([])
    assert chain.outcomes[2].results[0].code is ResultCode.OK
    node, block1 = chain.node(), chain.store.block(1)
    assert block1 is not None
    for who, shown in (("BANK01", (0, 1)), ("BANK99", ())):
        info = filtered_block_pb(node, block1, Caller(who, observer=False))
        assert tuple(r.position for r in info.results) == shown
        c = _sdk(pinned, certs, who)
        assert tuple(t.position for t in c._block_view(info).transactions) == shown


# --- 5. SDK unary calls: one hostile node's unproven word ends a submit -------------------


class _Stub:
    """A node's Ledger stub: each method answers with ``answer(method, request)``."""

    def __init__(self, answer: Callable[[str, Any], Any]) -> None:
        self._answer = answer
        self.calls: list[str] = []

    def __getattr__(self, method: str) -> Callable[..., Any]:
        def call(req: Any, **kw: Any) -> Any:
            self.calls.append(method)

            async def run() -> Any:
                out = self._answer(method, req)
                if isinstance(out, BaseException):
                    raise out
                return await out if asyncio.iscoroutine(out) else out

            return asyncio.ensure_future(run())  # awaitable and cancellable, like a call

        return call


def _rpc_error(code: grpc.StatusCode, message: str) -> grpc.aio.AioRpcError:
    return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), grpc.aio.Metadata(), message)


class _AskedAnotherNode(Exception):
    """The honest node was asked: the SDK did not take the hostile node's word."""


def _client(stubs: list[_Stub]) -> tuple[AsyncLedgerClient, Any]:
    net, certs = pinned_tls(NET)
    endpoints = [Endpoint(f"127.0.0.1:{i + 1}", f"node-{i:02d}") for i in range(len(stubs))]
    c = AsyncLedgerClient(endpoints, tls_certs=certs, genesis=net.genesis)
    c._stub = lambda i: stubs[i]  # type: ignore[method-assign]
    dvp = Transactions(net.genesis).dvp(
        seller="BANK01", buyer="BANK02", bond=net.bonds[0], quantity=100, cash=net.cash, amount=99
    )
    keys = [ParticipantKey(p, net.participant_keys[p]) for p in ("BANK01", "BANK02")]
    return c, c.sign(dvp, *keys)


def _honest(method: str, req: Any) -> Any:
    raise _AskedAnotherNode(method)


async def test_control_an_unavailable_node_is_left_for_the_next() -> None:
    """Negative control of the stand-ins below: a node answering UNAVAILABLE is left and
    the honest node is asked, so reaching ``_AskedAnotherNode`` is what failover looks like."""
    hostile = _Stub(lambda m, r: _rpc_error(grpc.StatusCode.UNAVAILABLE, "going away"))
    c, stx = _client([hostile, _Stub(_honest)])
    try:
        with pytest.raises(_AskedAnotherNode):
            await c.submit(stx, wait=False)
    finally:
        await c.aclose()


_REFUSAL_CODES = [
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.PERMISSION_DENIED,
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.UNAUTHENTICATED,
]
# Codes no Ledger node answers with (node/runtime/_refuse.py): a node that does is at fault.
_NO_ANSWER_CODES = [
    grpc.StatusCode.ABORTED,
    grpc.StatusCode.FAILED_PRECONDITION,
    grpc.StatusCode.ALREADY_EXISTS,
    grpc.StatusCode.OUT_OF_RANGE,
    grpc.StatusCode.DATA_LOSS,
    grpc.StatusCode.UNIMPLEMENTED,
]


@pytest.mark.parametrize("code", _REFUSAL_CODES)
async def test_one_nodes_unproven_precheck_refusal_does_not_end_a_submit(
    code: grpc.StatusCode,
) -> None:
    """Scenario: endpoint 0 (every client's first) is a hostile validator; it answers
    every Submit ``INVALID_ARGUMENT: BAD_SIGNATURE`` for a transaction whose signatures
    are fine. The SDK raises InvalidTransactionError (not retry-safe) at once. The claim
    is checkable (the SDK holds genesis and the signed bytes) or at least a second node
    can be asked; docs/sdk.md already refuses to take one node's word for a settled
    refusal (RejectedError needs its result proof), but not for this one."""
    hostile = _Stub(lambda m, r: _rpc_error(code, "refused (a hostile node's word)"))
    c, stx = _client([hostile, _Stub(_honest)])
    try:
        with pytest.raises(_AskedAnotherNode):
            await c.submit(stx, wait=False)
    except LedgerError as e:
        assert not e.retry_safe  # today: the valid trade is reported as refused, final
        raise
    finally:
        await c.aclose()


@pytest.mark.parametrize("code", _REFUSAL_CODES)
async def test_a_submit_refused_by_two_nodes_is_raised_as_their_refusal(
    code: grpc.StatusCode,
) -> None:
    """Control of the second opinion: when the next node refuses too, the refusal is the
    answer (not UnavailableError after every node), and no third node is asked."""
    refuse = lambda m, r: _rpc_error(code, "refused")  # noqa: E731
    third = _Stub(_honest)
    c, stx = _client([_Stub(refuse), _Stub(refuse), third])
    try:
        with pytest.raises(LedgerError) as caught:
            await c.submit(stx, wait=False)
        assert not isinstance(caught.value, UnavailableError) and not caught.value.retry_safe
        assert third.calls == []
    finally:
        await c.aclose()


@pytest.mark.parametrize("code", _NO_ANSWER_CODES)
async def test_a_status_no_node_answers_with_is_the_nodes_fault_not_the_callers(
    code: grpc.StatusCode,
) -> None:
    """Scenario: endpoint 0 answers a submit, and a read, with a status the Ledger service
    never sends (ABORTED, DATA_LOSS, ...). The SDK raised it as a LedgerError, not
    retry-safe, and kept endpoint 0 for the next call: one hostile node could report any
    valid trade as failed for good. Such a status is the node's failure, as UNAVAILABLE
    is: the next node is asked, for a read too (no second opinion there)."""
    hostile = _Stub(lambda m, r: _rpc_error(code, "a hostile node's status"))
    c, stx = _client([hostile, _Stub(_honest)])
    try:
        with pytest.raises(_AskedAnotherNode, match="Submit"):
            await c.submit(stx, wait=False)
        c._current = 0
        with pytest.raises(_AskedAnotherNode, match="GetBalances"):
            await c.balances("BANK01")
    finally:
        await c.aclose()


@pytest.mark.parametrize("code", _REFUSAL_CODES)
async def test_a_read_refused_by_one_node_is_its_refusal(code: grpc.StatusCode) -> None:
    """Control: a refusal of a read (no second opinion) is raised at once, typed; only
    statuses no node answers with are failed over."""
    c, _ = _client([_Stub(lambda m, r: _rpc_error(code, "refused")), _Stub(_honest)])
    try:
        with pytest.raises(LedgerError) as caught:
            await c.balances("BANK01")
        assert not isinstance(caught.value, UnavailableError)
    finally:
        await c.aclose()


@pytest.mark.parametrize("code", [*_REFUSAL_CODES, *_NO_ANSWER_CODES])
async def test_a_finality_wait_refused_after_acceptance_asks_another_node(
    code: grpc.StatusCode,
) -> None:
    """Scenario: endpoint 0 answers Submit ACCEPTED, then WaitForFinality NOT_FOUND (or
    any other refusal, or a status no node sends). The SDK raised NotFoundError, not
    retry-safe, after the node had accepted the trade, which may well settle: the back
    office is told it failed and must not be resent. It is one node's word like a
    precheck refusal: the next node is asked (the same signed bytes: idempotent)."""
    tids: list[bytes] = []

    def hostile_answer(method: str, req: Any) -> Any:
        if method == "Submit":
            return pb.SubmitResponse(tx_id=tids[0], outcome=pb.ACCEPTED)
        if method == "GetStatus":
            return pb.NodeStatus()
        return _rpc_error(code, "no such transaction (a hostile node's word)")

    c, stx = _client([_Stub(hostile_answer), _Stub(_honest)])
    tids.append(stx.tx_id)
    try:
        with pytest.raises(_AskedAnotherNode, match="Submit"):
            await c.submit(stx, timeout_s=30)
    finally:
        await c.aclose()


class _BlockStreams:
    """A node's stub for ``StreamBlocks`` only: each call's stream fails with ``error``."""

    def __init__(self, error: BaseException) -> None:
        self._error = error

    def StreamBlocks(self, req: Any, **kw: Any) -> Any:
        error = self._error

        class Call:
            def __aiter__(self) -> Any:
                return self

            async def __anext__(self) -> Any:
                raise error

            def cancel(self) -> bool:
                return True

        return Call()


@pytest.mark.parametrize("code", [*_REFUSAL_CODES, *_NO_ANSWER_CODES])
async def test_a_block_stream_fails_over_on_a_status_no_node_answers_with(
    code: grpc.StatusCode,
) -> None:
    """The block stream follows the same rule as the unary calls: a refusal is raised,
    typed (control); a status no node answers with sends the stream to the next node."""
    c, _ = _client([_Stub(_honest), _Stub(_honest)])
    hostile = _BlockStreams(_rpc_error(code, "a hostile node's status"))
    honest = _BlockStreams(_AskedAnotherNode("StreamBlocks"))
    c._stub = lambda i: (hostile, honest)[i]  # type: ignore[method-assign,assignment,return-value]
    expected: type[BaseException] = LedgerError if code in _REFUSAL_CODES else _AskedAnotherNode
    try:
        with pytest.raises(expected) as caught:
            await c.blocks().__anext__()
        assert not isinstance(caught.value, UnavailableError)
    finally:
        await c.aclose()


async def test_a_streams_refused_submission_is_resubmitted_through_another_node() -> None:
    """The submit stream's second opinion (client/_stream.py): the bytes its node refused
    go through ``submit`` starting at the next endpoint, not back to the refusing node."""
    refusing = _Stub(lambda m, r: _rpc_error(grpc.StatusCode.INVALID_ARGUMENT, "refused"))
    c, stx = _client([refusing, _Stub(_honest)])
    try:
        with pytest.raises(_AskedAnotherNode, match="Submit"):
            await c._second_opinion(stx.raw, c.endpoints[0].address, 5.0)
        assert refusing.calls == []
    finally:
        await c.aclose()


async def test_a_node_that_always_says_busy_is_left_for_another() -> None:
    hostile = _Stub(lambda m, r: _rpc_error(grpc.StatusCode.RESOURCE_EXHAUSTED, "mempool full"))
    c, stx = _client([hostile, _Stub(_honest)])
    try:
        with pytest.raises(_AskedAnotherNode):
            await c.submit(stx, wait=False)
    except BusyError:
        assert c._current == 0 and set(hostile.calls) == {"Submit"}
        raise
    finally:
        await c.aclose()


async def test_a_node_claiming_a_finality_timeout_early_is_not_believed() -> None:
    """Scenario: endpoint 0 answers Submit ACCEPTED, then WaitForFinality
    DEADLINE_EXCEEDED immediately (its own word: 'not final within 30000 ms'). The SDK
    raises FinalityTimeoutError ~0 s into a 30 s timeout. Retry-safe, so not a loss,
    but the claim is checkable against the client's own clock: time is left, so the
    wait should move on (as for UNAVAILABLE) instead of ending."""
    net_tid: list[bytes] = []

    def hostile_answer(method: str, req: Any) -> Any:
        if method == "Submit":
            return pb.SubmitResponse(tx_id=net_tid[0], outcome=pb.ACCEPTED)
        if method == "GetStatus":
            return pb.NodeStatus()
        return _rpc_error(grpc.StatusCode.DEADLINE_EXCEEDED, "not committed within 30000 ms")

    hostile = _Stub(hostile_answer)
    c, stx = _client([hostile, _Stub(_honest)])
    net_tid.append(stx.tx_id)
    loop = asyncio.get_running_loop()
    started = loop.time()
    try:
        with pytest.raises(_AskedAnotherNode):
            await c.submit(stx, timeout_s=30)
    except FinalityTimeoutError:
        assert loop.time() - started < 5  # "timed out" long before its 30 s
        raise
    finally:
        await c.aclose()


# --- 6. anonymous parked calls: reflection streams have a share, the port a call limit -----


async def _parked_on_one_connection(streams: int) -> tuple[int, int]:
    """The client port's open services as node/runtime/_server.py registers them (health
    and reflection: no identity needed), on 127.0.0.1; one connection opens ``streams``
    health Watch calls and ``streams`` reflection calls and sends nothing more. Returns
    (watches the node holds, reflection handlers parked at the node) once every call is
    either held or refused."""
    server = new_client_server()
    health = HealthService()
    reflection = ReflectionService([health_pb2.DESCRIPTOR.services_by_name["Health"].full_name])
    parked = 0
    real = reflection.ServerReflectionInfo

    async def counted(requests: Any, context: Any) -> Any:
        nonlocal parked
        parked += 1
        try:
            async for item in real(requests, context):
                yield item
        finally:
            parked -= 1

    reflection.ServerReflectionInfo = counted  # type: ignore[method-assign]
    add_service(server, health, health_pb2.DESCRIPTOR.services_by_name["Health"])
    add_service(server, reflection, reflection_pb2.DESCRIPTOR.services_by_name["ServerReflection"])
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    calls: list[Any] = []
    try:
        watch = health_pb2_grpc.HealthStub(channel).Watch
        info = reflection_pb2_grpc.ServerReflectionStub(channel).ServerReflectionInfo
        for _ in range(streams):
            calls.append(watch(health_pb2.HealthCheckRequest(service="")))
            calls.append(info())
        async with asyncio.timeout(30):
            # a refused call ends (done); a held one is a watch or a parked handler
            while sum(c.done() for c in calls) + health._watches.total + parked < 2 * streams:
                await asyncio.sleep(0.05)
        await asyncio.sleep(0.5)  # let any further ones arrive
        return health._watches.total, parked
    finally:
        for c in calls:
            c.cancel()
        await channel.close()
        await server.stop(None)


async def test_an_anonymous_connection_cannot_park_more_reflection_streams_than_watches() -> None:
    """Scenario: an anonymous TLS client (no participant key) opens reflection streams
    (``ServerReflectionInfo``, bidirectional) and never sends on them. Each parks a
    handler task at the node until the client leaves: 21.9 KB per call (measured by the
    review with the client in a separate process: 3,382 parked handlers = 74 MB RssAnon
    of the server process). Found by the review: nothing but HTTP/2 bounded them, 2,124
    streams per connection and 512 connections, ~1.09 M parked calls (~24 GB) by a client
    that proves nothing. Guarded: reflection streams hold a share like health Watch (the
    control), REFLECTION_STREAMS_PER_CONNECTION_MAX per connection and
    REFLECTION_STREAMS_MAX per node (node/runtime/_api.py ``ReflectionService``), shown
    with 40 streams of each; calls of every kind are capped by the next test."""
    watches, reflections = await _parked_on_one_connection(40)
    assert watches == HEALTH_WATCHES_PER_CONNECTION_MAX  # control: watches are bounded
    assert reflections == REFLECTION_STREAMS_PER_CONNECTION_MAX, f"{reflections} parked"


_H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
_H2_SETTINGS = b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"  # an empty SETTINGS frame
_H2_SETTINGS_ACK = b"\x00\x00\x00\x04\x01\x00\x00\x00\x00"


def _idle_connection_closed_within(port: int, wait_s: float) -> float | None:
    """Open an HTTP/2 connection to ``port`` that does everything a client must (the
    preface, its SETTINGS, the ACK of the server's) and then nothing: the seconds until the
    server closed it, or None if it kept it ``wait_s``. (TLS left out: the idle bound is
    HTTP/2's, the same under TLS.)"""
    with socket.create_connection(("127.0.0.1", port), timeout=HANG_S) as s:
        s.sendall(_H2_PREFACE + _H2_SETTINGS)
        assert s.recv(4096), "the server sent no SETTINGS"
        s.sendall(_H2_SETTINGS_ACK)
        start = time.monotonic()
        s.settimeout(0.1)
        while (elapsed := time.monotonic() - start) < wait_s:
            try:
                if s.recv(4096) == b"":
                    return elapsed
            except TimeoutError:
                continue
            except ConnectionResetError:
                return elapsed
    return None


async def test_a_connection_with_no_call_is_closed_after_the_idle_bound() -> None:
    """Scenario (adversarial review, session 26): 512 anonymous connections that finished
    their handshake and ACKed the server's SETTINGS, then sent nothing, were kept for ever;
    every slot of CLIENT_CONNECTIONS_MAX taken, no honest client could connect. The client
    port now closes a connection with no call after ``idle_ms``. Control: the same
    connection with the node's bound (a minute) is kept over the same wait."""
    for idle_ms, expect_closed in ((300, True), (CLIENT_CONNECTION_IDLE_MS, False)):
        server = new_client_server(idle_ms=idle_ms)
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        try:
            closed = await asyncio.to_thread(_idle_connection_closed_within, port, 2.0)
        finally:
            await server.stop(None)
        assert (closed is not None) == expect_closed, (idle_ms, closed)
        assert closed is None or closed < 1.5


async def test_calls_parked_before_their_request_are_capped_by_the_client_port() -> None:
    """Scenario: an anonymous client opens a unary method (health Check here, any Ledger
    method alike: identity is checked on the request) as a stream and never sends the
    request. The handler parks before any share or the gate sees it. Guarded: the client
    port's server refuses calls beyond CLIENT_RPCS_MAX in progress (RESOURCE_EXHAUSTED),
    parked ones included, shown with a limit of 4; the limit holds every node-wide share
    at once (node/config.py)."""
    server = new_client_server(rpcs_max=4)
    add_service(server, HealthService(), health_pb2.DESCRIPTOR.services_by_name["Health"])
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    check = health_pb2_grpc.HealthStub(channel).Check
    opened = channel.stream_stream("/grpc.health.v1.Health/Check")
    parked = [opened() for _ in range(5)]  # one more than the limit
    ended = [asyncio.ensure_future(c.code()) for c in parked]
    try:
        first, _ = await asyncio.wait(ended, timeout=HANG_S, return_when=asyncio.FIRST_COMPLETED)
        codes = [t.result() for t in first]
        assert codes == [grpc.StatusCode.RESOURCE_EXHAUSTED], f"5 calls, limit 4: {codes}"
        with pytest.raises(grpc.aio.AioRpcError) as refused:  # the 4 others hold the limit
            await check(health_pb2.HealthCheckRequest(service=""), timeout=5)
        assert refused.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
        for c in parked:
            c.cancel()
        async with asyncio.timeout(30):
            await asyncio.gather(*ended)
            while True:  # control: with the parked calls gone, calls are served again
                try:
                    await check(health_pb2.HealthCheckRequest(service=""), timeout=5)
                    break
                except grpc.aio.AioRpcError as e:
                    assert e.code() is grpc.StatusCode.RESOURCE_EXHAUSTED, e
                    await asyncio.sleep(0.05)
    finally:
        for c in parked:
            c.cancel()
        await channel.close()
        await server.stop(None)


# --- 7. a filtered block may leave out the caller's own trades, undetected -----------------


def _sdk(net: DemoNetwork, certs: bytes, who: str) -> AsyncLedgerClient:
    """A client calling as ``who`` (its key from the demo network, or the one governance
    tests add it with), reaching no node."""
    key = ParticipantKey(who, net.participant_keys.get(who) or new_key(who))
    return AsyncLedgerClient(
        [Endpoint("127.0.0.1:1", "node-00")], tls_certs=certs, genesis=net.genesis, identity=key
    )


async def test_a_filtered_block_that_hides_the_callers_trades_is_not_accepted(
    solo: DemoNetwork,
) -> None:
    """Scenario: BANK01 (not an observer) follows its trades with ``events("BANK01")``
    or reconciles with ``block(h)`` through a hostile validator. The node answers the real
    header and commit certificate with ``filtered=True`` and leaves BANK01's
    receipts out (all of them here; or only the ones it wants hidden). Every check of
    ``_filtered_view`` passed: the header's hash, the certificate, each receipt that is
    there. The bank's back office saw no trade at that height and did not reconcile
    it: nothing certified committed to which positions name BANK01. Fixed (ADR 0025):
    execution commits each block's party index (per participant, its positions) as the
    last leaf of the block's results tree, which the next header certifies; a filtered
    block carries the caller's leaf with its proof, and the SDK refuses one whose
    receipts are not exactly the positions proven."""
    pinned, certs = pinned_tls(solo)
    node, big = await _node_with_a_full_block(pinned, 20)
    try:
        async with asyncio.timeout(30):  # the next block certifies the proof
            while node.store.head().height <= big.height:
                await node.head_changed()
        honest = filtered_block_pb(node, big, Caller("BANK01", observer=False))
        hidden = pb.BlockInfo()
        hidden.CopyFrom(honest)
        del hidden.receipts[:], hidden.results[:], hidden.result_paths[:]
    finally:
        node.stop()
        node.close()
    answers = [honest, hidden]
    stub = _Stub(lambda method, req: answers.pop(0) if len(answers) > 1 else answers[0])
    c = _sdk(pinned, certs, "BANK01")
    c._stub = lambda i: stub  # type: ignore[method-assign]
    try:
        shown = await c.block(big.height)  # control: the honest answer lists them all
        assert shown.filtered and len(shown.transactions) == len(big.results) > 10
        with pytest.raises(BadResponseError, match="party index commits to"):
            c._block_view(hidden)
        with pytest.raises(UnavailableError, match="party index commits to"):
            await c.block(big.height)  # the node's answer is refused, every time
    finally:
        await c.aclose()


@pytest.fixture(scope="module")
def traded() -> tuple[DemoNetwork, bytes, Chain]:
    """Block 1: three DvPs BANK01/BANK02 (positions 0, 2, 4), a transfer BANK03 ->
    BANK04 (1), a DvP BANK02/BANK03 (3); block 2, empty, certifies block 1's results and
    its party index."""
    pinned, certs = pinned_tls(NET)
    chain, txf = Chain(pinned), TxFactory(pinned)
    chain.commit(
        [
            txf.signed(txf.dvp()),
            txf.signed(txf.transfer("BANK03", "BANK04")),
            txf.signed(txf.dvp()),
            txf.signed(txf.dvp("BANK02", "BANK03")),
            txf.signed(txf.dvp()),
        ]
    )
    chain.commit([])
    return pinned, certs, chain


def _filtered(traded: tuple[DemoNetwork, bytes, Chain], who: str) -> pb.BlockInfo:
    chain = traded[2]
    block = chain.store.block(1)
    assert block is not None
    return filtered_block_pb(chain.node(), block, Caller(who, observer=False))


def _without(info: pb.BlockInfo, position: int) -> pb.BlockInfo:
    out = pb.BlockInfo()
    out.CopyFrom(info)
    keep = [i for i, r in enumerate(info.results) if r.position != position]
    del out.results[:], out.receipts[:], out.result_paths[:]
    out.results.extend(info.results[i] for i in keep)
    out.receipts.extend(info.receipts[i] for i in keep)
    out.result_paths.extend(info.result_paths[i] for i in keep)
    return out


async def test_a_filtered_block_that_hides_one_of_the_callers_trades_is_refused(
    traded: tuple[DemoNetwork, bytes, Chain],
) -> None:
    """The hostile node drops only the trade it wants hidden (BANK01's second DvP, position
    2), keeping the others and the honest proof: refused, the proof names position 2."""
    pinned, certs, _ = traded
    honest = _filtered(traded, "BANK01")
    c = _sdk(pinned, certs, "BANK01")
    try:
        view = c._block_view(honest)  # control
        assert [t.position for t in view.transactions] == [0, 2, 4]
        with pytest.raises(BadResponseError, match=r"positions \[0, 4\], not the ones"):
            c._block_view(_without(honest, 2))
    finally:
        await c.aclose()


async def test_a_party_with_no_trade_in_the_block_is_shown_it_has_none(
    traded: tuple[DemoNetwork, bytes, Chain],
) -> None:
    """BANK05 has no trade in block 1: its answer carries its leaf, proven empty, and
    the SDK accepts the block with no transactions. A forged "none" for BANK01 (its
    receipts dropped and BANK05's honest proof, or BANK01's proof emptied) is refused."""
    pinned, certs, _ = traded
    c5, c1 = _sdk(pinned, certs, "BANK05"), _sdk(pinned, certs, "BANK01")
    try:
        none = _filtered(traded, "BANK05")
        assert c5._block_view(none).transactions == ()  # control: accepted, proven empty
        forged = _filtered(traded, "BANK01")
        del forged.results[:], forged.receipts[:], forged.result_paths[:]
        forged.party_proof = none.party_proof
        with pytest.raises(BadResponseError, match="not 'BANK01'"):
            c1._block_view(forged)
        emptied = decode_party_proof(bytes(_filtered(traded, "BANK01").party_proof))
        assert emptied.mine is not None
        emptied = dataclasses.replace(emptied, mine=dataclasses.replace(emptied.mine, positions=()))
        forged.party_proof = emptied.encode()
        with pytest.raises(BadResponseError, match="does not lead"):
            c1._block_view(forged)
    finally:
        await c5.aclose()
        await c1.aclose()


async def test_a_filtered_block_without_its_proof_or_with_a_broken_one_is_refused(
    traded: tuple[DemoNetwork, bytes, Chain],
) -> None:
    """A block with transactions and no proof (or one that does not decode, or whose
    index root another block certifies) proves nothing left out: refused. A block with
    no transaction needs none (block 2: the control)."""
    pinned, certs, chain = traded
    c = _sdk(pinned, certs, "BANK01")
    try:
        block2 = chain.store.block(2)
        assert block2 is not None
        empty = filtered_block_pb(chain.node(), block2, Caller("BANK01", observer=False))
        assert not empty.party_proof and c._block_view(empty).transactions == ()  # control
        honest = _filtered(traded, "BANK01")
        bare = pb.BlockInfo()
        bare.CopyFrom(honest)
        bare.ClearField("party_proof")
        with pytest.raises(BadResponseError, match="without the proof"):
            c._block_view(bare)
        bare.CopyFrom(honest)
        bare.ClearField("parties_root_proof")
        with pytest.raises(BadResponseError, match="without the proof"):
            c._block_view(bare)
        bare.CopyFrom(honest)
        bare.party_proof = bytes(honest.party_proof)[:-1]
        with pytest.raises(BadResponseError, match="does not decode"):
            c._block_view(bare)
        bare.CopyFrom(honest)
        bare.parties_root_proof.path[0] = crypto.sha256(b"elsewhere")
        with pytest.raises(BadResponseError, match="not the last leaf"):
            c._block_view(bare)
    finally:
        await c.aclose()


async def test_an_observer_is_not_handed_a_filtered_block(
    traded: tuple[DemoNetwork, bytes, Chain],
) -> None:
    """An observer (AUDITOR) reads whole blocks; a hostile node answering it a block
    filtered for it (every other party's trades left out, its own proof honest) would
    hide every trade from ``events("BANK01")`` run by an auditor: refused, since the
    certified party index's leaf of AUDITOR says it was an observer after the block."""
    pinned, certs, _ = traded
    c = _sdk(pinned, certs, "AUDITOR")
    try:
        with pytest.raises(BadResponseError, match="observer"):
            c._block_view(_filtered(traded, "AUDITOR"))
    finally:
        await c.aclose()


async def test_a_filtered_stream_holds_the_head_until_its_proof_is_certified(
    traded: tuple[DemoNetwork, bytes, Chain],
) -> None:
    """A node's block stream and GetBlock serve a filtered block once the block after it
    certifies its proof: one block behind the head while the head has transactions."""
    pinned, _, _ = traded
    chain, txf = Chain(pinned), TxFactory(pinned)
    chain.commit([txf.signed(txf.dvp())])
    svc = LedgerService(chain.node(), {})
    assert svc._proven_head(False) == 0  # block 1 has a transaction, and no successor yet
    chain.commit([])
    assert svc._proven_head(False) == 2  # block 2 has none: nothing to prove


async def test_a_filtered_block_for_a_client_with_no_identity_is_refused(
    traded: tuple[DemoNetwork, bytes, Chain],
) -> None:
    """A node filters a block for the caller whose signed request it verified; a client
    with no identity was filtered for by nobody, and whose positions it must hold is
    unknown: refused."""
    pinned, certs, _ = traded
    c = AsyncLedgerClient(
        [Endpoint("127.0.0.1:1", "node-00")], tls_certs=certs, genesis=pinned.genesis
    )
    try:
        with pytest.raises(BadResponseError, match="no identity"):
            c._block_view(_filtered(traded, "BANK01"))
    finally:
        await c.aclose()


def _header_after(chain: Chain, height: int, results_root: bytes) -> Block:
    """Block ``height + 1`` as a forger would make it: the real one's fields but
    ``results_root``."""
    real = chain.blocks[height + 1]
    return dataclasses.replace(real, results_root=results_root)


async def test_a_party_index_under_a_forged_or_foreign_header_is_refused(
    traded: tuple[DemoNetwork, bytes, Chain],
) -> None:
    """The hostile node makes its own index of block 1 in which BANK01 names nothing and
    puts its root under a header of block 2 it forged (the real certificate is for the
    real header); or it answers with a proof from another block (block 2's own index,
    certified by block 3, in which BANK01 has no trade, of a size that fits block 1).
    BANK01's receipts dropped, both are refused."""
    pinned, certs, chain = traded
    c = _sdk(pinned, certs, "BANK01")
    try:
        honest = _filtered(traded, "BANK01")
        outcome = chain.outcomes[1]
        named = [(frozenset({"BANK03", "BANK04"}), False)] * len(chain.blocks[1].txs)
        keys = Registry.of(chain.store).participant_ids
        fake = PartyIndex(named, keys, [r.tx_id for r in outcome.results], observers=())
        forged_next = _header_after(chain, 1, results_root(outcome.results, fake))
        forged = pb.BlockInfo()
        forged.CopyFrom(honest)
        del forged.results[:], forged.receipts[:], forged.result_paths[:]
        forged.party_proof = fake.proof("BANK01").encode()
        forged.parties_root_proof.header = forged_next.header
        leaves = results_leaves(outcome.results, fake)
        del forged.parties_root_proof.path[:]
        forged.parties_root_proof.path.extend(MerkleTree(leaves).path(len(leaves) - 1))
        with pytest.raises(BadResponseError, match="certificate is for another block"):
            c._block_view(forged)
        # block 2's own proof (BANK01: no trade there), certified by block 3
        chain3 = Chain(pinned)
        txf = TxFactory(pinned)
        chain3.commit([txf.signed(txf.dvp()), txf.signed(txf.dvp())])
        # as many transactions as block 1 or more: its index fits block 1's size check
        chain3.commit([txf.signed(txf.transfer("BANK03", "BANK04")) for _ in range(3)])
        chain3.commit([])
        node = chain3.node()
        block1, block2 = chain3.store.block(1), chain3.store.block(2)
        assert block1 is not None and block2 is not None
        mine = filtered_block_pb(node, block1, Caller("BANK01", observer=False))
        other = filtered_block_pb(node, block2, Caller("BANK01", observer=False))
        assert c._block_view(mine).transactions and not other.results  # controls
        del mine.results[:], mine.receipts[:], mine.result_paths[:]
        mine.party_proof = other.party_proof
        mine.parties_root_proof.CopyFrom(other.parties_root_proof)
        with pytest.raises(BadResponseError, match="not block 1's child"):
            c._block_view(mine)
    finally:
        await c.aclose()


async def test_a_party_index_of_a_size_below_the_blocks_transactions_is_refused(
    traded: tuple[DemoNetwork, bytes, Chain],
) -> None:
    pinned, certs, _ = traded
    c = _sdk(pinned, certs, "BANK01")
    try:
        short = _filtered(traded, "BANK01")
        short.parties_root_proof.leaf_count = 1
        with pytest.raises(BadResponseError, match="claims 1 results for a block of 5"):
            c._block_view(short)
    finally:
        await c.aclose()


async def test_a_filtered_read_of_the_head_waits_for_the_block_that_proves_it(
    traded: tuple[DemoNetwork, bytes, Chain],
) -> None:
    """GetBlock(h) for a non-observer, h the head with transactions: the node waits (at
    most BLOCK_PROOF_WAIT_MS) for block h + 1, then answers with the proof."""
    pinned, _, _ = traded
    chain, txf = Chain(pinned), TxFactory(pinned)
    chain.commit([txf.signed(txf.dvp())])
    node = chain.node()
    svc = LedgerService(node, {})

    async def read() -> pb.BlockInfo:
        Gate.enter(Caller("BANK01", observer=False))
        return await svc.GetBlock(pb.BlockRequest(height=1), _Ctx())  # type: ignore[arg-type]

    answer = asyncio.ensure_future(read())
    for _ in range(5):
        await asyncio.sleep(0)
    assert not answer.done()  # waiting for block 2
    chain.commit([])
    node._head_changed.set()  # what the node's own commit does
    info = await asyncio.wait_for(answer, 5)
    assert info.party_proof and [r.position for r in info.results] == [0]


# --- review 31: a height the wire cannot carry ----------------------------------------------


class _Reached(Exception):
    """The SDK built the request and asked a node."""


def _reached(*args: object, **kwargs: object) -> object:
    raise _Reached()


@pytest.mark.parametrize(("height", "refused"), [(2**64, True), (2**64 - 1, False)])
async def test_a_height_past_2_64_is_an_invalid_field_not_protobufs_value_error(
    height: int, refused: bool
) -> None:
    """Review 31: ``block(2**64)`` and ``blocks(2**64)`` raised protobuf's ValueError
    ("Value out of range") while building the request, so `ledger block 99999999999999999999`
    and `ledger watch --from ...` printed a traceback where docs/cli.md promises one
    `ledger: error:` line. Control: the largest height the wire carries goes to a node."""
    net, certs = pinned_tls(NET)
    endpoints = [Endpoint("127.0.0.1:1", "node-00")]
    c = AsyncLedgerClient(endpoints, tls_certs=certs, genesis=net.genesis)
    c._stub = lambda i: SimpleNamespace(GetBlock=_reached, StreamBlocks=_reached)  # type: ignore[method-assign]
    expected = InvalidFieldError if refused else _Reached
    with pytest.raises(expected):
        await c.block(height)
    with pytest.raises(expected):
        await anext(aiter(c.blocks(height)))
    with pytest.raises(expected):
        await anext(aiter(c.events("BANK01", height)))
    await c.aclose()
