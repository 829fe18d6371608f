"""Property (issue 15 item 1): governance histories keep the registry consistent.

Random histories of governance transactions (additions, role and tier changes, key
rotations, instruments, caps), some signed by one admin only (k - 1) or by a non-admin,
some repeating an id or with a stale attestation, split into random blocks. An
independent model applies the documented rules (docs/ledger.md "Governance") in order;
after every block the registry read from the store must equal the model: every
participant and instrument, the ids in order, the attestations and the counts of
additions; and a block whose every transaction was refused must write no record. The
negative control runs the same oracle against a ledger that ignores the admin quorum and
requires it to fire.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from node import crypto
from node.genesis import DEMO_ADMINS
from node.settlement import (
    BlockContext,
    Instrument,
    Participant,
    Registry,
    ResultCode,
    Role,
    _gov,
    apply_block,
)
from node.store import MemoryStore
from tests.gov_helpers import (
    Gov,
    add_instrument,
    add_participant,
    cash_token,
    new_key,
    rotate,
    set_cap,
    set_roles,
    set_tier,
    signed,
)
from tests.ledger_helpers import TxFactory, shared_net

NET = shared_net()
G = NET.genesis
IDS = ["BANK01", "BANK02", "BANK90", "BANK91", "BANK92"]  # two exist, three may be added
CASH_IDS = ["EUR.CASHCO", "GBP.CASHCO", NET.cash]
SIGNERS = [DEMO_ADMINS[:2], DEMO_ADMINS[1:], DEMO_ADMINS[:1], ("BANK01", "CSD"), DEMO_ADMINS]
K = G.admin_threshold


@dataclass
class Model:
    """The reference data by the documented rules, independently of node/settlement."""

    participants: dict[str, Participant] = field(default_factory=lambda: dict(G.participant_by_id))
    instruments: dict[str, Instrument] = field(default_factory=lambda: dict(G.instrument_by_id))
    attested: dict[str, int] = field(default_factory=dict)
    added: list[int] = field(default_factory=lambda: [0, 0])

    def apply(self, tx: Gov, supply: dict[str, int], now_ms: int) -> bool:
        if not set(tx.admins) <= set(G.admins) or len(tx.admins) < K:
            return False
        return self._change(tx, supply, now_ms)

    def _change(self, tx: Gov, supply: dict[str, int], now_ms: int) -> bool:
        ps, insts = self.participants, self.instruments
        match tx:
            case _ if hasattr(tx, "participant") and isinstance(tx.participant, Participant):
                if tx.participant.id in ps:
                    return False
                ps[tx.participant.id] = tx.participant
                self.added[0] += 1
            case _ if hasattr(tx, "roles"):
                if tx.participant not in ps:
                    return False
                ps[tx.participant] = dataclasses.replace(ps[tx.participant], roles=tx.roles)
            case _ if hasattr(tx, "kyc_tier"):
                if tx.participant not in ps:
                    return False
                ps[tx.participant] = dataclasses.replace(ps[tx.participant], kyc_tier=tx.kyc_tier)
            case _ if hasattr(tx, "public_key"):
                p = ps.get(tx.participant)
                if p is None or p.public_key == tx.public_key:
                    return False
                ps[tx.participant] = dataclasses.replace(p, public_key=tx.public_key)
            case _ if isinstance(getattr(tx, "instrument", None), Instrument):
                if tx.instrument.id in insts:
                    return False
                insts[tx.instrument.id] = tx.instrument
                self.added[1] += 1
            case _:
                inst, last = insts.get(tx.instrument), self.attested.get(tx.instrument)
                if (
                    inst is None
                    or tx.as_of_ms > now_ms
                    or (last is not None and tx.as_of_ms <= last)
                ):
                    return False
                if tx.cap < supply.get(tx.instrument, 0):
                    return False
                insts[tx.instrument] = dataclasses.replace(inst, max_supply=tx.cap)
                self.attested[tx.instrument] = tx.as_of_ms
        return True


@st.composite
def _tx(draw: st.DrawFn, txf: TxFactory) -> Gov:
    admins = draw(st.sampled_from(SIGNERS))
    pid = draw(st.sampled_from(IDS))
    kind = draw(st.sampled_from(["add", "roles", "tier", "rotate", "instrument", "cap"]))
    if kind == "add":
        return add_participant(txf, pid, new_key(pid), tier=draw(st.integers(0, 3)), admins=admins)
    if kind == "roles":
        roles = frozenset(draw(st.sets(st.sampled_from(list(Role)), max_size=2)))
        return set_roles(txf, pid, roles, admins=admins)
    if kind == "tier":
        return set_tier(txf, pid, draw(st.integers(0, 3)), admins=admins)
    if kind == "rotate":
        return rotate(txf, pid, new_key(f"{pid}/{draw(st.integers(0, 3))}"), admins=admins)
    cid = draw(st.sampled_from(CASH_IDS))
    if kind == "instrument":
        return add_instrument(txf, cash_token(cid, cid[:3]), admins=admins)
    cap = draw(st.sampled_from([1, 10**12, 10**15]))
    as_of = G.genesis_time_ms + draw(st.integers(0, 5)) * 1000
    return set_cap(txf, cid, cap, as_of, admins=admins)


@st.composite
def _history(draw: st.DrawFn) -> list[list[Gov]]:
    txf = TxFactory(NET)
    txs = draw(st.lists(_tx(txf), min_size=1, max_size=25))
    cuts = sorted(draw(st.sets(st.integers(1, len(txs)), max_size=4)) | {len(txs)})
    return [txs[a:b] for a, b in zip([0, *cuts], cuts, strict=False) if txs[a:b]]


class Divergence(AssertionError):
    pass


def _run(blocks: list[list[Gov]]) -> None:
    store, model = MemoryStore(G), Model()
    for height, block in enumerate(blocks, 1):
        now = G.genesis_time_ms + height * 1000
        raws = [signed(NET, tx) for tx in block]
        supply = {i: store.supply(i) for i in model.instruments}
        out = apply_block(store, raws, BlockContext(height, now))
        store.commit_block(crypto.sha256(bytes([height])), b"", b"", BlockContext(height, now), out)
        oks = [model.apply(tx, supply, now) for tx in block]
        codes = [r.code is ResultCode.OK for r in out.results if not r.event]
        _check(store, model, codes, oks, out.records)


def _check(
    store: MemoryStore,
    model: Model,
    codes: list[bool],
    oks: list[bool],
    written: dict[bytes, bytes | None],
) -> None:
    reg = Registry.of(store)
    if codes != oks:
        raise Divergence(f"ledger OKs {codes}, model {oks}")
    if not any(codes) and written:
        raise Divergence("a block of refusals wrote records")
    if reg.participant_ids != tuple(sorted(model.participants)):
        raise Divergence(f"participants {reg.participant_ids}")
    for pid, p in model.participants.items():
        if reg.participant(pid) != p:
            raise Divergence(f"{pid}: {reg.participant(pid)} != {p}")
    for iid, inst in model.instruments.items():
        if reg.instrument(iid) != inst:
            raise Divergence(f"{iid}: {reg.instrument(iid)} != {inst}")
    attested = {i: a[0] for i in model.instruments if (a := reg.attestation(i))}
    if attested != model.attested or list(reg.added()) != model.added:
        raise Divergence(f"attested {attested} added {reg.added()}")


@settings(max_examples=60, deadline=None)
@given(_history())
def test_governance_histories_keep_the_registry_consistent(blocks: list[list[Gov]]) -> None:
    _run(blocks)


def test_the_oracle_fires_when_the_quorum_is_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    """Negative control: a ledger that takes one admin's signature diverges from the
    model, and the oracle says so."""
    monkeypatch.setattr(_gov, "quorum", lambda reg, tx: True)
    txf = TxFactory(NET)
    with pytest.raises(Divergence, match="ledger OKs"):
        _run([[add_participant(txf, "BANK90", admins=DEMO_ADMINS[:1])]])
