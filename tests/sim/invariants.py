"""Invariants checked on every send and every applied block of a simulation.

Honest instances are the validators running unmodified code, not as twins. A violation
raises :class:`Violation` at the step that broke the rule, so the seed and step replay
exactly.

Against Byzantine strategies (``tests/sim/byzantine.py``) three more rules hold on honest
nodes: no certified block carries junk (a transaction no client sent), an honest client's
transaction is never refused because the mempool is full (the sim's workload is far below
``MEMPOOL_TXS_MAX``, so only a peer's flood can fill it), and catch-up work served to one
peer stays under ``SYNC_SERVED_BYTES_PER_S``, and so do the signature checks one peer's
messages cost (``verified_per_peer_per_s``). Bounded censorship (views from
stabilisation to commit) is checked by the runner with :func:`censorship_bound_views`.

Pending settlement (ADR 0014): the events after a block's transaction results move the
legs the model expects (all that is left for ``OK``; whole lots for
``PARTIALLY_SETTLED``); no pending trade settles twice, after its deadline, or has an
event after it ended; and every honest node resolves each one at the same height with
the same code.
"""

from __future__ import annotations

import dataclasses
from collections import Counter, defaultdict
from typing import Any

from node.config import (
    CATCHUP_BATCH_BLOCKS_MAX,
    CATCHUP_RESPONSE_BYTES_MAX,
    FORWARD_LEADERS,
    PEER_SYNC_BYTES_BURST,
    PEER_SYNC_BYTES_PER_S,
    PEER_VERIFY_BURST,
    PEER_VERIFY_PER_S,
)
from node.core import (
    AddResult,
    Block,
    Phase,
    QuorumCert,
    SafetyState,
    SyncResponse,
    Vote,
    encode_message,
)
from node.settlement import (
    GOVERNANCE_KINDS,
    AttestCustody,
    AttestPrice,
    AttestReserves,
    BlockOutcome,
    Burn,
    Cancel,
    ClaimLock,
    CouponPay,
    Distribute,
    DvP,
    Freeze,
    Genesis,
    Hold,
    Lock,
    Mint,
    PendingDvP,
    RecordKind,
    Redeem,
    RedeemAll,
    Release,
    ReleaseLock,
    RepoClose,
    RepoOpen,
    ResultCode,
    Swap,
    Transaction,
    Transfer,
    TxResult,
    Unfreeze,
    outcome,
)
from node.settlement._lifecycle import distribution_parts
from tests.sim.workload import tx_id_of

# Codes of copies that fail before their signatures are checked: never recorded, and
# their id may belong to an authentic transaction.
UNAUTHENTICATED = frozenset({ResultCode.MALFORMED, ResultCode.BAD_SIGNATURE})
# The record kinds of the reference data (node/settlement/_registry.py, ADR 0016).
GOV_RECORDS = frozenset(
    {RecordKind.PARTICIPANT, RecordKind.INSTRUMENT, RecordKind.SUPPLY_ATTESTATION, RecordKind.ADDED}
)

# Catch-up bytes one honest node may serve one peer in one second of simulated time: the
# per-peer token bucket's burst and rate, plus the one response it may go into debt for.
SYNC_SERVED_BYTES_PER_S = PEER_SYNC_BYTES_BURST + PEER_SYNC_BYTES_PER_S + CATCHUP_RESPONSE_BYTES_MAX


def verified_per_peer_per_s(n: int) -> int:
    """Signature checks one honest node may do for one peer's messages in one second: the
    per-peer bucket's burst and rate, plus one message it may go into debt for (at most a
    catch-up response of certified blocks, or a proposal with a parent certificate and a
    TC with its entries and two proofs)."""
    one_message = max(CATCHUP_BATCH_BLOCKS_MAX * n, 4 * n)
    return PEER_VERIFY_BURST + PEER_VERIFY_PER_S + one_message


