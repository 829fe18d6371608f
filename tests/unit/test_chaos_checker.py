"""The chaos checker, its negative controls, the fault schedule, the report and the proxy.

The checker is fed a consistent hand-built history (it must pass), then copies doctored
one way each (an acknowledged trade missing, two roots, a duplicate, two results, a lying
index, a lying receipt, supply off): each must make its rule fire.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from client import OverloadedError
from devtools.chaos import checker, report
from devtools.chaos.checker import ValidatorView, check
from devtools.chaos.nemesis import FAULT_KINDS, FaultRecord, plan
from devtools.chaos.proxy import Proxy, proxy_port
from devtools.chaos.workload import TradeRecord
from devtools.netgen import NetgenError, free_port_base

SUPPLY = {"BOND": 1_000, "CASH": 5_000}
T0 = 1_700_000_000_000_000


def history() -> list[TradeRecord]:
    return [
        TradeRecord("aa" * 32, "DVP", 0, T0, T0 + 1, "node-0", T0 + 50_000, "OK", 1),
        TradeRecord("bb" * 32, "TRANSFER", 1, T0 + 10, T0 + 11, "node-1", T0 + 60_000, "OK", 2),
        TradeRecord("cc" * 32, "DVP", 0, T0 + 20, None, None, None, None, None, "submit: down"),
        # Acknowledged, no receipt in time, yet committed: fine.
        TradeRecord("dd" * 32, "DVP", 1, T0 + 30, T0 + 31, "node-0", None, None, None, "wait"),
    ]


def view(node: str) -> ValidatorView:
    return ValidatorView(
        node=node,
        height=2,
        state_root="55" * 32,
        block_hashes=["01" * 32, "02" * 32],
        block_times_ms=[T0 // 1000 + 40, T0 // 1000 + 55],
        occurrences={
            "aa" * 32: [(1, 0, "OK")],
            "bb" * 32: [(2, 0, "OK")],
            "dd" * 32: [(2, 1, "INSUFFICIENT_CASH")],
        },
        index={
            "aa" * 32: ("COMMITTED", 1, "OK"),
            "bb" * 32: ("COMMITTED", 2, "OK"),
            "dd" * 32: ("COMMITTED", 2, "INSUFFICIENT_CASH"),
        },
        supply=dict(SUPPLY),
        balances_height=2,
    )


def views() -> list[ValidatorView]:
    return [view(f"node-{i}") for i in range(4)]


def test_a_consistent_history_passes() -> None:
    assert check(history(), views(), SUPPLY) == []


def _doctor(fn: Callable[[list[TradeRecord], list[ValidatorView]], None]) -> list[str]:
    h, vs = history(), views()
    fn(h, vs)
    return [v.rule for v in check(h, vs, SUPPLY)]


def test_an_acknowledged_trade_missing_on_one_validator_fires() -> None:
    def doctor(h: list[TradeRecord], vs: list[ValidatorView]) -> None:
        del vs[2].occurrences["aa" * 32]

    assert "exactly-once" in _doctor(doctor)


def test_an_acknowledged_trade_missing_everywhere_fires() -> None:
    def doctor(h: list[TradeRecord], vs: list[ValidatorView]) -> None:
        h.append(TradeRecord("ee" * 32, "DVP", 0, T0, T0 + 1, "node-3", None, None, None, "wait"))

    assert _doctor(doctor) == ["exactly-once"]


def test_a_missing_unacknowledged_trade_is_allowed() -> None:
    def doctor(h: list[TradeRecord], vs: list[ValidatorView]) -> None:
        h.append(TradeRecord("ee" * 32, "DVP", 0, T0, None, None, None, None, None, "submit"))

    assert _doctor(doctor) == []


def test_two_state_roots_fire() -> None:
    def doctor(h: list[TradeRecord], vs: list[ValidatorView]) -> None:
        vs[1].state_root = "66" * 32

    assert _doctor(doctor) == ["agreement"]


def test_a_fork_and_a_lagging_validator_fire() -> None:
    def fork(h: list[TradeRecord], vs: list[ValidatorView]) -> None:
        vs[3].block_hashes[1] = "ff" * 32

    def lag(h: list[TradeRecord], vs: list[ValidatorView]) -> None:
        vs[0].height = 1

    assert _doctor(fork) == ["agreement"]
    assert "agreement" in _doctor(lag)


def test_an_unobserved_validator_fires() -> None:
    def doctor(h: list[TradeRecord], vs: list[ValidatorView]) -> None:
        vs[0] = ValidatorView("node-0", error="UnavailableError: down")

    assert _doctor(doctor) == ["agreement"]


def test_a_trade_committed_twice_fires() -> None:
    def doctor(h: list[TradeRecord], vs: list[ValidatorView]) -> None:
        for v in vs:
            v.occurrences["bb" * 32].append((2, 3, "DUPLICATE"))

    assert "exactly-once" in _doctor(doctor)


def test_two_results_for_one_trade_fire() -> None:
    def doctor(h: list[TradeRecord], vs: list[ValidatorView]) -> None:
        vs[1].occurrences["cc" * 32] = [(2, 2, "OK")]  # never acknowledged, still checked

    def code(h: list[TradeRecord], vs: list[ValidatorView]) -> None:
        vs[2].occurrences["aa" * 32] = [(1, 0, "INSUFFICIENT_CASH")]

    assert _doctor(doctor) == ["one-result"]
    assert "one-result" in _doctor(code)


def test_the_head_blocks_trade_included_but_not_yet_proven_passes() -> None:
    """The SDK says INCLUDED, not COMMITTED, until the next block proves the result (ADR
    0024): at the end of a run that is the head block's trades. Control: a wrong height."""

    def included(h: list[TradeRecord], vs: list[ValidatorView]) -> None:
        vs[0].index["bb" * 32] = ("INCLUDED", 2, "OK")

    def elsewhere(h: list[TradeRecord], vs: list[ValidatorView]) -> None:
        vs[0].index["bb" * 32] = ("INCLUDED", 1, "OK")

    assert _doctor(included) == []
    assert _doctor(elsewhere) == ["one-result"]


