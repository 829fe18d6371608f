"""Repo properties (issue 18 "Bad input and invariants"): through any sequence of opens,
closes (one- or two-sided, early or late), cash drained and refunded, and time passing
deadlines, every instrument's units are conserved, a repo leaves OPEN once and reaches
CLOSED or DEFAULTED at most once (never leaves it), and the live-repo counts and the
close index agree with the records."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from node import crypto
from node.genesis import DEMO_COSIGN_ABOVE_CENTS, DemoNetwork
from node.settlement import (
    BlockContext,
    RecordKind,
    RepoClose,
    RepoStatus,
    ResultCode,
    SignedTx,
    _repo,
    apply_block,
    decode_body,
    repo,
    sign_tx,
)
from node.store import MemoryStore
from tests.ledger_helpers import TxFactory, shared_net
from tests.repo_helpers import EXPIRY_MS, HOUR_MS, RepoTx

BANKS = ("BANK01", "BANK02", "BANK03")
IDS = ("R1", "R2")
PARTIES = BANKS[:2]  # the repos' parties; BANK03 holds what they send away
_END = {ResultCode.OK: RepoStatus.CLOSED, ResultCode.FAILED_DEADLINE: RepoStatus.DEFAULTED}
_ORDER = {RepoStatus.OPEN: 0, RepoStatus.CLOSING: 1, RepoStatus.CLOSED: 2, RepoStatus.DEFAULTED: 2}

_open = st.tuples(
    st.just("open"),
    st.sampled_from(IDS),
    st.sampled_from([PARTIES, PARTIES[::-1]]),
    st.integers(1, 12_000_000),  # bond units: some more than a bank holds
    st.integers(1, 1_200_000_000),  # cents: some more than a bank holds
    st.integers(0, 2_000),
)
_close = st.tuples(
    st.just("close"),
    st.sampled_from(IDS),
    st.sets(st.sampled_from(PARTIES), min_size=1, max_size=2),
)
# A bank sends away all its cash but ``keep`` cents (so a later close goes pending).
_move = st.tuples(
    st.just("move"), st.sampled_from(PARTIES), st.just(BANKS[2]), st.integers(0, 1_000)
)
# BANK03 sends some back (so a pending close can settle).
_refund = st.tuples(st.just("refund"), st.sampled_from(PARTIES), st.integers(1, 10**9))
_wait = st.tuples(st.just("wait"), st.sampled_from([1, HOUR_MS, 2 * HOUR_MS + 1]))
_step = st.one_of(_open, _close, _move, _refund, _wait)


def _tx(store: MemoryStore, rtx: RepoTx, txf: TxFactory, step: tuple[object, ...]) -> bytes | None:
    net = rtx.net
    match step:
        case ("open", str(rid), (str(b), str(l)), int(q), int(p), int(rate)):
            return rtx.open(rid, b, l, quantity=q, purchase=p, rate_bp=rate)
        case ("close", str(rid), by):
            rec = repo(store, rid)  # the close names the repo's parties, as opened
            parties = (rec.borrower, rec.lender) if rec else PARTIES
            return rtx.close(rid, *sorted(by), parties=parties)  # type: ignore[call-overload]
        case ("move", str(a), str(b), int(keep)) if a != b:
            # At most the AML co-sign threshold: a larger transfer would be refused.
            amount = min(max(store.balance(a, net.cash) - keep, 1), DEMO_COSIGN_ABOVE_CENTS)
            t = txf.transfer(a, b, amount, expiry_ms=EXPIRY_MS)
            return sign_tx(t, [net.participant_keys[a]])
        case ("refund", str(b), int(amount)):
            amount = min(amount, store.balance(BANKS[2], net.cash), DEMO_COSIGN_ABOVE_CENTS)
            t = txf.transfer(BANKS[2], b, max(amount, 1), expiry_ms=EXPIRY_MS)
            return sign_tx(t, [net.participant_keys[BANKS[2]]])
        case _:
            return None


def _check(store: MemoryStore, net: DemoNetwork, seen: dict[str, RepoStatus]) -> None:
    for inst in net.genesis.instruments:
        total = sum(store.balance(p.id, inst.id) for p in net.genesis.participants)
        assert total == store.supply(inst.id), f"{inst.id} not conserved"
    live = closing = 0
    open_due: set[bytes] = set()  # session 31: every OPEN repo, and only those, await a lapse
    for rid in IDS:
        rec = repo(store, rid)
        if rec is None:
            assert rid not in seen
            continue
        before = seen.get(rid, RepoStatus.OPEN)
        assert _ORDER[rec.status] >= _ORDER[before], f"{rid} went back {before} -> {rec.status}"
        if _ORDER[before] == 2:
            assert rec.status is before, f"{rid} left {before}"
        seen[rid] = rec.status
        live += rec.live
        closing += rec.status is RepoStatus.CLOSING
        if rec.status is RepoStatus.OPEN:
            open_due.add(_repo._due_key(rec))
    assert _repo._count(store, "") == live
    assert {k for k, _ in store.records(bytes([RecordKind.REPO_DUE]))} == open_due
    assert len(list(store.records(bytes([RecordKind.REPO_CLOSE_TX])))) == closing


@settings(max_examples=100)
@given(st.lists(st.lists(_step, min_size=1, max_size=4), min_size=1, max_size=12))
def test_conservation_and_a_repo_ends_once(blocks: list[list[tuple[object, ...]]]) -> None:
    net = shared_net()
    store = MemoryStore(net.genesis)
    now = net.genesis.genesis_time_ms + 1_000
    rtx, txf = RepoTx(net, now), TxFactory(net)
    seen: dict[str, RepoStatus] = {}
    ends: dict[str, int] = {}  # closes settled plus defaults, per repo: at most one
    closing: dict[bytes, str] = {}  # pending close tx id -> repo id
    for steps in blocks:
        now += sum(int(s[1]) for s in steps if s[0] == "wait") + 1  # type: ignore[call-overload]
        rtx.t0 = now  # each block's opens close an hour later
        raws = [r for s in steps if (r := _tx(store, rtx, txf, s)) is not None]
        ctx = BlockContext(store.head().height + 1, now)
        out = apply_block(store, raws, ctx)
        store.commit_block(crypto.sha256(ctx.height.to_bytes(8, "big")), b"", b"", ctx, out)
        _check(store, net, seen)
        for raw, result in zip(raws, out.results, strict=False):
            tx = decode_body(SignedTx.decode(raw).body)
            if isinstance(tx, RepoClose) and result.code is ResultCode.OK:
                ends[tx.id] = ends.get(tx.id, 0) + 1
            elif isinstance(tx, RepoClose) and result.code is ResultCode.PENDING_SETTLEMENT:
                closing[result.tx_id] = tx.id
        for event in (r for r in out.results if r.event and r.tx_id in closing):
            rid = closing.pop(event.tx_id)
            ends[rid] = ends.get(rid, 0) + 1
            assert repo(store, rid).status is _END[event.code]  # type: ignore[union-attr]
        assert all(n == 1 for n in ends.values()), ends
