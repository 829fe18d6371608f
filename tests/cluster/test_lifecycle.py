"""The bond lifecycle on a real 4-validator cluster (quorum 3), submitted through the SDK:
a coupon paid to every holder of record once (the second attempt refused ALREADY_PAID
with a receipt that verifies offline), a fund distribution that sums exactly, and the
``ledger schedule`` / ``ledger holders`` commands reading it back from the nodes (and
``ledger holders --height``: the holders of record before a later transfer, replayed).

Block time is the wall clock, so the coupon paid is the demo bond's latest non-final
period already due (the demo genesis starts 2026-01-01; its first coupon is 2026-05-15).
Redemption of the generated network's matured bond on a real cluster is in
``make demo`` (tests/cluster/test_demo.py); the unit tests and the simulator cover the rest.
"""

from __future__ import annotations

import contextlib
import io
import json
import time
from pathlib import Path

import pytest

from client import (
    LedgerClient,
    ParticipantKey,
    RejectedError,
    ResultCode,
    Transactions,
    load_key,
    sign,
    verify_receipt,
)
from client.cli import EXIT_FAILED, main
from node.genesis import DEMO_BOND_UNITS
from node.netconfig import OPERATOR_IDENTITY
from tests.cluster.harness import running_cluster

pytestmark = pytest.mark.slow

FUND_UNITS = {"BANK01": 1, "BANK02": 2, "BANK03": 4}


def _ledger(run_dir: Path, *argv: str) -> dict[str, object]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(["--run-dir", str(run_dir), *argv, "--json"])
    assert code == 0
    doc: dict[str, object] = json.loads(out.getvalue())
    return doc


def test_coupon_and_distribution_settle_once_on_a_real_cluster(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    with running_cluster(run_dir, 4, 3) as c:
        g, bond, cash, fund = c.demo.genesis, c.demo.bonds[0], c.demo.cash, c.demo.fund
        now_ms = int(time.time() * 1000)
        due = [k for k, t in enumerate(g.schedules[bond][:-1], start=1) if t <= now_ms]
        if not due:
            pytest.skip("the machine's clock is before the demo bond's first coupon date")
        period = due[-1]
        t = Transactions(g)

        def key(pid: str) -> ParticipantKey:
            return load_key(run_dir / "participants" / f"{pid}.key")

        with LedgerClient.from_run_dir(run_dir, identity=OPERATOR_IDENTITY) as client:
            client.submit(
                sign(t.issue(cash, "TREASURY", 10**12, "CASHCO"), key("CASHCO"), genesis=g)
            )
            for bank, units in FUND_UNITS.items():
                client.submit(
                    sign(t.issue(fund, bank, units, "TREASURY"), key("TREASURY"), genesis=g)
                )
            before = {b: client.balances(b).amounts[cash] for b in c.demo.banks}

            receipt = client.submit(sign(t.coupon(bond, period), key("TREASURY"), genesis=g))
            verify_receipt(receipt, g)
            per_bank = DEMO_BOND_UNITS * 1 * 425 // (10_000 * 2)
            after = {b: client.balances(b).amounts[cash] for b in c.demo.banks}
            assert after == {b: before[b] + per_bank for b in c.demo.banks}

            with pytest.raises(RejectedError) as again:
                client.submit(sign(t.coupon(bond, period), key("TREASURY"), genesis=g))
            assert again.value.code is ResultCode.ALREADY_PAID
            verify_receipt(again.value.receipt, g)

            paid = client.submit(sign(t.distribute(fund, 1, 1_000), key("TREASURY"), genesis=g))
            got = {b: client.balances(b).amounts[cash] - after[b] for b in FUND_UNITS}
            assert got == {"BANK01": 143, "BANK02": 286, "BANK03": 571}
            # a later transfer: the holders now differ from those of record at `paid`
            client.submit(sign(t.transfer(fund, "BANK03", "BANK04", 1), key("BANK03"), genesis=g))

        schedule = _ledger(run_dir, "schedule", bond)
        periods = schedule["periods"]
        assert isinstance(periods, list)
        assert [p["paid"] for p in periods[:period]] == ["unpaid"] * (period - 1) + ["paid"]
        holders = _ledger(run_dir, "holders", fund)["holders"]
        assert isinstance(holders, list)
        now = {"BANK01": 1, "BANK02": 2, "BANK03": 3, "BANK04": 1}
        assert [(h["account"], h["units"]) for h in holders] == list(now.items())
        # replayed from genesis by the client, its root proven by block paid.height + 1
        then = _ledger(run_dir, "holders", fund, "--height", str(paid.height))
        assert then["height"] == paid.height and then["proven"] is True
        assert isinstance(then["holders"], list)
        assert [(h["account"], h["units"]) for h in then["holders"]] == list(FUND_UNITS.items())
        # a bank reads its own transactions only: no full blocks, no replay, said so
        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            code = main(
                ["--run-dir", str(run_dir), "--as", "BANK01", "holders", fund, "--height", "2"]
            )
        assert code == EXIT_FAILED and "regulator, compliance or auditor" in err.getvalue()
