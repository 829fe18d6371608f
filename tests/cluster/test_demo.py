"""`make demo` runs the demo module: a real cluster settles its trades and refuses the bad
one, then pays a coupon, settles a recycled trade, fails one at its deadline and redeems
a matured bond, each amount checked against the terms, and shows a freeze refusing a
trade that settles after the unfreeze (4 validators here to keep the
suite short; `make demo` runs 26)."""

from __future__ import annotations

import re

import pytest

from devtools.demo import run as demo

pytestmark = pytest.mark.slow


def test_demo_settles_and_reports(capsys: pytest.CaptureFixture[str]) -> None:
    assert demo.main(["--n", "4"]) == 0
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if re.match(r"\s*\d+\s+BANK", line)]
    assert len(rows) == len(demo.TRADES)
    assert sum(" OK " in r for r in rows) == len(demo.TRADES) - 1
    assert "INSUFFICIENT_SECURITIES" in rows[4]
    assert f"{demo.BURST_TRADES}/{demo.BURST_TRADES} OK" in out
    # The lifecycle: every bank paid the coupon and redeemed, each checked by the demo.
    banks = {seller for seller, *_ in demo.TRADES}  # all six demo banks sell once
    assert out.count("= terms") == 2 * len(banks)  # a coupon and a redemption each
    assert re.search(r"funded later +PENDING_SETTLEMENT at height \d+", out)
    assert re.search(r"never funded +PENDING_SETTLEMENT at height \d+", out)
    assert re.search(r"funded later +OK event at height \d+, proven", out)
    assert re.search(r"never funded +FAILED_DEADLINE event at height \d+, proven", out)
    assert re.search(r"RedeemAll by TREASURY: OK at height \d+", out)
    # The freeze: refused while frozen, listed, settled after the unfreeze.
    assert re.search(r"to BANK02: FROZEN at height \d+, nothing moved", out)
    assert re.search(r"listed: BANK02 \(account\), AML_INVESTIGATION, by REGULATOR", out)
    assert re.search(r"signed again: OK at height \d+", out)
    # Reserves (devtools/demo/reserve.py): attested, minted within, refused beyond, reported.
    assert "is refused: RESERVES_SHORT" in out and "coverage 111.11%" in out
    # kyc: the AML step (devtools/demo/kyc.py)
    assert re.search(r"BANK05 and BANK06 only: COSIGN_REQUIRED at height \d+", out)
    assert re.search(r"BANK05, BANK06 and COMPLIANCE: OK at height \d+", out)
    # Governance (devtools/demo/gov.py): one admin refused, two add a bank that trades.
    assert "signed by COMPLIANCE alone: NOT_ADMIN_QUORUM" in out
    assert re.search(r"AddParticipant BANK07 signed by COMPLIANCE and CSD: OK at height \d+", out)
    assert re.search(r"BANK07 buys 10,000.00 face of \w+ from BANK02: OK", out)
    assert "BANK07 reads its own balances: 10,000.00 face, $990,010.00 cash" in out
    # lock (devtools/demo/lock.py): a locked spend refused, released, settled; a swap.
    assert "transfers 10,000.00 of them: LOCKED, nothing moved" in out
    assert re.search(r"the transfer, signed again: OK at height \d+", out)
    assert re.search(r"swap: BANK03 gives 5,000.00 \w+ for 4,900.00 \w+ of BANK04, both", out)
    # repo (devtools/demo/repo.py): open, closed by the borrower alone at the close time.
    assert re.search(r"open  OK at height \d+ in [\d.]+ ms", out)
    assert re.search(r"close OK at height \d+ in [\d.]+ ms, signed by BANK03 alone", out)
    assert re.search(r"interest \d+ cents over \d+ ms \(ACT/360, half up\)", out)
    # margin (devtools/demo/margin.py): no deficit at 99.0, the deficit moved at 90.0, a
    # substitution.
    assert re.search(r"the call moved [\d,]+ more units of \w+ to BANK06, added to the repo", out)
    assert re.search(r"BANK05 and BANK06 substituted [\d,]+ units of \w+ for them", out)
    assert re.search(r"closed early by both: [\d,]+ units of \w+ back to BANK05", out)
    assert re.search(r"4/4 validators answering; all at height \d+ with state root", out)
    assert "stopped 4 validators" in out