def test_a_lying_index_or_receipt_fires() -> None:
    def index(h: list[TradeRecord], vs: list[ValidatorView]) -> None:
        vs[0].index["bb" * 32] = ("PENDING", None, None)

    def receipt(h: list[TradeRecord], vs: list[ValidatorView]) -> None:
        h[0].code = "INSUFFICIENT_SECURITIES"

    assert _doctor(index) == ["one-result"]
    assert set(_doctor(receipt)) == {"one-result"}


def test_supply_off_genesis_fires() -> None:
    def doctor(h: list[TradeRecord], vs: list[ValidatorView]) -> None:
        vs[2].supply["CASH"] += 1

    def torn(h: list[TradeRecord], vs: list[ValidatorView]) -> None:
        vs[1].balances_height = -1

    assert _doctor(doctor) == ["conservation"]
    assert _doctor(torn) == ["conservation"]


# --- the schedule ----------------------------------------------------------------------------


def test_the_schedule_is_a_function_of_the_seed_and_respects_n_minus_q() -> None:
    a = plan(1, 26, 16, FAULT_KINDS, faults_max=200)
    assert a == plan(1, 26, 16, FAULT_KINDS, faults_max=200)
    assert a != plan(2, 26, 16, FAULT_KINDS, faults_max=200)
    assert all(1 <= f.count <= 10 for f in a)
    assert all(len(f.nodes) == f.count for f in a if not f.kind.endswith("-leaders"))
    assert {f.kind for f in a} == set(FAULT_KINDS)
    assert {f.kind for f in plan(1, 4, 3, ["pause"], faults_max=20)} == {"pause"}
    with pytest.raises(ValueError, match="fault kinds"):
        plan(1, 4, 3, ["meteor"])
    with pytest.raises(ValueError, match="n - q = 0"):
        plan(1, 4, 4, ["pause"])


# --- the report ------------------------------------------------------------------------------


