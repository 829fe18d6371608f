"""The client port's identity and access decisions (node/access.py, node/runtime/_access.py):
who is the caller, and who may read which account and which transaction. Each rule is
shown both ways: the case it allows and the case it refuses."""

from __future__ import annotations

import dataclasses
from typing import Any

import grpc
import pytest

from client import AsyncLedgerClient, Endpoint, ParticipantKey
from node.access import (
    METADATA_PARTICIPANT,
    AccessError,
    Caller,
    may_read_account,
    may_read_holders,
    may_read_pending,
    may_read_tx,
    parse_claim,
    signed_metadata,
    tx_parties,
    verify_claim,
)
from node.netconfig import node_name
from node.runtime._access import Gate, GateFullError
from node.runtime._node import wall_ms
from node.settlement import Registry
from node.wire import ledger_pb2 as pb
from tests.ledger_helpers import TxFactory, pinned_tls, shared_net
from tests.life_helpers import LifeTx, life_net

NET = shared_net()
G = NET.genesis
M = _BALANCES = "/ledger.v1.Ledger/GetBalances"
NODE = "val00"  # the validator (genesis id) each call here is signed for
T0 = 1_800_000_000_000
SKEW = 1_000


def _md(
    pid: str = "BANK01",
    *,
    key_of: str | None = None,
    method: str = M,
    request: bytes = b"req",
    time_ms: int = T0,
    nonce: bytes = b"n" * 16,
    chain_id: str = G.chain_id,
    node: str = NODE,
) -> tuple[tuple[str, str], ...]:
    key = NET.participant_keys[key_of or pid]
    return signed_metadata(
        key, pid, chain_id, method, request, node=node, time_ms=time_ms, nonce=nonce
    )


def _caller(md: tuple[tuple[str, str], ...], method: str = M, request: bytes = b"req") -> Caller:
    return verify_claim(parse_claim(md), G, NODE, method, request)


# --- who is calling -------------------------------------------------------------------------


def test_a_signed_request_proves_its_participant_and_the_key_it_signed_with() -> None:
    key = NET.participant_keys["BANK01"].public_key  # an open stream ends once it is rotated
    assert _caller(_md("BANK01")) == Caller("BANK01", observer=False, key=key)


@pytest.mark.parametrize("pid", ["REGULATOR", "COMPLIANCE", "AUDITOR"])
def test_observer_roles_are_observers(pid: str) -> None:
    assert _caller(_md(pid)).observer


@pytest.mark.parametrize("pid", ["BANK01", "CSD", "TREASURY", "CASHCO"])
def test_holding_roles_are_not_observers(pid: str) -> None:
    assert not _caller(_md(pid)).observer


@pytest.mark.parametrize(
    ("what", "md", "method", "request_bytes"),
    [
        ("another participant's key", _md("BANK01", key_of="BANK02"), M, b"req"),
        ("another method", _md(), "/ledger.v1.Ledger/GetBlock", b"req"),
        ("another request", _md(), M, b"req2"),
        ("another chain", _md(chain_id="other-chain"), M, b"req"),
        ("another node", _md(node="val01"), M, b"req"),
    ],
)
def test_a_signature_over_anything_else_is_refused(
    what: str, md: tuple[tuple[str, str], ...], method: str, request_bytes: bytes
) -> None:
    _caller(_md(), M, b"req")  # negative control: the same call, signed right, passes
    with pytest.raises(AccessError, match="does not verify"):
        _caller(md, method, request_bytes)


def test_an_unknown_participant_is_refused() -> None:
    md = (("ledger-participant", "NOBODY"), *_md()[1:])
    with pytest.raises(AccessError, match="not a participant"):
        _caller(md)


@pytest.mark.parametrize(
    ("md", "match"),
    [
        ((), "no identity"),
        ((("ledger-time-ms", "1"),), "no identity"),
        ((*_md(), (METADATA_PARTICIPANT, "BANK01")), "once"),
        (tuple((k, "zz" if k == "ledger-nonce" else v) for k, v in _md()), "malformed"),
        (tuple((k, "" if k == "ledger-nonce" else v) for k, v in _md()), "nonce"),
        (tuple((k, "-5" if k == "ledger-time-ms" else v) for k, v in _md()), "range"),
    ],
)
def test_missing_or_malformed_identity_is_refused(
    md: tuple[tuple[str, str], ...], match: str
) -> None:
    with pytest.raises(AccessError, match=match):
        parse_claim(md)


# --- the gate: time window and replays ------------------------------------------------------


def _gate(now: list[int], nonces_max: int = 100) -> Gate:
    return Gate(
        lambda: Registry.at_genesis(G), lambda: now[0], NODE, skew_ms=SKEW, nonces_max=nonces_max
    )


@pytest.mark.parametrize("offset", [-SKEW, 0, SKEW])
def test_a_request_within_the_clock_window_is_taken(offset: int) -> None:
    gate = _gate([T0])
    assert gate.admit(M, b"req", _md(time_ms=T0 + offset)).participant == "BANK01"


