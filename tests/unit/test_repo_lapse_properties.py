"""Review 31 (repo lapse): the lapse index and its next-due bound against the repos'
states through random histories that also reopen repos: opens (some sharing a default
deadline), one- and two-sided closes, cash drained and refunded, governance changing the
co-signature threshold and the per-trade limit while closes wait (a close recycling
refuses reopens its repo), and time passing deadlines. After every block: the index holds
exactly the OPEN repos; the bound is present and at most the earliest indexed deadline
whenever the index is not empty; and no repo is live past its default deadline (none
left OPEN or CLOSING once the block time has passed it)."""

from __future__ import annotations

from dataclasses import replace

from hypothesis import event, given, settings
from hypothesis import strategies as st

from node import crypto
from node.codec import Reader
from node.genesis import DEMO_COSIGN_ABOVE_CENTS, DemoNetwork
from node.settlement import (
    BlockContext,
    ComplianceRules,
    RecordKind,
    _repo,
    apply_block,
    repo,
    sign_tx,
)
from node.settlement._kyc_rules import TierLimit
from node.store import MemoryStore
from tests.gov_helpers import set_rules, signed
from tests.ledger_helpers import TxFactory, shared_net
from tests.repo_helpers import EXPIRY_MS, HOUR_MS, RepoTx

BANKS = ("BANK01", "BANK02", "BANK03")
IDS = ("R1", "R2", "R3")
PARTIES = BANKS[:2]

_open = st.tuples(
    st.just("open"),
    st.sampled_from(IDS),
    st.sampled_from([PARTIES, PARTIES[::-1]]),
    st.sampled_from([1, 2, 3]),  # default deadline, hours after the close time: some shared
)
_close = st.tuples(
    st.just("close"), st.sampled_from(IDS), st.sets(st.sampled_from(PARTIES), min_size=1)
)
_move = st.tuples(st.just("move"), st.sampled_from(PARTIES), st.integers(0, 6_000))
_refund = st.tuples(st.just("refund"), st.sampled_from(PARTIES))
_rules = st.tuples(st.just("rules"), st.sampled_from(["none", "cosign", "trade"]))
_wait = st.tuples(st.just("wait"), st.sampled_from([1, HOUR_MS, 2 * HOUR_MS + 1]))
_step = st.one_of(_open, _open, _close, _close, _move, _refund, _rules, _wait, _wait)


def _net() -> DemoNetwork:
    """The demo network with the repos' parties holding 20,000 cents each, so that a
    transfer or two leaves a borrower short of a close."""
    net = shared_net()
    g = net.genesis
    held = tuple(
        replace(h, amount=20_000) if h.account in PARTIES and h.instrument == net.cash else h
        for h in g.holdings
    )
    return replace(net, genesis=replace(g, holdings=held))


NET = _net()


def _rule_set(net: DemoNetwork, which: str) -> ComplianceRules:
    if which == "cosign":
        return ComplianceRules.of({}, (), {net.cash: 1_000})
    if which == "trade":
        return ComplianceRules.of({}, [TierLimit(2, net.cash, 1_000)], {})
    return ComplianceRules.of({}, (), {})


def _tx(store: MemoryStore, rtx: RepoTx, txf: TxFactory, step: tuple[object, ...]) -> bytes | None:
    net = rtx.net
    match step:
        case ("open", str(rid), (str(b), str(l)), int(hours)):
            close_ms = rtx.t0 + HOUR_MS
            return rtx.open(rid, b, l, purchase=5_000, quantity=10, close_ms=close_ms,
                            default_ms=close_ms + hours * HOUR_MS)  # fmt: skip
        case ("close", str(rid), by):
            rec = repo(store, rid)
            parties = (rec.borrower, rec.lender) if rec else PARTIES
            return rtx.close(rid, *sorted(by), parties=parties)  # type: ignore[call-overload]
        case ("move", str(a), int(keep)):
            amount = min(max(store.balance(a, net.cash) - keep, 1), DEMO_COSIGN_ABOVE_CENTS)
            t = txf.transfer(a, BANKS[2], amount, expiry_ms=EXPIRY_MS)
            return sign_tx(t, [net.participant_keys[a]])
        case ("refund", str(b)):
            t = txf.transfer(BANKS[2], b, 10_000, expiry_ms=EXPIRY_MS)
            return sign_tx(t, [net.participant_keys[BANKS[2]]])
        case ("rules", str(which)):
            return signed(net, set_rules(txf, _rule_set(net, which)))
        case _:
            return None


def _check(store: MemoryStore, now: int) -> None:
    due = [k for k, _ in store.records(bytes([RecordKind.REPO_DUE]))]
    open_due = set()
    for rid in IDS:
        rec = repo(store, rid)
        if rec is None:
            continue
        if rec.live:
            assert rec.default_ms >= now, f"{rid} {rec.status.name} past its default deadline"
        if rec.status.name == "OPEN":
            open_due.add(_repo._due_key(rec))
    assert set(due) == open_due
    bound = list(store.records(bytes([RecordKind.REPO_NEXT_DUE])))
    if due:
        assert bound, "indexed repos without a next-due bound"
        assert Reader(bound[0][1]).u64() <= min(Reader(k[1:9]).u64() for k in due)


@settings(max_examples=300)
@given(st.lists(st.lists(_step, min_size=1, max_size=5), min_size=1, max_size=16))
def test_the_lapse_index_and_bound_follow_the_repos(blocks: list[list[tuple[object, ...]]]) -> None:
    net = NET
    store = MemoryStore(net.genesis)
    now = net.genesis.genesis_time_ms + 1_000
    rtx, txf = RepoTx(net, now), TxFactory(net)
    for steps in blocks:
        now += sum(int(s[1]) for s in steps if s[0] == "wait") + 1  # type: ignore[call-overload]
        rtx.t0 = now
        txf.now_ms = now
        raws = [r for s in steps if (r := _tx(store, rtx, txf, s)) is not None]
        ctx = BlockContext(store.head().height + 1, now)
        out = apply_block(store, raws, ctx)
        store.commit_block(crypto.sha256(ctx.height.to_bytes(8, "big")), b"", b"", ctx, out)
        _check(store, now)
        for r in out.results:
            event(r.code.name + (" event" if r.event else ""))