def test_recovery_and_window_latency() -> None:
    s = 1_000_000
    h = [
        TradeRecord("01", "DVP", 0, T0, T0, "node-0", T0 + s // 10, "OK", 1),  # healthy, 100 ms
        TradeRecord("02", "DVP", 0, T0 + 2 * s, T0 + 2 * s, "node-0", T0 + 5 * s, "OK", 2),
        TradeRecord("03", "DVP", 0, T0 + 3 * s, None, None, None, None, None, "down"),
        # Submitted before the fault, final during it: in flight in the window, not healthy.
        TradeRecord("04", "DVP", 1, T0 + s // 2, T0 + s // 2, "node-1", T0 + 3 * s // 2, "OK", 2),
    ]
    f = FaultRecord(
        "kill", [0], start_us=T0 + s, end_us=T0 + 4 * s, recovered_us=T0 + 4 * s + 500_000
    )
    f.leader_at_start = 0
    rows = report.windows(h, [f], [(T0 + 4_500_000) // 1000])
    assert rows[0]["next_commit_after_start_s"] == {"receipt": 0.5, "block": 3.5}
    assert rows[0]["next_commit_after_end_s"] == {"receipt": 1.0, "block": 0.5}
    assert rows[0]["trades"] == 3 and rows[0]["no_outcome"] == 1
    # From the receipt at 1.5 s to the first one after the window (5 s); the block at 4.5 s.
    assert rows[0]["longest_stall_s"] == {"receipt": 3.5, "block": 3.5}
    assert rows[0]["latency_ms"]["p50"] == 3000.0 and rows[0]["recovered_s"] == 0.5
    assert rows[1]["fault"] == "healthy" and rows[1]["trades"] == 1
    assert rows[1]["latency_ms"]["max"] == 100.0
    assert rows[0]["leader_hit"] and "* kill [0]" in report.table(rows)


# --- the proxy -------------------------------------------------------------------------------


async def _proxy_roundtrip() -> None:
    received: asyncio.Queue[bytes] = asyncio.Queue()

    async def sink(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        while data := await r.read(1024):
            await received.put(data)

    server = await asyncio.start_server(sink, "127.0.0.1", 0)
    peer_port = server.sockets[0].getsockname()[1]
    # Node 1's peer port is peer_base + 1; links listen from proxy_base on.
    proxy = Proxy(2, "127.0.0.1", proxy_base=peer_port + 100, peer_base=peer_port - 1)
    try:
        await proxy.start()
    except OSError:
        pytest.skip("proxy ports taken")
    try:
        _, w = await asyncio.open_connection("127.0.0.1", proxy_port(peer_port + 100, 2, 0, 1))
        w.write(b"one")
        assert await asyncio.wait_for(received.get(), 5) == b"one"
        assert proxy.command("cut 0 1") == "ok"
        w.write(b"two")
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(received.get(), 0.3)  # held, not dropped
        assert proxy.command("heal 0 1") == "ok"
        assert await asyncio.wait_for(received.get(), 5) == b"two"
        assert proxy.command("delay 0 1 300") == "ok"
        t0 = time.monotonic()
        w.write(b"three")
        assert await asyncio.wait_for(received.get(), 5) == b"three"
        assert time.monotonic() - t0 >= 0.29
        assert proxy.command("heal-all") == "ok" and proxy.links[(0, 1)].delay_s == 0
        assert proxy.command("cut 0 0").startswith("error")
        assert proxy.command("jump 0 1").startswith("error")
        w.close()
    finally:
        await proxy.close()
        server.close()


def test_the_proxy_holds_bytes_during_a_cut_and_delays_them() -> None:
    asyncio.run(_proxy_roundtrip())


def test_the_validator_does_not_import_the_chaos_tool() -> None:
    node_dir = Path(__file__).resolve().parents[2] / "node"
    importers = [
        p.relative_to(node_dir).as_posix()
        for p in node_dir.rglob("*.py")
        if "chaos" not in p.parts and "devtools.chaos" in p.read_text(encoding="utf-8")
    ]
    assert importers == []


def test_free_port_base_also_checks_the_proxy_ports() -> None:
    with socket.socket() as taken:
        for port in range(20_000, 30_000, 7):  # one below the ephemeral range, taken here
            try:
                taken.bind(("127.0.0.1", port))
                break
            except OSError:
                continue
        with pytest.raises(NetgenError, match="no free range"):
            free_port_base(2, also=lambda base: [port])
    base = free_port_base(26, also=lambda base: [base + 3000 + k for k in range(26 * 26)])
    # Every port below Linux's ephemeral range (32768 on), where outgoing connections of
    # other clusters on the machine could take it between this check and the bind.
    assert base >= 10_000 and base + 3000 + 26 * 26 <= 32_768


class _Metered:
    """A client whose node says the block-read budget is spent ``spent`` times first."""

    def __init__(self, spent: int) -> None:
        self.spent, self.calls = spent, 0

    async def transaction(self, tid: bytes) -> str:
        self.calls += 1
        if self.calls <= self.spent:
            raise OverloadedError("budget of block reads spent", 0.001)
        return f"status of {tid.hex()}"


def test_the_checker_waits_out_a_spent_block_read_budget_a_bounded_number_of_times() -> None:
    """A receipt from an old block costs its trees (ADR 0025's party index too), and the
    node meters each participant's block reads: the checker, asking for every trade's,
    waits out the hint and asks again, at most ``INDEX_QUERY_TRIES`` times in all."""
    ok = _Metered(spent=3)
    assert asyncio.run(checker._transaction(ok, "ab")) == "status of ab"  # type: ignore[arg-type]
    assert ok.calls == 4
    never = _Metered(spent=checker.INDEX_QUERY_TRIES)
    with pytest.raises(OverloadedError):
        asyncio.run(checker._transaction(never, "ab"))  # type: ignore[arg-type]
    assert never.calls == checker.INDEX_QUERY_TRIES
