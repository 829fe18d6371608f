"""Review 34t: teeth for the transport's neighbours, found by their first mutation runs
(docs/testing.md, "The peer transport and its neighbours"): velocity alerts
(node/runtime/_velocity.py) and the client port's gate (node/runtime/_access.py).
Each test shows the rule both ways, the case it allows beside the case it refuses.
"""

from __future__ import annotations

import dataclasses

import pytest

from node.access import AccessError, Caller, signed_metadata
from node.config import VELOCITY_EVENTS_MAX
from node.runtime._access import Gate, GateFullError, current_caller
from node.runtime._velocity import VelocityWatch, moves_of
from node.settlement import Registry, ResultCode, Transaction, TxResult
from tests.kyc_helpers import kyc_net
from tests.ledger_helpers import TxFactory, shared_net

# --- velocity ------------------------------------------------------------------------------

KYC = kyc_net()
FUND = "FUND.TBILL"


def _registry() -> Registry:
    return Registry.at_genesis(KYC.genesis)


def _ok(txs: list[Transaction]) -> list[TxResult]:
    return [TxResult(b"\0" * 32, ResultCode.OK, recorded=True) for _ in txs]


def _name(*parts: str) -> str:
    """An account name built at run time: a string object of its own, as a decoded
    transaction's is (a literal is one interned object wherever it is written)."""
    return "".join(parts)


def test_what_each_kind_of_transaction_counts_as() -> None:
    """A transfer or mint of the cash token counts its amount as value; of a bond or fund
    it counts as a move of no value (a fund's kind sorts after cash, a bond's before)."""
    txf, reg = TxFactory(KYC), _registry()
    assert moves_of(reg, txf.transfer("BANK01", "BANK02", 7)) == [
        ("BANK01", KYC.cash, 7),
        ("BANK02", KYC.cash, 7),
    ]
    assert moves_of(reg, txf.transfer("BANK01", "BANK02", 7, instrument=FUND)) == [
        ("BANK01", "", 0),
        ("BANK02", "", 0),
    ]
    assert moves_of(reg, txf.mint("BANK03", 40, instrument=KYC.cash)) == [("BANK03", KYC.cash, 40)]
    assert moves_of(reg, txf.mint("BANK03", 40, instrument=FUND)) == [("BANK03", "", 0)]
    assert moves_of(reg, txf.mint("BANK03", 40)) == [("BANK03", "", 0)]  # a bond
    assert moves_of(reg, None) == []


def test_a_move_leaves_the_window_exactly_window_ms_later() -> None:
    """The window is (t - window_ms, t]: a move at t - window_ms is out of it."""
    watch = VelocityWatch(_registry, window_ms=1_000, txs_max=1, value_max=10**12)
    assert watch.observe(0, [("A", "", 0)]) == []
    assert watch.observe(1_000, [("A", "", 0)]) == []  # the first has left: one move
    (alert,) = watch.observe(1_999, [("A", "", 0)])  # the second has not: two
    assert (alert.rule, alert.observed) == ("count", 2)


def test_the_memory_bound_holds_at_its_configured_size() -> None:
    """At most VELOCITY_EVENTS_MAX moves are kept per account (the oldest dropped): a block
    of one more reports the bound, not the moves it was given."""
    watch = VelocityWatch(_registry, txs_max=10)
    (alert,) = watch.observe(0, [("A", "", 0)] * (VELOCITY_EVENTS_MAX + 1))
    assert alert.observed == VELOCITY_EVENTS_MAX


@pytest.mark.parametrize("objects", ["one", "each-time"])
def test_a_value_alert_ends_when_its_token_leaves_the_window_and_fires_again(
    objects: str,
) -> None:
    """An account over the value bound in a token whose moves all left the window (the
    token's sum gone from the window) is within the bound again: its next crossing is a
    new episode and alerts, whether one string object names the account throughout or a
    new one each time (as decoded transactions do)."""
    one = _name("BA", "NK01")

    def account() -> str:
        return one if objects == "one" else _name("BANK", "01")

    watch = VelocityWatch(_registry, window_ms=1_000, txs_max=100, value_max=100)
    (first,) = watch.observe(0, [(account(), "USD", 150)])
    assert (first.rule, first.cash) == ("value", "USD")
    assert watch.observe(2_000, [(account(), "EUR", 1)]) == []  # USD has left
    (again,) = watch.observe(2_001, [(account(), "USD", 150)])
    assert (again.account, again.rule, again.cash) == ("BANK01", "value", "USD")
    # Control: without leaving the window, a second crossing is the same episode.
    assert watch.observe(2_002, [(account(), "USD", 150)]) == []