def censorship_bound_views(n: int, byzantine: int) -> int:
    """Views from stabilisation (or from an honest node's acceptance, if later) within
    which the commit certificate of a block holding the transaction must form, with at
    most ``byzantine`` Byzantine validators and every honest one connected.

    Why this many. (1) Within FORWARD_LEADERS views every next leader holds the
    transaction: the accepting node sends it to the leaders of its next FORWARD_LEADERS
    views, again after each commit that leaves it pending, and to everyone with each
    timeout. (2) The leader schedule (node/core/leader.py) visits its candidates, at most
    n, with a stride coprime to their number: while the candidate set stands, each leads
    once in any n consecutive views, and at most ``byzantine`` of them are Byzantine. The
    set changes only after a failed view, which after stabilisation is a Byzantine
    leader's (then excluded) or one of (3). (3) An honest leader holding the transaction
    proposes it (the sim's load is far below a block) and its view commits, unless honest
    views are not yet synchronised (one TC moves every honest node to the same view) or
    the view timeout is still below the round trip (it doubles after n - q views without
    a commit): at most one more rotation. Budget: FORWARD_LEADERS + two rotations of n
    views + one view per Byzantine validator for set changes it causes.
    """
    return FORWARD_LEADERS + 2 * n + byzantine


class Violation(AssertionError):
    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(f"{kind}: {detail}")
        self.kind = kind


