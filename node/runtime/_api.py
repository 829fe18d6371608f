"""The client-facing ``ledger.v1.Ledger`` service, and health and reflection beside it.

Bad input gets a gRPC status a person can act on and changes nothing: INVALID_ARGUMENT
for requests that do not parse (node/runtime/_handlers.py), oversize, malformed, badly
signed or foreign-chain transactions, transactions that can never succeed (expired,
a role genesis never grants) and bad ids, NOT_FOUND for unknown ids, accounts and
heights, RESOURCE_EXHAUSTED when the mempool is full, when admission control finds the
node cannot settle what it holds within the client's deadline (with trailing metadata
``retry-after-ms``: when to retry), or the caller's connection or the node holds its
limit of finality waits, block streams, submit streams, health watches or reflection
streams (retry later; gRPC itself refuses calls beyond ``CLIENT_RPCS_MAX`` in progress),
UNAVAILABLE when the node halted itself. A submit stream answers each of
its requests with an event carrying the status and message the unary call would give.

Access (node/access.py, docs/cluster.md "Security: who reads what"): every method runs
only for a caller whose signed identity verified (UNAUTHENTICATED otherwise, before the
method runs). Balances go to the account's participant, a committed transaction's status
and receipt to its parties (PERMISSION_DENIED to anyone else), a block to a non-party
with only the caller's transactions, each with its receipt, a repo to its parties (to
anyone else NOT_FOUND, as for an id nobody opened: ids are chosen names, so a refusal
would tell one exists); observers (regulator, compliance, auditor) read everything.
Submit, SubmitStream, GetStatus and GetTimeline serve any authenticated caller, as does
the PENDING state of an id (an id is a hash and says nothing of its body).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import Any, NoReturn, TypeVar

import grpc
from google.protobuf.message import Message
from grpc_health.v1 import health_pb2
from grpc_health.v1._async import HealthServicer
from grpc_reflection.v1alpha import reflection_pb2
from grpc_reflection.v1alpha._async import ReflectionServicer

from node.access import (
    Caller,
    may_read_account,
    may_read_attestations,
    may_read_holders,
    may_read_lock,
    may_read_pending,
    may_read_prices,
    may_read_reference,
    may_read_repo,
    may_read_tx,
)
from node.config import (
    BLOCK_PROOF_WAIT_MS,
    BLOCK_STREAMS_MAX,
    BLOCK_STREAMS_PER_CONNECTION_MAX,
    HEALTH_WATCHES_MAX,
    HEALTH_WATCHES_PER_CONNECTION_MAX,
    REFLECTION_STREAMS_MAX,
    REFLECTION_STREAMS_PER_CONNECTION_MAX,
    REPO_LIST_MAX,
    SUBMIT_STREAM_INFLIGHT_MAX,
    SUBMIT_STREAMS_MAX,
    SUBMIT_STREAMS_PER_CONNECTION_MAX,
    TIMELINE_SPAN_MAX,
    WAITERS_MAX,
    WAITERS_PER_CONNECTION_MAX,
)
from node.invariant import InvariantError
from node.receipt import Receipt
from node.runtime._access import current_caller
from node.runtime._grpc import Ctx
from node.runtime._node import Node, TooManyWaitersError, wall_ms
from node.runtime._pages import Page, PageError, StalePageError, page_of, paged
from node.runtime._prices import prices_pb
from node.runtime._reads import ReadBudget
from node.runtime._refuse import refuse
from node.runtime._shares import Shares
from node.runtime._stream import (
    Refusal,
    SubmitSession,
    admission_deadline_ms,
    limit_reached,
    node_stopped,
    not_final,
    offer,
    wait_timeout_ms,
)
from node.runtime._transport import PeerLink
from node.settlement import (
    Instruction,
    Instrument,
    InstrumentKind,
    LockRecord,
    Outcome,
    Participant,
    Redeemed,
    Registry,
    RepoRecord,
    StateView,
    TxResult,
    all_repos,
    attestation_records,
    check_id,
    defaulters,
    freezes,
    instructions,
    instrument_state,
    locks,
    outcome,
    repo,
    repos_of,
)
from node.store import StoredBlock
from node.wire import ledger_pb2 as pb
from node.wire import ledger_pb2_grpc as pb_grpc
from node.wire.errors import Reason

_T = TypeVar("_T")

__all__ = ["HealthService", "LedgerService", "ReflectionService"]


def block_pb(node: Node, b: StoredBlock) -> pb.BlockInfo:
    """The whole block, as an observer sees it, with the proof of its results once block
    ``b.height + 1`` is committed (ADR 0026)."""
    proven = node.results_proof(b)
    root_proof, leaf = (None, b"") if proven is None else (proven[0].to_pb(), proven[1])
    return pb.BlockInfo(
        height=b.height,
        block_hash=b.block_hash,
        time_ms=b.time_ms,
        state_root=b.state_root,
        block=b.block_bytes,
        certificate=b.certificate,
        # Transactions' results pair with the block's transactions; pending-settlement
        # events follow them in the results tree and are listed apart (ADR 0014).
        results=[_result_pb(b.height, i, r) for i, r in enumerate(b.results) if not r.event],
        events=[_result_pb(b.height, i, r) for i, r in enumerate(b.results) if r.event],
        parties_root_proof=root_proof,
        parties_leaf=leaf,
    )


def _instruction_pb(height: int, position: int, i: Instruction) -> pb.PendingInstruction:
    return pb.PendingInstruction(
        tx_id=i.tx_id,
        height=height,
        position=position,
        seller=i.seller,
        buyer=i.buyer,
        bond=i.bond,
        cash=i.cash,
        lot_quantity=i.lot_quantity,
        lot_amount=i.lot_amount,
        lots_left=i.lots_left,
        deadline_ms=i.deadline_ms,
        held_by_seller=i.held_by_seller,
        held_by_buyer=i.held_by_buyer,
    )


def _settlement_pb(o: Outcome) -> pb.Settlement:
    return pb.Settlement(
        code=int(o.code),  # type: ignore[arg-type]
        height=o.height,
        index=o.index,
        settled_quantity=o.settled_quantity,
        settled_amount=o.settled_amount,
    )


def _result_pb(height: int, index: int, r: TxResult) -> pb.TransactionResult:
    return pb.TransactionResult(
        tx_id=r.tx_id,
        code=int(r.code),  # type: ignore[arg-type]
        height=height,
        position=index,
        recorded=r.recorded,
    )


def _holder_pb(account: str, units: int, redeemed: Redeemed | None) -> pb.Holder:
    done = Redeemed(0, 0) if redeemed is None else redeemed
    return pb.Holder(
        account=account, units=units, redeemed_units=done.units, redeemed_paid=done.paid
    )


def _has_txs(b: StoredBlock) -> bool:
    """Whether ``b`` has transactions (an idle block's results are all events)."""
    return any(not r.event for r in b.results)


def filtered_block_pb(node: Node, b: StoredBlock, caller: Caller) -> pb.BlockInfo:
    """Block ``b`` as a non-observer sees it: header and certificate, and only the
    transactions naming ``caller`` and the public ones, each with its receipt (Merkle path
    to the header), as the block's party index holds them (ADR 0025), with the proof that
    they are all and the paths that certify each one's result (once block ``b.height + 1``
    is committed)."""
    header = node.block_parts(b)[0]
    shown = node.block_parties(b).positions(caller.participant)
    receipts = [node.block_receipt(b, i) for i in shown]
    proof = node.parties_proof(b, caller.participant)
    party_proof, root_proof = (b"", None) if proof is None else (proof[0], proof[1].to_pb())
    paths = [] if proof is None else node.result_paths(b, shown)
    return pb.BlockInfo(
        height=b.height,
        block_hash=b.block_hash,
        time_ms=b.time_ms,
        state_root=b.state_root,
        certificate=b.certificate,
        results=[_result_pb(b.height, r.position, b.results[r.position]) for r in receipts],
        filtered=True,
        header=header,
        receipts=[r.to_pb_in_block() for r in receipts],
        party_proof=party_proof,
        parties_root_proof=root_proof,
        result_paths=[pb.MerklePath(hashes=p) for p in paths],
    )


async def _refused(context: Ctx, r: Refusal) -> NoReturn:
    d = r.details()
    await refuse(
        context, r.status, r.message, r.reason, d.metadata, retry_after_ms=d.retry_after_ms
    )


async def _not_found(context: Ctx, message: str, what: str, key: str) -> NoReturn:
    meta = {"what": what, "id": key}
    await refuse(context, grpc.StatusCode.NOT_FOUND, message, Reason.NOT_FOUND, meta)


async def _denied(context: Ctx, message: str, caller: Caller, what: str) -> NoReturn:
    meta = {"what": what, "caller": caller.participant}
    await refuse(context, grpc.StatusCode.PERMISSION_DENIED, message, Reason.NOT_PERMITTED, meta)


async def _invalid(context: Ctx, message: str, field: str) -> NoReturn:
    meta = {"field": field}
    await refuse(context, grpc.StatusCode.INVALID_ARGUMENT, message, Reason.INVALID_ARGUMENT, meta)


async def _ident(context: Ctx, value: str, field: str) -> str:
    """``value`` if it is a well-formed ledger id (node/settlement ``check_id``), else
    INVALID_ARGUMENT: a client's id reaches a state key only once it is one (keys hold ids
    as padded ASCII; anything else would raise in the handler, gRPC UNKNOWN)."""
    try:
        return check_id(value, field)
    except ValueError as e:
        await _invalid(context, str(e), field)


def _call_deadline_ms(context: Ctx) -> int:
    """The gRPC deadline of the call in milliseconds, 0 when it has none."""
    remaining_s = context.time_remaining()
    return 0 if remaining_s is None else max(1, int(remaining_s * 1000))


def _proof_wait_ms(context: Ctx) -> int:
    """How long a read of the head may wait for the block that proves it:
    BLOCK_PROOF_WAIT_MS, and at most half the time its caller has left, so that the answer
    (without the proof, past the wait) reaches the caller before it gives up, not after."""
    deadline_ms = _call_deadline_ms(context)
    return min(BLOCK_PROOF_WAIT_MS, deadline_ms // 2) if deadline_ms else BLOCK_PROOF_WAIT_MS


class LedgerService(pb_grpc.LedgerServicer):
    def __init__(
        self,
        node: Node,
        links: dict[int, PeerLink],
        *,
        stream_inflight_max: int = SUBMIT_STREAM_INFLIGHT_MAX,
        reads: ReadBudget | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._node, self._links, self._metrics = node, links, node.metrics
        self._reads = ReadBudget(node.clock_ms) if reads is None else reads
        self._sleep = sleep  # a paced block stream's wait
        self._waits = Shares("finality waits", WAITERS_MAX, WAITERS_PER_CONNECTION_MAX)
        self._streams = Shares("block streams", BLOCK_STREAMS_MAX, BLOCK_STREAMS_PER_CONNECTION_MAX)
        self._submit_streams = Shares(
            "submit streams", SUBMIT_STREAMS_MAX, SUBMIT_STREAMS_PER_CONNECTION_MAX
        )
        self._stream_inflight_max = stream_inflight_max

    async def _tx_id(self, raw: bytes, context: Ctx) -> bytes:
        if len(raw) != 32:
            await _invalid(
                context, f"tx_id must be 32 bytes (SHA-256 of the body), got {len(raw)}", "tx_id"
            )
        return raw

    async def Submit(self, request: pb.SubmitRequest, context: Ctx) -> pb.SubmitResponse:
        deadline_ms = admission_deadline_ms(request.timeout_ms or _call_deadline_ms(context))
        offered = await offer(self._node, request.transaction, deadline_ms)  # once durable
        if isinstance(offered, Refusal):
            await _refused(context, offered)
        tid, outcome = offered
        return pb.SubmitResponse(tx_id=tid, outcome=outcome)

    async def _unless_halted(self, context: Ctx) -> None:
        """UNAVAILABLE (NODE_HALTED) on a halted node: it commits nothing more, so a stream
        opened on it is refused at once and its client asks another node."""
        if self._node.halted is not None:
            why = f"node halted: {self._node.halted}"
            await refuse(context, grpc.StatusCode.UNAVAILABLE, why, Reason.NODE_HALTED)

    async def SubmitStream(
        self, requests: AsyncIterator[pb.SubmitStreamRequest], context: Ctx
    ) -> AsyncIterator[pb.SubmitStreamEvent]:
        """Many submissions and their finality notices (node/runtime/_stream.py)."""
        await self._unless_halted(context)  # before the opened event: the SDK fails over
        async with self._submit_streams.hold(context):
            caller, store = current_caller(), self._node.store
            session = SubmitSession(
                self._node,
                self._waits,
                context.peer(),
                self._stream_inflight_max,
                self._metrics,
                caller=caller.participant,
                may_read=functools.partial(self._may_read_now, caller),
            )
            reader = asyncio.create_task(session.read(requests))
            self._metrics.submit_streams.inc()
            try:
                opened = pb.SubmitStreamOpened(inflight_max=session.inflight_max)
                yield pb.SubmitStreamEvent(opened=opened)
                checked = -1  # the first event checks: the gate's check was before now
                async for event in session.events():
                    # Governance may have rotated the caller's key since the stream opened
                    # (the stream ends): the registry moves only with the head.
                    if (head := store.head().height) != checked:
                        await self._as_now(caller, context)
                        checked = head
                    yield event
            finally:
                session.close()
                reader.cancel()
                self._metrics.submit_streams.dec()

    async def GetTransaction(
        self, request: pb.TransactionRequest, context: Ctx
    ) -> pb.TransactionStatus:
        tid = await self._tx_id(request.tx_id, context)
        receipt = await self._budgeted_receipt(tid, context, "GetTransaction")
        if receipt is not None:
            await self._may_read(receipt, context)
            latest = outcome(self._node.store, tid)
            return pb.TransactionStatus(
                tx_id=tid,
                state=pb.COMMITTED,
                receipt=receipt.to_pb(),
                settlement=None if latest is None else _settlement_pb(latest),
            )
        if self._node.is_pending(tid):
            return pb.TransactionStatus(tx_id=tid, state=pb.PENDING)
        await _not_found(
            context,
            f"transaction {tid.hex()} is neither committed nor pending at this node",
            "transaction",
            tid.hex(),
        )

    async def WaitForFinality(self, request: pb.WaitRequest, context: Ctx) -> pb.Receipt:
        tid = await self._tx_id(request.tx_id, context)
        timeout_ms = wait_timeout_ms(request.timeout_ms)
        known = await self._budgeted_receipt(tid, context, "WaitForFinality")
        if known is not None:  # refuse before holding a wait
            await self._may_read(known, context)
        try:
            async with self._waits.hold(context):
                receipt = await self._node.wait_for(
                    tid,
                    timeout_ms / 1000,
                    prove_result=request.prove_result,
                    settled=request.wait_settled,
                )
        except TooManyWaitersError as e:
            await _refused(context, limit_reached("finality waits", f"{e}; retry later", tid))
        except TimeoutError:
            await _refused(context, not_final(tid, timeout_ms))
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is None or task.cancelling():
                raise  # the call itself was cancelled (its client went away, the server stops)
            # Not this call: the node ended its wait (Node.stop: a shutdown or a halt). A
            # CancelledError out of a handler sends no status, so the client waited until
            # its deadline (review 35n): say so, as the submit stream does.
            await _refused(context, node_stopped(self._node, tid))
        # The wait may have outlasted the caller's key or role (review 21): read it again.
        await self._may_read(receipt, context, await self._as_now(current_caller(), context))
        return receipt.to_pb()

    async def _budgeted_receipt(self, tid: bytes, context: Ctx, call: str) -> Receipt | None:
        """The receipt of ``tid`` if committed. One from a block whose Merkle trees are not
        kept (the last eight blocks' are) rebuilds them, 5 to 7 ms for a full block, so a
        participant asking for its transactions of many old blocks in turn would hold the
        loop: that read is refused over the caller's block-read budget, and what a rebuild
        cost is charged to it, as for a GetBlock. A receipt from a kept block costs
        microseconds and is neither refused nor charged: a client waiting for a backlog of
        settled trades one by one never meets the budget."""
        node, caller = self._node, current_caller()
        record = node.store.tx_record(tid)
        if record is not None and not node.trees_kept(record.height):
            wait_ms = self._reads.wait_ms(caller.participant)
            if wait_ms:
                self._metrics.block_reads_over_budget.labels(call=call).inc()
                await _refused(context, self._over_budget(caller, wait_ms))
        built = node.trees_built
        with self._reads.charged(caller.participant, when=lambda: node.trees_built != built):
            return node.receipt(tid)

    async def _may_read(self, receipt: Receipt, context: Ctx, caller: Caller | None = None) -> None:
        """PERMISSION_DENIED unless ``caller`` (default: the call's) may read ``receipt``;
        the refusal names no block: where a trade committed is the parties' to read, as
        a filtered block shows it only to them (review 36p)."""
        caller = caller or current_caller()
        reg, height = self._node.registry(), receipt.height
        if not may_read_tx(caller, receipt.transaction, reg, height=height):
            await _denied(
                context,
                f"{caller.participant} is not a party to transaction {receipt.tx_id.hex()}",
                caller,
                "transaction",
            )

    async def GetBalances(self, request: pb.BalancesRequest, context: Ctx) -> pb.Balances:
        reg, store = self._node.registry(), self._node.store
        caller = current_caller()
        if not may_read_account(caller, request.account):
            await _denied(
                context,
                f"{caller.participant} may read only its own balances, not {request.account!r}",
                caller,
                "balances",
            )
        if request.account not in reg.participant_by_id:
            why = f"no participant {request.account!r}"
            await _not_found(context, why, "participant", request.account)
        return await self._scan(
            "GetBalances",
            context,
            lambda: pb.Balances(
                account=request.account,
                height=store.head().height,
                balances=[
                    pb.Balance(instrument=i, amount=store.balance(request.account, i))
                    for i in reg.instrument_by_id
                ],
            ),
        )

    async def GetInstrument(
        self, request: pb.InstrumentRequest, context: Ctx
    ) -> pb.InstrumentState:
        store, reg = self._node.store, self._node.registry()
        inst = reg.instrument_by_id.get(request.instrument)
        if inst is None:
            why = f"no instrument {request.instrument!r}"
            await _not_found(context, why, "instrument", request.instrument)
        if inst.kind is InstrumentKind.CASH:
            await _invalid(
                context,
                f"{inst.id} is a cash token; holders and schedules are for bonds and funds",
                "instrument",
            )
        return await self._scan(
            "GetInstrument", context, lambda: _instrument_state_pb(store, reg, inst)
        )

    async def GetPending(self, request: pb.PendingRequest, context: Ctx) -> pb.PendingBook:
        store, caller = self._node.store, current_caller()
        return await self._scan(
            "GetPending",
            context,
            lambda: pb.PendingBook(
                height=store.head().height,
                instructions=[
                    _instruction_pb(h, p, i)
                    for h, p, i in instructions(store)
                    if may_read_pending(caller, i.seller, i.buyer)
                ],
            ),
        )

    async def GetBlock(self, request: pb.BlockRequest, context: Ctx) -> pb.BlockInfo:
        if request.height == 0:
            await _invalid(context, "heights start at 1", "height")
        caller = current_caller()
        await self._within_budget(caller, context, "GetBlock")
        if request.height == self._node.store.head().height:
            await self._proof_committed(
                request.height, caller.observer, _proof_wait_ms(context), context
            )
            # Again after the wait: reads parked on the same head all wake at its
            # successor, and each must meet the budget its forerunners just spent (review
            # 20: 20 parked reads of 60 ms each against a 100 ms burst were all served).
            await self._within_budget(caller, context, "GetBlock")
        with self._reads.charged(caller.participant):
            block = self._node.store.block(request.height)
            if block is not None:
                return self._block_for(block, caller)
        head = self._node.store.head().height
        why = f"no block {request.height}: this node's head is {head}"
        await _not_found(context, why, "block", str(request.height))

    async def _within_budget(self, caller: Caller, context: Ctx, call: str) -> None:
        """Refuse a metered read over the caller's read budget, before the store is read
        (a refusal costs next to nothing); nothing may ``await`` between this and the
        charged read, or concurrent reads pass the check together."""
        wait_ms = self._reads.wait_ms(caller.participant)
        if wait_ms:
            self._metrics.block_reads_over_budget.labels(call=call).inc()
            await _refused(context, self._over_budget(caller, wait_ms))

    async def _scan(self, call: str, context: Ctx, answer: Callable[[], _T]) -> _T:
        """The answer of a read whose work grows with the state up to its limits, metered
        as a block read is: refused over the caller's read budget, its CPU time charged
        to it. Unmetered, one participant calling GetReference with the registry at
        PARTICIPANTS_MAX and INSTRUMENTS_MAX (73 ms of the loop's CPU, a 1 MB answer) or
        GetBalances at INSTRUMENTS_MAX (9 ms) in a loop held the loop consensus shares
        (session 28)."""
        caller = current_caller()
        await self._within_budget(caller, context, call)
        with self._reads.charged(caller.participant):
            return answer()

    def _over_budget(self, caller: Caller, wait_ms: int) -> Refusal:
        r = self._reads
        return Refusal(
            grpc.StatusCode.RESOURCE_EXHAUSTED,
            Reason.LIMIT_REACHED,
            f"{caller.participant} has used its budget of reads ({r.rate_per_s // 1000} "
            f"ms of the node's CPU a second, {r.burst // 1000} ms at once; a party-filtered "
            f"read of an old block, or a receipt from one, decodes it, and a read of state "
            f"grows with it); retry in {wait_ms} ms",
            retry_after_ms=wait_ms,
            metadata=(("limit", "reads per participant"),),
        )

    async def _proof_committed(self, height: int, whole: bool, wait_ms: int, context: Ctx) -> None:
        """Wait, at most ``wait_ms``, while block ``height`` is the head and has
        transactions or events: the next block certifies the proof a read of it carries
        (a filtered read's, ADR 0025; a whole read's results, ADR 0026). UNAVAILABLE
        (NODE_STOPPED) once the node stopped: no block will come (review 36p)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_ms / 1000
        while height == self._node.store.head().height and self._proven_head(whole) < height:
            left = deadline - loop.time()
            if left <= 0:
                return
            await self._next_commit(context, left)

    async def _next_commit(self, context: Ctx, timeout_s: float | None = None) -> None:
        """Wait for the node's next commit, at most ``timeout_s``; the call ends
        UNAVAILABLE (NODE_STOPPED) if the node stops first (a halt, a shutdown), as a
        finality wait does: a CancelledError would end it with no status."""
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._node.next_commit(), timeout_s)
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is None or task.cancelling():  # the call's own: its
                raise  # client went away, or the server stops
            await _refused(context, node_stopped(self._node, b""))

    def _proven_head(self, whole: bool) -> int:
        """The highest block a read can prove: the head, unless the block after it must
        certify what the read shows: a whole read's results, when the head has
        transactions or events (ADR 0026); a filtered read's party index, when it has
        transactions (a filtered copy shows no events; ADR 0025). Consensus makes that
        block at once. A quiet head goes without a proof: nothing follows it until the
        next transaction. (For the head, whole means an observer: ``_observed`` of the
        head is the caller's role now.)"""
        store = self._node.store
        head = store.head().height
        block = store.block(head) if head else None
        if block is None:
            return head
        shows = block.results if whole else _has_txs(block)
        return head - 1 if shows else head

    def _block_for(self, block: StoredBlock, caller: Caller) -> pb.BlockInfo:
        """The whole block for an observer, and for one that was an observer after this
        block (a demoted auditor reads its auditor days' blocks whole); else
        party-filtered."""
        if caller.observer or self._observed(block, caller.participant):
            return block_pb(self._node, block)
        return filtered_block_pb(self._node, block, caller)

    def _observed(self, block: StoredBlock, participant: str) -> bool:
        """Whether ``participant`` held an observer role after ``block``. A block with
        transactions answers from its party index's leaf (kept, or worked out once: the
        index a filtered read needs anyway), which its client checks; an idle block has
        no index, and the registry's role history answers (the records the leaves' flags
        are built from; roles change only by transactions, so an idle block's observers
        are those of the block before it)."""
        if _has_txs(block):
            return self._node.block_parties(block).observer(participant)
        return participant in self._node.registry().observers_at(block.height)

    async def StreamBlocks(
        self, request: pb.StreamBlocksRequest, context: Ctx
    ) -> AsyncIterator[pb.BlockInfo]:
        caller = current_caller()
        await self._unless_halted(context)  # no block will come: not parked till the exit
        async with self._streams.hold(context):
            store = self._node.store
            next_height = request.from_height or store.head().height + 1
            checked = top = -1
            while True:
                if (head := store.head().height) != checked:
                    # Governance may have changed the caller's role or key since the last
                    # block sent (reviews 20c, 21): a demoted auditor reads later blocks
                    # filtered, a rotated key ends the stream, even within a backlog.
                    caller = await self._as_now(caller, context)
                    # A block goes once its proof is certified (ADR 0025, ADR 0026): one
                    # block behind the head while the head has transactions or events.
                    top = self._proven_head(caller.observer)
                    checked = head
                if next_height > top:
                    await self._next_commit(context)
                    continue
                if wait_ms := self._reads.wait_ms(caller.participant):
                    # Over budget a stream waits rather than fails: it already holds one
                    # of a bounded number of stream shares, so waiting costs a parked
                    # task, and a refusal would send the SDK's ``blocks()`` to the next
                    # node and back, each failure counting towards UnavailableError for
                    # an honest reader catching up on history. Waiting paces it at the
                    # budget's rate instead; the caller is read again after the wait.
                    self._metrics.block_reads_over_budget.labels(call="StreamBlocks").inc()
                    await self._sleep(wait_ms / 1000)
                    continue
                with self._reads.charged(caller.participant):
                    block = store.block(next_height)
                    if block is None:
                        raise InvariantError(f"store lost block {next_height} below its head")
                    info = self._block_for(block, caller)
                yield info
                next_height += 1

    def _may_read_now(self, caller: Caller, raw: bytes, height: int | None) -> bool:
        """Whether ``caller``, as the registry has it at the head (a role or key
        governance changed since its stream opened), may read ``raw`` of block
        ``height``."""
        now = self._now(caller)
        return now is not None and may_read_tx(now, raw, self._node.registry(), height=height)

    async def _as_now(self, caller: Caller, context: Ctx) -> Caller:
        """``caller`` of an open stream or a parked wait as the registry has it at the
        head; the call ends (UNAUTHENTICATED) once the key it was opened with is no
        longer the participant's: whoever holds a key governance rotated away, stolen
        perhaps, keeps no call it opened with it."""
        now = self._now(caller)
        if now is None:
            self._metrics.calls_ended_key_rotated.inc()
            why = (
                f"the key this call was opened with is no longer {caller.participant}'s "
                "(governance rotated it): open a new call signed with the current key"
            )
            await refuse(context, grpc.StatusCode.UNAUTHENTICATED, why, Reason.IDENTITY_REFUSED)
        return now

    def _now(self, caller: Caller) -> Caller | None:
        """``caller`` with the observer role the registry gives it at the head; None if
        the key it was verified with is no longer its."""
        p = self._node.registry().participant_by_id.get(caller.participant)
        if p is None or (caller.key and p.public_key != caller.key):
            return None
        if p.observer == caller.observer:
            return caller
        return Caller(caller.participant, p.observer, caller.key)

    async def GetStatus(self, request: pb.StatusRequest, context: Ctx) -> pb.NodeStatus:
        node, r = self._node, self._node.replica
        head = node.store.head()
        q = node.quorum
        peers = [
            pb.PeerStatus(validator=i, id=v.id, connected=self._links[i].connected)
            for i, v in enumerate(node.genesis.validators)
            if i != node.index
        ]
        return pb.NodeStatus(
            chain_id=node.genesis.chain_id,
            validator=node.index,
            validator_id=node.genesis.validators[node.index].id,
            height=head.height,
            view=r.view,
            leader=r.leader(r.view),
            state_root=head.state_root,
            block_hash=r.committed_hash,
            n=q.n,
            q=q.q,
            safety_bound=q.safety_bound,
            liveness_bound=q.liveness_bound,
            peers_connected=sum(p.connected for p in peers),
            peers=peers,
            mempool_txs=len(r.mempool),
            halted=node.halted or "",
            uptime_ms=max(0, wall_ms() - node.started_ms),
        )

    async def GetTimeline(self, request: pb.TimelineRequest, context: Ctx) -> pb.Timeline:
        first, last = request.first_height, request.last_height
        if first < 1 or last < first or last - first >= TIMELINE_SPAN_MAX:
            await _invalid(
                context,
                f"need 1 <= first_height <= last_height < first_height + {TIMELINE_SPAN_MAX}",
                "first_height",
            )
        timeline = self._node.timeline

        def answer() -> pb.Timeline:
            blocks = []
            for h in range(first, last + 1):
                marks = timeline.get(h)
                if marks is not None:
                    blocks.append(
                        pb.BlockTiming(
                            height=h,
                            proposed_us=marks[0],
                            prepare_qc_us=marks[1],
                            commit_qc_us=marks[2],
                            applied_us=marks[3],
                        )
                    )
            return pb.Timeline(validator=self._node.index, blocks=blocks)

        # Up to TIMELINE_SPAN_MAX timings built: 5 to 10 ms of the loop a call, metered as
        # the other reads are (review 36p: unmetered, one caller's loop of them held it).
        return await self._scan("GetTimeline", context, answer)

    async def GetFreezes(self, request: pb.FreezesRequest, context: Ctx) -> pb.FreezeList:
        """Every freeze (at most FREEZES_MAX records: bounded by the state itself); to a
        non-observer, only those of its own account."""
        store, caller = self._node.store, current_caller()
        return await self._scan(
            "GetFreezes",
            context,
            lambda: pb.FreezeList(
                height=store.head().height,
                freezes=[
                    pb.FrozenTarget(
                        account=f.account,
                        instrument=f.instrument,
                        reason=f.reason,
                        height=f.height,
                        time_ms=f.time_ms,
                        by=f.by,
                    )
                    for f in freezes(store)
                    if may_read_account(caller, f.account)
                ],
            ),
        )

    async def GetAttestations(
        self, request: pb.AttestationsRequest, context: Ctx
    ) -> pb.AttestationList:
        """Backed instruments with their supply and attestations (at most BACKINGS_MAX
        instruments, ATTESTATIONS_KEPT records each: bounded by genesis and the state);
        only those the caller may read (node/access.py ``may_read_attestations``)."""
        g, store, caller = self._node.genesis, self._node.store, current_caller()
        reg = Registry.of(store)
        backed = [*g.custody_by_bond, *g.reserves_by_cash]
        if request.instrument:
            if request.instrument not in backed:
                await _not_found(
                    context,
                    f"{request.instrument!r} is neither a custody-backed bond nor a "
                    "reserve-backed cash token in genesis",
                    "backed instrument",
                    request.instrument,
                )
            if not may_read_attestations(caller, request.instrument, reg):
                await _denied(
                    context,
                    f"{caller.participant} may not read the attestations of "
                    f"{request.instrument}: its issuer, custodian and observers do",
                    caller,
                    "attestations",
                )
            backed = [request.instrument]
        page = await self._page(request.page_bytes_max, request.page_token, context)

        def answer() -> pb.AttestationList:
            shown = [i for i in sorted(backed) if may_read_attestations(caller, i, reg)]
            return paged(
                pb.AttestationList(height=store.head().height),
                len(shown),
                page,
                self._node.paged_version,
                lambda k: ("instruments", self._backed_pb(shown[k])),
            )

        return await self._paged_scan("GetAttestations", context, answer)

    async def _page(self, size: int, raw: bytes, context: Ctx) -> Page:
        """The page a paged read asks for (node/runtime/_pages.py); INVALID_ARGUMENT for
        a token that is not one this node makes."""
        try:
            return page_of(size, raw, self._node.paged_version)
        except PageError as e:
            await _invalid(context, str(e), "page_token")

    async def _paged_scan(self, call: str, context: Ctx, answer: Callable[[], _T]) -> _T:
        """``_scan`` of a paged answer: a token past the answer is INVALID_ARGUMENT, a
        continuation of an answer that changed ABORTED (PAGE_STALE: read again)."""
        try:
            return await self._scan(call, context, answer)
        except PageError as e:
            await _invalid(context, str(e), "page_token")
        except StalePageError as e:
            meta = {"since": str(e.version)}
            await refuse(context, grpc.StatusCode.ABORTED, str(e), Reason.PAGE_STALE, meta)

    def _backed_pb(self, instrument: str) -> pb.BackedInstrument:
        store = self._node.store
        custody = instrument in self._node.genesis.custody_by_bond
        found = attestation_records(store, instrument, custody=custody)
        return pb.BackedInstrument(
            instrument=instrument,
            custody=custody,
            supply=store.supply(instrument),
            attestations=[pb.Attestation(as_of_ms=as_of, record=raw) for as_of, raw in found],
        )

    async def GetRepos(self, request: pb.ReposRequest, context: Ctx) -> pb.RepoList:
        """One repo, the caller's (with ``party`` if given), or (observers) a party's or
        all: at most REPO_LIST_MAX records, each readable by its two parties and observers
        (node/access.py ``may_read_repo``). A non-observer is answered from its own repos
        only, so whether anyone else's repo or id exists is not in the answer: an id it
        may not read is NOT_FOUND as an absent one is; a ``party`` filters, as GetLocks."""
        store, caller = self._node.store, current_caller()
        limit = min(request.limit or REPO_LIST_MAX, REPO_LIST_MAX)
        if request.id:
            found = [await self._readable_repo(await _ident(context, request.id, "id"), context)]
            return _repos_pb(store, found)
        party = request.party and await _ident(context, request.party, "party")

        def listed() -> pb.RepoList:
            if caller.observer:
                return _repos_pb(
                    store, repos_of(store, party, limit) if party else all_repos(store, limit)
                )
            mine = repos_of(store, caller.participant)
            return _repos_pb(
                store, [r for r in mine if not party or party in (r.borrower, r.lender)][:limit]
            )

        return await self._scan("GetRepos", context, listed)

    async def _readable_repo(self, repo_id: str, context: Ctx) -> RepoRecord:
        caller = current_caller()
        one = repo(self._node.store, repo_id)
        if one is None or not may_read_repo(caller, one.borrower, one.lender):
            why = f"no repo {repo_id!r} that {caller.participant} may read"
            await _not_found(context, why, "repo", repo_id)
        return one

    async def GetReference(self, request: pb.ReferenceRequest, context: Ctx) -> pb.Reference:
        """The reference data at the head (at most PARTICIPANTS_MAX participants and
        INSTRUMENTS_MAX instruments: bounded by the state itself); each instrument's supply
        only to those who may read it, as GetAttestations (``may_read_attestations``)."""
        caller = current_caller()
        if not may_read_reference(caller):
            await _denied(context, "no participant identity", caller, "reference")
        page = await self._page(request.page_bytes_max, request.page_token, context)
        return await self._paged_scan(
            "GetReference", context, lambda: reference_pb(self._node, caller, page)
        )

    async def GetLocks(self, request: pb.LocksRequest, context: Ctx) -> pb.LockList:
        """Every lock the caller may read (at most LOCKS_MAX records: bounded by the state
        itself), only those naming ``party`` if given (INVALID_ARGUMENT if it is not an
        id: a typo is told, not answered with no locks)."""
        store, caller = self._node.store, current_caller()
        party = request.party and await _ident(context, request.party, "party")
        return await self._scan(
            "GetLocks",
            context,
            lambda: pb.LockList(
                height=store.head().height,
                locks=[
                    _lock_pb(store, rec)
                    for rec in locks(store)
                    if may_read_lock(caller, rec.holder, rec.beneficiary)
                    and (not party or party in (rec.holder, rec.beneficiary))
                ],
            ),
        )

    async def GetPrices(self, request: pb.PricesRequest, context: Ctx) -> pb.PriceList:
        """margin: recorded prices and the price in force (node/runtime/_prices.py)."""
        caller = current_caller()
        if not may_read_prices(caller):
            await _denied(context, "no participant identity", caller, "prices")
        found = prices_pb(self._node, request.instrument)
        if isinstance(found, str):
            await _not_found(context, found, "prices", request.instrument)
        return found


def _instrument_state_pb(store: StateView, reg: Registry, inst: Instrument) -> pb.InstrumentState:
    """An instrument's holders (all of them to those who may read them, else the caller's
    own) and its paid periods, at the head."""
    state = instrument_state(store, inst)
    accounts = sorted({a for a, _ in state.holdings} | set(state.redeemed))
    caller = current_caller()
    if not may_read_holders(caller, inst.id, reg):
        accounts = [a for a in accounts if a == caller.participant]
    units = dict(state.holdings)
    return pb.InstrumentState(
        instrument=inst.id,
        height=store.head().height,
        holders=[_holder_pb(a, units.get(a, 0), state.redeemed.get(a)) for a in accounts],
        paid=[
            pb.PaidPeriod(period=k, total=p.total, holders=p.holders)
            for k, p in sorted(state.paid.items())
        ],
    )


def _repos_pb(store: StateView, found: list[RepoRecord]) -> pb.RepoList:
    return pb.RepoList(
        height=store.head().height, repos=[pb.Repo(id=r.id, record=r.encode()) for r in found]
    )


def _lock_pb(store: StateView, rec: LockRecord) -> pb.LockInfo:
    return pb.LockInfo(
        lock_id=rec.lock_id, holder=rec.holder, instrument=rec.instrument, amount=rec.amount,
        beneficiary=rec.beneficiary, until_ms=rec.until_ms, secured_kind=rec.secures.kind,
        secured_ref=rec.secures.ref, height=rec.height, time_ms=rec.time_ms,
        defaulted=list(defaulters(store, rec.secures)),
    )  # fmt: skip


def reference_pb(node: Node, caller: Caller, page: Page | None = None) -> pb.Reference:
    """The reference data at the head as ``caller`` may read it: ``page`` of it (None:
    all), participants in id order, then instruments (node/runtime/_pages.py)."""
    store = node.store
    reg = Registry.of(store)
    pids, iids = reg.participant_ids, list(reg.instrument_by_id)

    def entry(k: int) -> tuple[str, Message]:
        if k < len(pids):
            return "participants", _participant_pb(reg.participant_by_id[pids[k]])
        i = reg.instrument_by_id[iids[k - len(pids)]]
        supply = store.supply(i.id) if may_read_attestations(caller, i.id, reg) else None
        return "instruments", _instrument_pb(reg, i, supply)

    base = pb.Reference(height=store.head().height, admins=reg.admins, threshold=reg.threshold)
    version = 0 if page is None else node.paged_version  # unpaged: every entry, no token
    return paged(base, len(pids) + len(iids), page, version, entry)


def _participant_pb(p: Participant) -> pb.ReferenceParticipant:
    return pb.ReferenceParticipant(
        id=p.id,
        public_key=p.public_key,
        roles=sorted(r.value for r in p.roles),
        kyc_tier=p.kyc_tier,
    )


def _instrument_pb(reg: Registry, i: Instrument, supply: int | None) -> pb.ReferenceInstrument:
    """``supply`` None: left out (the caller may not read it)."""
    as_of, digest = reg.attestation(i.id) or (0, b"")
    return pb.ReferenceInstrument(
        id=i.id, kind=i.kind.value, issuer=i.issuer, currency=i.currency,
        unit_face_minor=i.unit_face_minor, maturity_date=i.maturity_date,
        coupon_bp=i.coupon_bp, coupon_freq=i.coupon_freq, max_supply=i.max_supply,
        payment_cash=i.payment_cash, paying_agent=i.paying_agent, issue_date=i.issue_date,
        distribution_day=i.distribution_day, supply=supply,
        attested_as_of_ms=as_of, attestation_sha256=digest,
    )  # fmt: skip


class HealthService(HealthServicer):  # type: ignore[misc]
    """grpc's health servicer with Watch streams bounded per connection and in all (a
    Watch parks a task until the client leaves), and a Watch of its own: grpc's writes
    each status holding the service's condition, which ``set`` takes, so one Watch whose
    status never left (an anonymous client holding its HTTP/2 window at zero) blocked
    ``set`` for ever, and with it the node's ready loop: no heartbeat, no stop on
    SIGTERM, no exit once halted (review 31). Here a watcher waits on an event ``set``
    fires after the status changed, and writes holding nothing."""

    def __init__(self) -> None:
        super().__init__()
        self._watches = Shares(
            "health watches", HEALTH_WATCHES_MAX, HEALTH_WATCHES_PER_CONNECTION_MAX
        )
        self._changed = asyncio.Event()  # fired and replaced by each set

    async def Watch(self, request: health_pb2.HealthCheckRequest, context: Any) -> None:
        async with self._watches.hold(context):
            await self._watch(request.service, context)

    async def _watch(self, service: str, context: Any) -> None:
        unknown = health_pb2.HealthCheckResponse.SERVICE_UNKNOWN
        last = None
        while True:
            changed = self._changed  # taken before the status is read: no change is missed
            status = self._server_status.get(service, unknown)
            if status != last:  # only the latest status counts, as in grpc's
                await context.write(health_pb2.HealthCheckResponse(status=status))
                last = status
            await changed.wait()

    async def _set(self, service: str, status: Any) -> None:
        """grpc's ``set`` and ``enter_graceful_shutdown`` call this: record the status (no
        condition is taken: grpc's Watch, which adds them, is not used), then wake every
        watcher."""
        await super()._set(service, status)
        self._changed.set()
        self._changed = asyncio.Event()


class ReflectionService(ReflectionServicer):  # type: ignore[misc]
    """grpc's server reflection with its streams bounded per connection and in all, as
    health Watch is: a reflection call needs no identity and parks a task until the
    client leaves, whether or not it ever sends a request."""

    def __init__(self, service_names: Iterable[str]) -> None:
        super().__init__(tuple(service_names))
        self._streams = Shares(
            "reflection streams", REFLECTION_STREAMS_MAX, REFLECTION_STREAMS_PER_CONNECTION_MAX
        )

    async def ServerReflectionInfo(
        self, requests: AsyncIterator[reflection_pb2.ServerReflectionRequest], context: Any
    ) -> AsyncIterator[reflection_pb2.ServerReflectionResponse]:
        async with self._streams.hold(context):
            async for response in super().ServerReflectionInfo(requests, context):
                yield response