@pytest.mark.parametrize("offset", [-SKEW - 1, SKEW + 1])
def test_a_request_outside_the_clock_window_is_refused(offset: int) -> None:
    with pytest.raises(AccessError, match="window"):
        _gate([T0]).admit(M, b"req", _md(time_ms=T0 + offset))


def test_a_replay_is_refused_until_its_time_leaves_the_window() -> None:
    now = [T0]
    gate = _gate(now)
    gate.admit(M, b"req", _md())
    gate.admit(M, b"req", _md(nonce=b"m" * 16))  # negative control: another nonce is taken
    gate.admit(M, b"req", _md("BANK02"))  # and the same nonce of another participant
    with pytest.raises(AccessError, match="replayed"):
        gate.admit(M, b"req", _md())
    now[0] = T0 + SKEW  # still inside the window: still remembered
    with pytest.raises(AccessError, match="replayed"):
        gate.admit(M, b"req", _md())
    now[0] = T0 + SKEW + 1  # forgotten, and refused by time instead
    with pytest.raises(AccessError, match="window"):
        gate.admit(M, b"req", _md())
    gate.admit(M, b"req", _md(time_ms=now[0], nonce=b"o" * 16))
    assert len(gate) == 1  # the three from T0 aged out


def test_a_full_nonce_memory_refuses_rather_than_forgets() -> None:
    gate = _gate([T0], nonces_max=2)
    gate.admit(M, b"req", _md(nonce=b"a"))
    gate.admit(M, b"req", _md(nonce=b"b"))
    with pytest.raises(GateFullError):
        gate.admit(M, b"req", _md(nonce=b"c"))
    with pytest.raises(AccessError, match="replayed"):
        gate.admit(M, b"req", _md(nonce=b"a"))


def test_a_participants_share_of_nonces_frees_as_they_age_out() -> None:
    now = [T0]
    gate = Gate(
        lambda: Registry.at_genesis(G), lambda: now[0], NODE, skew_ms=SKEW, participant_nonces_max=2
    )
    gate.admit(M, b"req", _md(nonce=b"a"))
    gate.admit(M, b"req", _md(nonce=b"b"))
    with pytest.raises(GateFullError) as refused:
        gate.admit(M, b"req", _md(nonce=b"c"))
    assert refused.value.limit == "request nonces per participant"
    gate.admit(M, b"req", _md("BANK02"))  # negative control: another participant is taken
    now[0] = T0 + SKEW + 1  # BANK01's two have left the window: its share is whole again
    gate.admit(M, b"req", _md(time_ms=now[0], nonce=b"c"))
    gate.admit(M, b"req", _md(time_ms=now[0], nonce=b"d"))
    assert len(gate) == 2


def test_a_gate_takes_calls_signed_for_its_own_node_only() -> None:
    """ADR 0015, session 23: a node's operator holding a participant's call (signed for
    its node) cannot spend it at another node, whose nonce memory has never seen it."""
    ours = _gate([T0])
    theirs = Gate(lambda: Registry.at_genesis(G), lambda: T0, "val01", skew_ms=SKEW)
    md = _md()  # signed for NODE (val00)
    with pytest.raises(AccessError, match="another node than val01"):
        theirs.admit(M, b"req", md)
    assert ours.admit(M, b"req", md).participant == "BANK01"  # control: where it was sent
    assert theirs.admit(M, b"req", _md(node="val01")).participant == "BANK01"  # and there
    assert len(theirs) == 1  # the refused call took no memory


async def test_the_sdk_signs_each_call_for_the_node_it_goes_to() -> None:
    """The SDK's calls fail over between nodes; each is signed for the validator whose
    pinned certificate carries the TLS name of the endpoint it is sent to, so the node it
    lands on takes it. The endpoints are listed out of genesis order (validators 2, 0, 1),
    and the first is down."""
    pinned, certs = pinned_tls(NET)
    key = ParticipantKey("BANK01", NET.participant_keys["BANK01"])
    order = (2, 0, 1)
    n = len(pinned.genesis.validators)
    endpoints = [Endpoint(f"127.0.0.1:{v + 1}", node_name(v, n)) for v in order]
    client = AsyncLedgerClient(endpoints, tls_certs=certs, genesis=pinned.genesis, identity=key)
    ids = [pinned.genesis.validators[v].id for v in order]
    gates = [Gate(lambda: Registry.at_genesis(pinned.genesis), wall_ms, v) for v in ids]
    sent: list[tuple[int, Any]] = []

    class _Node:
        def __init__(self, i: int) -> None:
            self.i = i

        async def GetBalances(self, req: Any, *, metadata: Any, **kw: Any) -> Any:
            sent.append((self.i, metadata))
            if self.i == 0:
                code = grpc.StatusCode.UNAVAILABLE
                raise grpc.aio.AioRpcError(code, grpc.aio.Metadata(), grpc.aio.Metadata(), "down")
            gates[self.i].admit(_BALANCES, req.SerializeToString(), metadata)
            return pb.Balances(account=req.account, height=1)

    client._stub = _Node  # type: ignore[assignment,method-assign]
    try:
        assert (await client.balances("BANK01")).account == "BANK01"
    finally:
        await client.aclose()
    assert [i for i, _ in sent] == [0, 1]
    request = pb.BalancesRequest(account="BANK01").SerializeToString()
    with pytest.raises(AccessError, match="another node"):  # control: node 0's call
        gates[1].admit(_BALANCES, request, sent[0][1])