class Checker:
    def __init__(self, genesis: Genesis, txs: dict[bytes, Transaction | None]) -> None:
        self.txs = txs
        self.genesis = genesis
        self.ids = {raw: tx_id_of(raw) for raw in txs}
        self.block_at: dict[int, bytes] = {}  # height -> hash first committed by an honest node
        self.root_at: dict[int, bytes] = {}  # height -> state root after it (honest)
        self.results_at: dict[int, bytes] = {}  # height -> Merkle root of its results
        # height -> the block is quiet: no transactions and no events (nothing to certify)
        self.quiet_at: dict[int, bool] = {}
        self.txs_at: dict[int, frozenset[bytes]] = {}  # height -> the transactions it carries
        self.first_at: dict[bytes, int] = {}  # raw tx or tx id -> first height carrying it
        self.votes: dict[tuple[int, Phase, int], bytes] = {}
        # instance -> tx id -> results recorded under it / results that settled (OK)
        self.recorded: dict[int, Counter[bytes]] = defaultdict(Counter)
        self.settled: dict[int, Counter[bytes]] = defaultdict(Counter)
        # instance -> raw transactions in its blocks, and ids with an authentic copy there
        self.raws_in: dict[int, set[bytes]] = defaultdict(set)
        self.ids_in: dict[int, set[bytes]] = defaultdict(set)
        self.anywhere: set[bytes] = set()  # raws and ids in some honest node's blocks
        self.refused: dict[bytes, ResultCode] = {}  # raw -> code honest admission answered
        self.codes: Counter[ResultCode] = Counter()  # results in blocks, once per height
        self.totals: Counter[str] = Counter()
        self.start: dict[tuple[str, str], int] = {}
        for h in genesis.holdings:
            self.totals[h.instrument] += h.amount
            self.start[(h.account, h.instrument)] = h.amount
        for inst in genesis.instruments:
            self.totals.setdefault(inst.id, 0)
        # instance -> the balances and supplies its settled transactions imply
        self.model: dict[int, dict[tuple[str, str], int]] = {}
        self.supply: dict[int, Counter[str]] = {}
        self.gov_at: dict[int, frozenset[tuple[bytes, bytes | None]]] = {}  # height -> writes
        self.max_height = 0
        self.last_commit_ms = 0
        self.commits = 0
        self.commit_view: dict[bytes, int] = {}  # tx -> view of its first honest commit QC
        self.commit_ms: dict[int, int] = {}  # height -> when an honest node first committed it
        # Pending settlement: trades by id; per instance the ids that ended and the bond
        # units settled so far; the (height, code) the first honest node ended each with.
        self.pending = {self.ids[raw]: tx for raw, tx in txs.items() if isinstance(tx, PendingDvP)}
        self.ended: dict[int, set[bytes]] = defaultdict(set)
        self.moved: dict[int, Counter[bytes]] = defaultdict(Counter)
        self.resolved: dict[bytes, tuple[int, ResultCode]] = {}
        # Repos: the terms of each repo id's open (the sim's copies of one id share them).
        self.repo_terms = {tx.id: tx for tx in txs.values() if isinstance(tx, RepoOpen)}
        self._served: dict[tuple[int, int], tuple[int, int]] = {}  # (node, peer) -> (s, n)
        self._verified: dict[tuple[int, int], tuple[int, int]] = {}  # (node, peer) -> (s, n)

    # --- sends -----------------------------------------------------------------------

    def on_send(self, inst: Any, dst: int, msg: object, persisted: bytes | None, now: int) -> None:
        if not inst.honest:
            return
        if isinstance(msg, SyncResponse):
            self._check_served(inst, dst, len(encode_message(msg)), now)
        if not isinstance(msg, Vote):
            return
        key = (msg.voter, msg.phase, msg.view)
        seen = self.votes.setdefault(key, msg.block_hash)
        if seen != msg.block_hash:
            raise Violation(
                "honest double vote",
                f"validator {msg.voter} signed two {msg.phase.name} votes in view {msg.view}",
            )
        # The vote may leave only once the safety state covering it is on disk.
        state = SafetyState.decode(persisted) if persisted is not None else SafetyState()
        voted = state.prepare_view if msg.phase is Phase.PREPARE else state.commit_view
        if voted < msg.view:
            raise Violation("vote before persist", f"validator {msg.voter} view {msg.view}")

    def _check_served(self, inst: Any, dst: int, size: int, now: int) -> None:
        second = now // 1000
        at, total = self._served.get((inst.name, dst), (second, 0))
        total = size + (total if at == second else 0)
        self._served[(inst.name, dst)] = (second, total)
        if total > SYNC_SERVED_BYTES_PER_S:
            raise Violation(
                "sync flood",
                f"instance {inst.name} served peer {dst} {total} catch-up bytes in one second",
            )

    def on_crash(self, name: int) -> None:
        """A crashed node loses its per-peer budgets (they are in memory) and restarts with
        full ones, as a real process does: its windows of work per peer start again too."""
        for table in (self._served, self._verified):
            for key in [k for k in table if k[0] == name]:
                del table[key]

    def on_verified(self, inst: Any, src: int, count: int, now: int) -> None:
        if not inst.honest or src == inst.index or not count:
            return
        second = now // 1000
        at, total = self._verified.get((inst.name, src), (second, 0))
        total = count + (total if at == second else 0)
        self._verified[(inst.name, src)] = (second, total)
        bound = verified_per_peer_per_s(inst.core.n)
        if total > bound:
            raise Violation(
                "verify flood",
                f"instance {inst.name} checked {total} signatures for peer {src} in one second "
                f"(bound {bound})",
            )

    def on_refused(self, raw: bytes, code: ResultCode) -> None:
        """Honest admission answered a client ``code``: a final answer, so the
        transaction must never settle (checked at every commit)."""
        self.refused.setdefault(raw, code)

    def on_submit(self, inst: Any, raw: bytes, result: AddResult, now: int) -> None:
        if inst.honest and result is AddResult.FULL:
            raise Violation(
                "mempool flooded",
                f"instance {inst.name} refused a client's transaction: mempool full "
                f"({len(inst.core.mempool)} pending)",
            )

    # --- commits ---------------------------------------------------------------------

    def on_commit(
        self, inst: Any, block: Block, cert: QuorumCert, outcome: BlockOutcome, now: int
    ) -> None:
        if cert.block_hash != block.hash or cert.height != block.height:
            raise Violation("certificate", f"height {block.height} cert names another block")
        if not inst.honest:
            return
        h = block.height
        first = self.block_at.setdefault(h, block.hash)
        self.commit_ms.setdefault(h, now)
        if first != block.hash:
            raise Violation(
                "agreement",
                f"instance {inst.name} committed {block.hash.hex()[:12]} at height {h}, "
                f"another honest node committed {first.hex()[:12]}",
            )
        self.check_governance(inst, h, outcome)
        root = self.root_at.setdefault(h, outcome.state_root)
        if root != outcome.state_root:
            raise Violation("state root", f"instance {inst.name} diverged at height {h}")
        if h not in self.results_at:
            self.codes.update(r.code for r in outcome.results)
        self.results_at.setdefault(h, outcome.results_root)
        self.quiet_at[h] = not outcome.results  # a result per transaction, then events
        self.txs_at[h] = frozenset(block.txs)
        for raw, result in zip(block.txs, _own(block, outcome), strict=True):
            self.first_at.setdefault(raw, h)
            self.first_at.setdefault(result.tx_id, h)
        # The certified header of h carries the results of h - 1 (what receipts prove).
        prev = self.results_at.get(h - 1)
        if prev is not None and block.results_root != prev:
            raise Violation("results root", f"block {h} certifies other results of {h - 1}")
        if not block.txs and (h == 1 or self.quiet_at.get(h - 1, False)):
            raise Violation("empty block", f"block {h} is empty and certifies no results")
        if h > self.max_height:
            self.max_height, self.last_commit_ms = h, now
        self.commits += 1
        for raw, result in zip(block.txs, _own(block, outcome), strict=True):
            self.commit_view.setdefault(raw, cert.view)
            if result.code not in UNAUTHENTICATED:
                self.commit_view.setdefault(result.tx_id, cert.view)
        self._check_txs(inst, block, outcome)
        self._check_balances(inst, block, outcome)

    def check_governance(self, inst: Any, h: int, outcome: BlockOutcome) -> None:
        """Governance changes apply at one height on every honest node: the reference-data
        records a block writes (ADR 0016) are the same everywhere (checked before the
        state root, which would also differ, so the violation names the cause)."""
        writes = frozenset((k, v) for k, v in outcome.records.items() if k[0] in GOV_RECORDS)
        first = self.gov_at.setdefault(h, writes)
        if first != writes:
            raise Violation(
                "governance",
                f"instance {inst.name} changed the reference data differently at height {h}",
            )

    def _check_txs(self, inst: Any, block: Block, outcome: BlockOutcome) -> None:
        """Each id is recorded once and settles at most once at each node, whatever copies
        and replays of it blocks carry; a refusal honest admission answered stands."""
        recorded, settled = self.recorded[inst.name], self.settled[inst.name]
        for raw, result in zip(block.txs, _own(block, outcome), strict=True):
            if raw not in self.txs:
                raise Violation("junk certified", f"height {block.height} carries a tx nobody sent")
            self.raws_in[inst.name].add(raw)
            self.anywhere.add(raw)
            if result.code not in UNAUTHENTICATED:
                self.ids_in[inst.name].add(result.tx_id)
                self.anywhere.add(result.tx_id)
            recorded[result.tx_id] += result.recorded
            settled[result.tx_id] += result.code is ResultCode.OK
            if recorded[result.tx_id] > 1 or settled[result.tx_id] > 1:
                raise Violation("exactly once", f"a tx applied twice by instance {inst.name}")
            refused = self.refused.get(raw)
            if refused is not None and result.code is ResultCode.OK:
                raise Violation(
                    "refusal stands",
                    f"instance {inst.name} settled at height {block.height} a tx honest "
                    f"admission refused as {refused.name}",
                )
        for ev in outcome.results[len(block.txs) :]:
            self._check_event(inst, block, ev)

    def _check_event(self, inst: Any, block: Block, ev: TxResult) -> None:
        """A pending trade's event: for a trade that waits, never after it ended, never a
        second settlement, never settled past its deadline, ended as everywhere else."""
        tx = self.pending.get(ev.tx_id)
        if tx is None or not ev.event:
            raise Violation(
                "junk certified", f"height {block.height}: an event of no pending trade"
            )
        ended, h = self.ended[inst.name], block.height
        if ev.tx_id in ended:
            raise Violation("exactly once", f"instance {inst.name}: an event after the trade ended")
        moves = ev.code in (ResultCode.OK, ResultCode.PARTIALLY_SETTLED)
        if moves and block.time_ms > tx.deadline_ms:
            raise Violation("deadline", f"instance {inst.name} settled after the deadline at {h}")
        settled = self.settled[inst.name]
        settled[ev.tx_id] += ev.code is ResultCode.OK
        if settled[ev.tx_id] > 1:
            raise Violation(
                "exactly once", f"a pending trade settled twice at instance {inst.name}"
            )
        if ev.code is not ResultCode.PARTIALLY_SETTLED:
            ended.add(ev.tx_id)
            first = self.resolved.setdefault(ev.tx_id, (h, ev.code))
            if first != (h, ev.code):
                raise Violation(
                    "pending agreement",
                    f"instance {inst.name} ended a pending trade with {ev.code.name} at {h}, "
                    f"another honest node with {first[1].name} at {first[0]}",
                )

    def _check_balances(self, inst: Any, block: Block, outcome: BlockOutcome) -> None:
        """Balances are exactly the legs of settled transactions (so a refused DvP moved
        nothing), and every instrument's balances add up to its supply (so a refused mint
        or burn changed none), as the model of settled mints and burns says."""
        model = self.model.setdefault(inst.name, dict(self.start))
        supply = self.supply.setdefault(inst.name, Counter(self.totals))
        before = dict(model)  # holders of record for coupons and distributions
        for raw, result in zip(block.txs, _own(block, outcome), strict=True):
            if result.code is ResultCode.OK:
                tx = self.txs[raw]
                if isinstance(tx, CouponPay | Distribute | Redeem | RedeemAll):
                    _lifecycle_legs(model, supply, tx, self.genesis, before)
                elif isinstance(tx, RepoClose):  # the reverse leg, on the open's terms
                    _apply_legs(model, supply, _reverse(self.repo_terms[tx.id]))
                else:
                    _apply_legs(model, supply, tx)
        for ev in outcome.results[len(block.txs) :]:
            if ev.code in (ResultCode.OK, ResultCode.PARTIALLY_SETTLED):
                self._event_legs(inst, model, ev)
        store = inst.store
        actual = store.all_balances()
        expected = {k: v for k, v in model.items() if v}
        if actual != expected:
            raise Violation(
                "DvP atomicity",
                f"instance {inst.name} at height {block.height}: balances differ from the "
                "legs of its successful transactions",
            )
        sums: Counter[str] = Counter()
        for (_, instrument), v in actual.items():
            sums[instrument] += v
        for instrument, total in supply.items():
            if sums[instrument] != total or store.supply(instrument) != total:
                raise Violation("conservation", f"{instrument} at height {block.height}")

    def _event_legs(self, inst: Any, model: dict[tuple[str, str], int], ev: TxResult) -> None:
        """The legs of a settlement event: all that is left (OK), or the whole lots the
        node's outcome record says settled (PARTIALLY_SETTLED), each lot at its price."""
        tx, moved = self.pending[ev.tx_id], self.moved[inst.name]
        lot_q = tx.lot or tx.quantity
        lot_cash = tx.amount // (tx.quantity // lot_q)
        if ev.code is ResultCode.OK:
            units = tx.quantity - moved[ev.tx_id]
        else:
            record = outcome(inst.store, ev.tx_id)
            units = (0 if record is None else record.settled_quantity) - moved[ev.tx_id]
        if units <= 0 or units % lot_q:
            raise Violation("partial settlement", f"instance {inst.name} moved {units} units")
        moved[ev.tx_id] += units
        cash = units // lot_q * lot_cash
        _apply_legs(model, Counter(), replace_dvp(tx, units, cash))

    # --- queries ---------------------------------------------------------------------

    def committed_at(self, inst: Any, raw: bytes) -> bool:
        """A block at ``inst`` carried ``raw``, or recorded an authentic copy of its id."""
        return raw in self.raws_in[inst.name] or self.ids.get(raw) in self.ids_in[inst.name]

    def committed_anywhere(self, raw: bytes) -> bool:
        return raw in self.anywhere or self.ids.get(raw) in self.anywhere

    def late_copy(self, raw: bytes, height: int) -> bool:
        """``raw`` first appears at ``height`` as another envelope of an id that an
        earlier block recorded (it waited in a mempool while its twin committed)."""
        first_id = self.first_at.get(self.ids.get(raw, b""), height)
        return self.first_at.get(raw) == height and first_id < height

    def commit_view_of(self, raw: bytes) -> int | None:
        view = self.commit_view.get(raw)
        return self.commit_view.get(self.ids.get(raw, b"")) if view is None else view


