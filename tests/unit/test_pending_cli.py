"""Pending settlement in the SDK builders and the CLI, without a cluster: the builders
check lots against the trade, a pending DvP travels through sign/cosign like a DvP, and
the fails report counts what docs/cli.md says over blocks as the SDK shows them."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import pytest

from client import BlockEvent, BlockTx, BlockView, InvalidFieldError, Transactions
from client._async import BlockTiming, Endpoint, EndpointDown
from client._cli_settlement import fails_of, finality_of, report_of
from client.cli import main
from node.genesis import dump_genesis
from node.keyfiles import write_signing_key
from node.settlement import PendingDvP, ResultCode, SignedTx, Transaction
from tests.ledger_helpers import TxFactory, shared_net

RC = ResultCode
NET = shared_net()


def test_the_builder_refuses_a_lot_that_does_not_split_the_trade() -> None:
    tx = Transactions(NET.genesis)
    bond, cash = NET.bonds[0], NET.cash
    ok = tx.pending_dvp("BANK01", "BANK02", bond, 100, cash, 40, lot=25)
    assert isinstance(ok, PendingDvP) and ok.lot == 25
    for lot in (30, 101, -1):
        with pytest.raises(InvalidFieldError) as e:
            tx.pending_dvp("BANK01", "BANK02", bond, 100, cash, 40, lot=lot)
        assert e.value.field == "lot"
    with pytest.raises(InvalidFieldError):  # 100 / 20 = 5 lots, 42 is not 5 equal prices
        tx.pending_dvp("BANK01", "BANK02", bond, 100, cash, 42, lot=20)
    with pytest.raises(InvalidFieldError) as e:
        tx.hold(b"short", "BANK01")
    assert e.value.field == "instruction"


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_a_pending_dvp_is_signed_and_cosigned_offline(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    dump_genesis(NET.genesis, tmp_path / "genesis.json")
    (tmp_path / "participants").mkdir()
    for pid in ("BANK01", "BANK02"):
        write_signing_key(tmp_path / "participants" / f"{pid}.key", NET.participant_keys[pid])
    g = ["--run-dir", str(tmp_path)]
    terms = ["--seller", "BANK01", "--buyer", "BANK02", "--bond", NET.bonds[0],
             "--quantity", "1000", "--cash", NET.cash, "--amount", "990"]  # fmt: skip
    code, _, err = _run(capsys, *g, "sign", "dvp", *terms, "--lot", "100", "--out", "x")
    assert code == 2 and "--lot needs --pending" in err
    proposal, signed = tmp_path / "trade.json", tmp_path / "signed.json"
    code, out, err = _run(
        capsys, *g, "sign", "dvp", *terms, "--pending", "--lot", "100", "--out", str(proposal)
    )
    assert code == 0, err
    assert "PENDING DVP BANK01 -> BANK02" in out and "in lots of 100" in out
    code, out, err = _run(capsys, *g, "cosign", str(proposal), "--json", "--out", str(signed))
    assert code == 0, err
    doc = json.loads(out)
    assert doc["terms"]["kind"] == "PENDING_DVP" and doc["terms"]["lot"] == 100
    assert json.loads(signed.read_text())["missing_signers"] == []


def _block(
    height: int,
    time_ms: int,
    txs: Sequence[tuple[bytes, RC, Transaction]],
    events: Sequence[tuple[bytes, RC]] = (),
) -> BlockView:
    """A block as the SDK shows it (recorded copies only), with its events after."""
    return BlockView(
        height,
        bytes(32),
        time_ms,
        bytes(32),
        b"",
        tuple(BlockTx(i, tid, code, tx, b"", True) for i, (tid, code, tx) in enumerate(txs)),
        tuple(BlockEvent(len(txs) + i, tid, code) for i, (tid, code) in enumerate(events)),
    )


def test_the_report_counts_trades_recycling_and_fails_by_reason() -> None:
    txf = TxFactory(NET)
    dvp, pend, transfer = txf.dvp(), txf.pending(), txf.transfer()
    a, b, c, d, e, f, old = (bytes([k]) * 32 for k in range(7))
    blocks = [
        _block(5, 10_000, [(a, RC.OK, dvp), (b, RC.PENDING_SETTLEMENT, pend),
                           (c, RC.INSUFFICIENT_CASH, dvp), (d, RC.INSUFFICIENT_CASH, transfer)]),
        _block(6, 12_500, [(e, RC.PENDING_SETTLEMENT, pend), (f, RC.EXPIRED, dvp)],
               [(b, RC.OK), (old, RC.OK)]),
        _block(7, 20_000, [], [(e, RC.PARTIALLY_SETTLED)]),
        _block(8, 21_000, [], [(e, RC.FAILED_DEADLINE)]),
    ]  # fmt: skip
    report = report_of(blocks, 5, 8, lambda tid: 1_000 if tid == old else None)
    assert (report.trades, report.settled_first_attempt, report.pending) == (5, 1, 2)
    assert (report.settled_after_recycling, report.partly_settled) == (2, 1)
    # A transfer short of cash is no settlement fail; an expired trade is a bad instruction.
    assert report.failed == {"INSUFFICIENT_CASH": 1, "FAILED_DEADLINE": 1}
    assert report.refused_other == {"EXPIRED": 1}
    assert report.fail_rate == 2 / 5
    assert sorted(report.recycle_ms) == [2_500, 11_500]  # b: 10,000 -> 12,500; old: 1,000
    doc = report.to_json()
    assert doc["settle_after_recycling_ms"] == {"count": 2, "p50": 2_500, "p99": 11_500}
    fails = fails_of(blocks)
    assert [(x.height, x.tx_id, x.code, x.event) for x in fails] == [
        (5, c, RC.INSUFFICIENT_CASH, False),
        (8, e, RC.FAILED_DEADLINE, True),
    ]


def test_finality_is_the_earliest_proposal_to_the_earliest_commit_over_validators() -> None:
    """Per height, the first validator to see the proposal to the first to hold the commit
    certificate; a down validator, an unseen step or a forgotten height gives nothing."""
    t = BlockTiming
    timelines: list[list[BlockTiming] | EndpointDown] = [
        [t(5, 1_000_000, 1_001_000, 1_040_000, 1_041_000), t(6, 2_000_000, 0, 0, 0)],
        [t(5, 1_010_000, 1_002_000, 1_020_000, 1_031_000), t(6, 2_005_000, 0, 2_090_000, 0)],
        EndpointDown(Endpoint("127.0.0.1", 1), "down"),
    ]
    assert finality_of(timelines) == {5: 20, 6: 90}  # 1,000,000 to 1,020,000 us
    assert finality_of([[t(7, 0, 0, 3_000_000, 0)]]) == {}  # proposal not seen: unknown


def test_the_report_gives_finality_of_blocks_with_trades_and_counts_the_unknown() -> None:
    txf = TxFactory(NET)
    dvp = txf.dvp()
    blocks = [
        _block(5, 10_000, [(bytes(32), RC.OK, dvp)]),
        _block(6, 11_000, [(bytes([1]) * 32, RC.OK, dvp)]),
        _block(7, 12_000, []),  # no trade: not a trade's finality
        _block(8, 13_000, [(bytes([2]) * 32, RC.OK, dvp)]),
    ]
    report = report_of(blocks, 5, 8, lambda tid: None, {5: 30, 6: 90, 7: 5_000})
    assert sorted(report.finality_ms) == [30, 90]
    assert report.finality_unknown == 1  # block 8 is past every timeline
    assert report.to_json()["finality_ms"] == {
        "blocks": 2, "p50": 30, "p99": 90, "blocks_not_in_timelines": 1,
    }  # fmt: skip


def test_an_empty_range_reports_no_rate() -> None:
    report = report_of([], 3, 2, lambda tid: None)
    assert report.trades == 0 and report.fail_rate == 0.0
    assert report.to_json()["settle_after_recycling_ms"]["p50"] is None


def test_verify_receipt_shows_the_proven_later_outcome(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    from tests.chain_helpers import Chain as _Chain

    txf = TxFactory(NET)
    raw = txf.signed(txf.pending(quantity=10_000_100, amount=5))
    chain = _Chain(NET)
    chain.commit([raw])
    chain.commit([txf.signed(txf.transfer("BANK03", "BANK01", 100, instrument=NET.bonds[0]))])
    chain.commit([])
    receipt = chain.node().receipt(SignedTx.decode(raw).tx_id)
    assert receipt is not None
    dump_genesis(NET.genesis, tmp_path / "genesis.json")
    (tmp_path / "r.json").write_text(receipt.dumps())
    code, out, err = _run(
        capsys, "--run-dir", str(tmp_path), "verify-receipt", str(tmp_path / "r.json")
    )
    assert code == 0, err
    assert "PENDING_SETTLEMENT in block 1" in out
    assert "later: OK at the end of block 2, certified by block 3" in out


def test_the_fails_management_commands_exist_with_help(capsys: pytest.CaptureFixture[str]) -> None:
    for command in (
        ["pending"],
        ["fails"],
        ["report", "settlement"],
        ["submit", "hold"],
        ["submit", "release"],
        ["submit", "cancel"],
    ):
        code, out, _ = _run(capsys, *command, "--help")
        assert code == 0 and out.startswith("usage: ledger"), command


def test_the_tables_print(capsys: pytest.CaptureFixture[str]) -> None:
    """The text forms of pending, fails and the report (the cluster test reads JSON)."""
    from client import PendingTrade
    from client._cli_settlement import Fail, print_fails, print_pending, print_report

    book = (PendingTrade(b"\x01" * 32, 4, 2, "BANK01", "BANK02", NET.bonds[0], NET.cash,
                         10, 7, 3, 1_767_225_600_000, False, True),)  # fmt: skip
    print_pending(9, book, as_json=False)
    print_fails([Fail(5, b"\x02" * 32, RC.FAILED_DEADLINE, True)], lambda tid: "a trade", False)
    print_report(report_of([], 1, 9, lambda tid: None), as_json=False)
    out = capsys.readouterr().out
    assert "1 pending trades after block 9" in out and "30 " in out and "BANK02" in out
    assert "FAILED_DEADLINE" in out and "event" in out
    assert "blocks 1..9 (heights, inclusive)" in out and "0.00%" in out


def test_the_rules_refusing_a_pending_trade_at_settlement_is_a_fail_everywhere() -> None:
    """Review 32: `ledger fails` and the metric did not count a pending trade's
    COSIGN_REQUIRED / TRADE_LIMIT event (the rules in force at settlement refused an
    accepted instruction) while `ledger report settlement` did: now all three do. The
    same code as a trade's first-attempt refusal is a bad instruction (the control)."""
    dvp = TxFactory(NET).dvp()
    a, b, c = (bytes([k]) * 32 for k in range(3))
    blocks = [
        _block(5, 1_000, [(a, RC.COSIGN_REQUIRED, dvp)], [(b, RC.COSIGN_REQUIRED)]),
        _block(6, 2_000, [], [(c, RC.TRADE_LIMIT)]),
    ]
    report = report_of(blocks, 5, 6, lambda tid: None)
    assert report.failed == {"COSIGN_REQUIRED": 1, "TRADE_LIMIT": 1}
    assert report.refused_other == {"COSIGN_REQUIRED": 1}
    assert [(f.tx_id, f.code, f.event) for f in fails_of(blocks)] == [
        (b, RC.COSIGN_REQUIRED, True),
        (c, RC.TRADE_LIMIT, True),
    ]