def test_a_call_relabeled_to_a_participant_sharing_the_key_is_refused() -> None:
    """Participants may share a key (genesis and governance do not forbid it): the
    signature names the participant too, so a call BANK01 signed cannot be passed off as
    BANK02's, which would read BANK02's balances with BANK02's rights."""
    shared = NET.participant_keys["BANK01"].public_key
    twin = dataclasses.replace(G.participant_by_id["BANK02"], public_key=shared)
    reg = Registry.from_values(G, [twin], G.instruments)
    md = _md("BANK01")
    assert verify_claim(parse_claim(md), reg, NODE, M, b"req").participant == "BANK01"
    relabeled = ((METADATA_PARTICIPANT, "BANK02"), *md[1:])
    with pytest.raises(AccessError, match="does not verify"):
        verify_claim(parse_claim(relabeled), reg, NODE, M, b"req")
    signed_as_twin = _md("BANK02", key_of="BANK01")  # control: BANK02's own call, same key
    assert verify_claim(parse_claim(signed_as_twin), reg, NODE, M, b"req").participant == "BANK02"


def test_a_bad_signature_takes_no_nonce_memory() -> None:
    gate = _gate([T0], nonces_max=1)
    with pytest.raises(AccessError, match="does not verify"):
        gate.admit(M, b"req", _md(key_of="BANK02"))
    assert len(gate) == 0
    gate.admit(M, b"req", _md())


# --- who may read what ----------------------------------------------------------------------

BANK01, BANK03 = Caller("BANK01", False), Caller("BANK03", False)
AUDITOR = Caller("AUDITOR", True)


def test_balances_go_to_their_account_and_to_observers() -> None:
    assert may_read_account(BANK01, "BANK01")
    assert not may_read_account(BANK01, "BANK02")
    assert may_read_account(AUDITOR, "BANK02")


def test_the_parties_of_each_kind_are_the_participants_its_body_names() -> None:
    txf = TxFactory(NET)
    bond = NET.bonds[0]
    cases = {
        "dvp": (txf.dvp("BANK01", "BANK02"), {"BANK01", "BANK02"}),
        "transfer": (txf.transfer(sender="BANK01", receiver="BANK03"), {"BANK01", "BANK03"}),
        "mint": (txf.mint(instrument=bond, to="BANK04", by="TREASURY"), {"BANK04", "TREASURY"}),
        "burn": (txf.burn(instrument=bond, holder="BANK05", by="TREASURY"), {"BANK05", "TREASURY"}),
    }
    for what, (tx, parties) in cases.items():
        assert tx_parties(txf.signed(tx), G) == parties, what


def test_a_transaction_goes_to_its_parties_and_to_observers() -> None:
    raw = TxFactory(NET).signed(TxFactory(NET).dvp("BANK01", "BANK02"))
    assert may_read_tx(BANK01, raw, G)
    assert not may_read_tx(BANK03, raw, G)
    assert may_read_tx(AUDITOR, raw, G)


def test_an_undecodable_transaction_names_nobody() -> None:
    assert tx_parties(b"\x00garbage", G) == frozenset()
    assert not may_read_tx(BANK01, b"\x00garbage", G)
    assert may_read_tx(AUDITOR, b"\x00garbage", G)


def test_an_instruments_corporate_actions_are_public_to_participants() -> None:
    """A coupon, a distribution or a redemption of every holder names no holder: every
    participant may read it (what each received stays in its private balances); a
    holder's own redemption stays between the holder and observers."""
    lt = LifeTx(life_net())
    g = lt.net.genesis
    for raw in (lt.coupon(1), lt.distribute(1, 100), lt.redeem_all()):
        assert may_read_tx(BANK03, raw, g)
    own = lt.redeem("BANK01")
    assert may_read_tx(BANK01, own, g) and not may_read_tx(BANK03, own, g)


def test_a_pending_trade_goes_to_its_parties_and_to_observers() -> None:
    assert may_read_pending(BANK01, "BANK01", "BANK02")
    assert may_read_pending(Caller("BANK02", False), "BANK01", "BANK02")
    assert not may_read_pending(BANK03, "BANK01", "BANK02")
    assert may_read_pending(AUDITOR, "BANK01", "BANK02")


def test_an_instruments_holders_go_to_its_issuer_agent_and_observers() -> None:
    g = life_net(paying_agent="BANK05").genesis
    bond = next(i for i in g.instruments if i.paying_agent == "BANK05")
    assert may_read_holders(Caller(bond.issuer, False), bond.id, g)
    assert may_read_holders(Caller("BANK05", False), bond.id, g)
    assert may_read_holders(AUDITOR, bond.id, g)
    assert not may_read_holders(BANK03, bond.id, g)
    assert not may_read_holders(BANK03, "XX.NONE", g)