def _own(block: Block, outcome: BlockOutcome) -> tuple[TxResult, ...]:
    """The results of the block's own transactions (its pending events follow them)."""
    return outcome.results[: len(block.txs)]


def replace_dvp(tx: PendingDvP, quantity: int, amount: int) -> DvP:
    """The part of ``tx`` one event settled, as the DvP whose legs it moves."""
    return dataclasses.replace(tx.as_dvp(), quantity=quantity, amount=amount)


def _reverse(tx: RepoOpen) -> DvP:
    """A sim repo's close leg: its repurchase amount is fixed (tests/sim/workload.py)."""
    return DvP(
        tx.chain_id, tx.nonce, tx.expiry_ms, tx.lender, tx.borrower, tx.bond, tx.quantity,
        tx.cash, tx.repurchase_amount, tx.close_ms,
    )  # fmt: skip


def _apply_legs(
    model: dict[tuple[str, str], int], supply: Counter[str], tx: Transaction | None
) -> None:
    def move(instrument: str, src: str, dst: str, amount: int) -> None:
        model[(src, instrument)] = model.get((src, instrument), 0) - amount
        model[(dst, instrument)] = model.get((dst, instrument), 0) + amount

    def issue(instrument: str, holder: str, amount: int) -> None:
        model[(holder, instrument)] = model.get((holder, instrument), 0) + amount
        supply[instrument] += amount

    if isinstance(tx, PendingDvP):  # settled at once, like a DvP
        tx = tx.as_dvp()
    if isinstance(tx, DvP):
        move(tx.bond, tx.seller, tx.buyer, tx.quantity)
        move(tx.cash, tx.buyer, tx.seller, tx.amount)
    elif isinstance(tx, Transfer):
        move(tx.instrument, tx.sender, tx.receiver, tx.amount)
    elif isinstance(tx, Mint):
        issue(tx.instrument, tx.to, tx.amount)
    elif isinstance(tx, Burn):
        issue(tx.instrument, tx.holder, -tx.amount)
    elif isinstance(tx, RepoOpen):  # the opening leg: a DvP, borrower sells
        move(tx.bond, tx.borrower, tx.lender, tx.quantity)
        move(tx.cash, tx.lender, tx.borrower, tx.purchase_amount)
    elif isinstance(tx, Hold | Release | Cancel):
        pass  # no legs: they act on a pending trade, whose events move them
    elif isinstance(tx, Swap):
        move(tx.instrument_a, tx.party_a, tx.party_b, tx.quantity_a)
        move(tx.instrument_b, tx.party_b, tx.party_a, tx.quantity_b)
    elif isinstance(tx, ClaimLock):  # the body states the lock's terms (checked on apply)
        move(tx.instrument, tx.holder, tx.beneficiary, tx.amount)
    elif isinstance(tx, Lock | ReleaseLock):
        pass  # no legs: a lock pledges units where they are; a release frees them
    elif isinstance(tx, Freeze | Unfreeze | AttestCustody | AttestReserves):
        pass  # no legs: they decide whether later legs (mints) move
    elif isinstance(tx, AttestPrice):
        pass  # no legs: a price decides whether a margin call or substitution moves
    elif isinstance(tx, GOVERNANCE_KINDS):
        pass  # no legs: they change the reference data (check_governance)
    else:
        raise Violation("unknown tx", "a transaction settled that no body decodes to")