def test_an_alert_once_made_cannot_be_changed() -> None:
    (alert,) = VelocityWatch(_registry, txs_max=0).observe(0, [("A", "", 0)])
    with pytest.raises(dataclasses.FrozenInstanceError):
        alert.observed = 0  # type: ignore[misc]


def test_only_settled_recorded_results_count() -> None:
    """A refused trade moved nothing, whatever its code (the highest code included)."""
    txf = TxFactory(KYC)
    watch = VelocityWatch(_registry, txs_max=0, value_max=10**12)
    trade = txf.dvp("BANK01", "BANK02", amount=5)
    for code in sorted(ResultCode):
        if code is not ResultCode.OK:
            assert watch.block(0, [trade], [TxResult(b"\0" * 32, code, recorded=True)]) == []
    assert [a.account for a in watch.block(0, [trade], _ok([trade]))] == ["BANK01", "BANK02"]


# --- the gate ------------------------------------------------------------------------------

NET = shared_net()
G = NET.genesis
M = "/ledger.v1.Ledger/GetBalances"
NODE = "val00"
T0 = 1_800_000_000_000
SKEW = 1_000


def _md(
    pid: str = "BANK01", *, time_ms: int = T0, nonce: bytes = b"n" * 16
) -> tuple[tuple[str, str], ...]:
    key = NET.participant_keys[pid]
    return signed_metadata(key, pid, G.chain_id, M, b"req", node=NODE, time_ms=time_ms, nonce=nonce)


def _gate(now: list[int], **limits: int) -> Gate:
    return Gate(lambda: Registry.at_genesis(G), lambda: now[0], NODE, skew_ms=SKEW, **limits)


def test_a_call_forgotten_before_the_clock_stepped_back_is_not_taken_again() -> None:
    """Scenario: BANK01's call at T0 is remembered until T0 + SKEW; the node forgets it at
    T0 + SKEW + 1, then its wall clock steps back SKEW ms (an NTP correction). The call's
    time is inside the window again: it was taken a second time. Now a call timed before
    what the memory still covers is refused; a fresh one is taken."""
    now = [T0]
    gate = _gate(now)
    call = _md()
    gate.admit(M, b"req", call)
    now[0] = T0 + SKEW + 1
    gate.admit(M, b"req", _md(time_ms=now[0], nonce=b"m" * 16))  # the gate forgets the first
    now[0] = T0 + 1  # stepped back
    with pytest.raises(AccessError, match="stepped back"):
        gate.admit(M, b"req", call)
    assert gate.admit(M, b"req", _md(time_ms=now[0], nonce=b"o" * 16)).participant == "BANK01"


def test_the_refusal_of_a_skewed_call_says_by_how_much() -> None:
    with pytest.raises(AccessError, match=r"is \+1001 ms from this node's clock"):
        _gate([T0]).admit(M, b"req", _md(time_ms=T0 + SKEW + 1))
    with pytest.raises(AccessError, match=r"is -1001 ms from this node's clock"):
        _gate([T0]).admit(M, b"req", _md(time_ms=T0 - SKEW - 1))


@pytest.mark.parametrize("limit", ["nonces_max", "participant_nonces_max"])
def test_a_nonce_limit_above_small_integers_holds(limit: str) -> None:
    """The limits are compared by value: 300 calls fill a memory of 300 (the count is
    computed, never the same int object as the limit), the next is refused."""
    gate = _gate([T0], **{limit: 300})
    for k in range(300):
        gate.admit(M, b"req", _md(nonce=k.to_bytes(16, "big")))
    with pytest.raises(GateFullError):
        gate.admit(M, b"req", _md(nonce=b"x" * 16))


def test_nonces_are_forgotten_oldest_first_whatever_order_they_came_in() -> None:
    """Calls timed T0 + 2, T0 + 1 and T0 (three of BANK01's share of three); at T0 + SKEW
    + 2 the two oldest have left the window and their places are free, the newest's not."""
    now = [T0 + 2]
    gate = _gate(now, participant_nonces_max=3)
    for k in (2, 1, 0):
        gate.admit(M, b"req", _md(time_ms=T0 + k, nonce=bytes([k]) * 16))
    now[0] = T0 + SKEW + 2
    gate.admit(M, b"req", _md(time_ms=now[0], nonce=b"a" * 16))
    gate.admit(M, b"req", _md(time_ms=now[0], nonce=b"b" * 16))
    with pytest.raises(GateFullError):
        gate.admit(M, b"req", _md(time_ms=now[0], nonce=b"c" * 16))
    assert len(gate) == 3


def test_enter_makes_the_caller_current_through_the_instance() -> None:
    """The handlers call ``gate.enter(caller)`` on their gate."""
    gate = _gate([T0])
    caller: Caller = gate.admit(M, b"req", _md())
    gate.enter(caller)
    assert current_caller() is caller
