"""devtools.bench.lifecycle runs, every payment settles, and each block writes what one
payment to every holder must: a cash balance per holder (the agent's own share moves no
cash), plus a bond balance and a record each for a RedeemAll."""

from __future__ import annotations

import json
from pathlib import Path

from devtools.bench.lifecycle import main


def test_bench_pays_every_holder_in_one_transaction(tmp_path: Path) -> None:
    out = tmp_path / "figures.json"
    assert main(["--holders", "30", "--repeat", "1", "--json", str(out)]) == 0
    figures = json.loads(out.read_text())
    got = {(f["store"], f["kind"]): f["writes"] for f in figures}
    for store in ("memory", "lmdb"):
        # 29 holders paid + the agent's cash + the period's record
        assert got[(store, "CouponPay")] == 31
        assert got[(store, "Distribute")] == 31
        # 30 cash balances (as above), 30 bond balances, the supply, 30 records
        assert got[(store, "RedeemAll")] == 30 + 30 + 1 + 30
    assert all(f["holders"] == 30 for f in figures)