def _lifecycle_legs(
    model: dict[tuple[str, str], int],
    supply: Counter[str],
    tx: CouponPay | Distribute | Redeem | RedeemAll,
    g: Genesis,
    before: dict[tuple[str, str], int],
) -> None:
    """The cash and units a settled lifecycle event moves (docs/ledger.md "Lifecycle"),
    from the model: coupons and distributions pay the holders of record (``before``, the
    block's starting balances), redemptions burn what the holder holds now."""
    iid = tx.fund if isinstance(tx, Distribute) else tx.bond
    inst = g.instrument_by_id[iid]
    cash, agent = inst.payment_cash, inst.agent

    def pay(holder: str, amount: int) -> None:
        if holder != agent:
            model[(agent, cash)] = model.get((agent, cash), 0) - amount
            model[(holder, cash)] = model.get((holder, cash), 0) + amount

    def coupon(units: int) -> int:
        return units * inst.unit_face_minor * inst.coupon_bp // (10_000 * inst.coupon_freq or 1)

    def redeem(holder: str) -> None:
        units = model.get((holder, iid), 0)
        final = coupon(units) if g.schedules[iid] else 0
        model[(holder, iid)] = 0
        supply[iid] -= units
        pay(holder, units * inst.unit_face_minor + final)

    held = [(p, before.get((p, iid), 0)) for p in g.participant_ids]
    held = [(p, u) for p, u in held if u > 0]
    if isinstance(tx, CouponPay):
        for holder, units in held:
            pay(holder, coupon(units))
    elif isinstance(tx, Distribute):
        for (holder, _), part in zip(held, distribution_parts(tx.total, held), strict=True):
            pay(holder, part)
    elif isinstance(tx, Redeem):
        redeem(tx.holder)
    else:
        for p in g.participant_ids:
            if model.get((p, iid), 0) > 0:
                redeem(p)
