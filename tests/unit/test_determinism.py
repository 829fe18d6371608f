"""Cross-process determinism: the same blocks executed in separate Python processes, with
different string hashing (PYTHONHASHSEED), time zones, locales, int-to-str digit limits
and both store kinds (memory, LMDB), must give byte-identical state roots, results
(events included) and results roots after every block, and the same state at the end.

Validators are separate processes: a step that depends on the order of a set or of a
dict built from one, on the local clock or time zone, on the locale, or on a cache that
one process hits and another misses would pass every in-process test and still split the
chain. Here the parent builds the blocks once (the simulator's workload,
tests/sim/workload.py: every refusal kind, lifecycle payments to every holder, pending
settlement and its recycling, freezes, KYC limits, governance, locks, repos, prices and
margin calls, late and duplicate copies; then months later, the deadlines and the bond's
maturity, with the coupons of many holders and a redemption of all of them, observer
role changes the party index commits to, and repos nobody closes lapsing at their
default deadline, one with a defaulter named and others nobody's) and each child
(tests/unit/determinism_child.py) executes them and prints what it certified.

The negative control injects a hash-order-dependent step into two children (recycling
walks the pending book in set order) and requires the comparison to fire; the coverage
check requires the workload to reach the paths it is meant to cover.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from node.genesis import dump_genesis
from node.settlement import (
    CouponPay,
    Distribute,
    RedeemAll,
    RepoOpen,
    ResultCode,
    Role,
    SetRoles,
    Transaction,
    sign_tx,
)
from node.settlement._schedule import DAY_MS
from tests.sim.workload import (
    AGENT,
    SIM_CPN,
    SIM_FUND,
    late_pool,
    ok_pool,
    refusal_pool,
    sim_network,
)
from tests.unit.determinism_child import INJECT_HASH_ORDER

ROOT = Path(__file__).resolve().parents[2]
N = 4  # validators of the simulator's network (only its genesis is used)
BLOCK_MS = 50  # block spacing in the first phase
SEND_STEP_MS = 20  # one pool transaction every this many ms
CHILD_TIMEOUT_S = 120
# (hash seed, time zone, locale, int max str digits): each child differs in all four
ENVS = (
    ("1", "UTC", "C", "0"),
    ("2", "Pacific/Kiritimati", "C.UTF-8", "640"),
)
ADMINS = ("COMPLIANCE", "CSD")


def _signed(tx: Transaction) -> bytes:
    keys = sim_network(N).participant_keys
    return sign_tx(tx, [keys[s] for s in tx.required_signers()])


def _sends() -> list[tuple[int, bytes]]:
    """(offset from genesis in ms, raw) of every transaction of the first phase, in the
    order they are sent."""
    sends: list[tuple[int, bytes]] = []
    ok = ok_pool(N)
    for j, sim in enumerate(refusal_pool(N)):
        t = 100 + SEND_STEP_MS * j
        sends += [(t, raw) for raw in (sim.raw, sim.twin) if raw is not None]
        sends += [(t + delay, raw) for delay, raw, _ in sim.companions]
        sends.append((t + SEND_STEP_MS // 2, ok[j % len(ok)][0]))
    for sim in late_pool(N):
        sends.append((100 + (sim.late_at or 0), sim.raw))
    sends.sort(key=lambda s: s[0])  # stable: same-time sends keep their order
    return sends


def _roles(t0: int, at: int) -> list[bytes]:
    """A regulator added (GOV00, added by the pool's governance) and a bank made an
    auditor and back: observer flags of the party index (ADR 0025) change."""
    chain, far = sim_network(N).genesis.chain_id, t0 + at + 400 * DAY_MS
    txs = [
        SetRoles(chain, 9_000_001, far, "GOV00", frozenset({Role.REGULATOR}), ADMINS),
        SetRoles(chain, 9_000_002, far, "BANK02", frozenset({Role.TRADER, Role.AUDITOR}), ADMINS),
        SetRoles(chain, 9_000_003, far, "BANK02", frozenset({Role.TRADER}), ADMINS),
    ]
    return [_signed(tx) for tx in txs]


def _lapses(t0: int, at: int) -> list[tuple[int, list[bytes]]]:
    """Repos nobody closes lapse (session 31, _repo.lapse; a REPO_LAPSED event each since
    review 32, and the state): two open with one default deadline; governance takes the holding
    role of the first one's borrower before it passes (it may no longer receive the
    collateral: named the defaulter), while both parties of the second could settle
    (nobody's default); the role comes back in the block after the lapse."""
    net = sim_network(N)
    chain, far = net.genesis.chain_id, t0 + at + 400 * DAY_MS
    close, due = t0 + at + 1_000, t0 + at + 2_000
    pairs = (("BANK03", "BANK04"), ("BANK05", "BANK06"))
    opens = [
        RepoOpen(chain, 9_400_001 + i, far, f"DET-LAPSE-{i}", borrower, lender, net.bonds[0],
                 100, net.cash, 1_000, 1_005, 0, close, due)
        for i, (borrower, lender) in enumerate(pairs)
    ]  # fmt: skip
    off = SetRoles(chain, 9_400_010, far, "BANK03", frozenset({Role.AUDITOR}), ADMINS)
    back = SetRoles(chain, 9_400_011, far, "BANK03", frozenset({Role.TRADER}), ADMINS)
    return [
        (t0 + at, [_signed(tx) for tx in opens]),
        (close + 500, [_signed(off)]),
        (due, []),  # the deadline instant: both still open
        (due + 1, []),  # both lapse
        (due + 2, [_signed(back)]),
    ]


def _later(t0: int) -> list[tuple[int, list[bytes]]]:
    """Months on: coupons 1-7 of SIM_CPN to every holder (those the pool paid are
    ALREADY_PAID), a distribution, then at maturity the redemption of every holding (and
    a coupon past the schedule)."""
    chain = sim_network(N).genesis.chain_id
    may, june = t0 + 121 * DAY_MS, t0 + 151 * DAY_MS  # 2026-05-02, 2026-06-01
    far = june + 30 * DAY_MS
    coupons = [CouponPay(chain, 9_100_000 + p, far, SIM_CPN, p, AGENT) for p in range(1, 8)]
    fund = Distribute(chain, 9_200_000, far, SIM_FUND, 3, 1_000_003, AGENT)
    redeem = RedeemAll(chain, 9_300_000, far, SIM_CPN, AGENT)
    past = CouponPay(chain, 9_100_008, far, SIM_CPN, 8, AGENT)
    return [
        (may, [_signed(tx) for tx in (*coupons, fund)]),
        (may + 3_600_000, []),
        (june, [_signed(redeem), _signed(past)]),
        (june + BLOCK_MS, []),
    ]


def blocks() -> list[tuple[int, list[bytes]]]:
    """Every block: (time_ms, transactions)."""
    t0 = sim_network(N).genesis.genesis_time_ms
    sends = _sends()
    end = sends[-1][0] + 3_000  # pending trades reach their deadlines
    out: list[tuple[int, list[bytes]]] = []
    k = 0
    for t in range(BLOCK_MS, end + 1, BLOCK_MS):
        txs = []
        while k < len(sends) and sends[k][0] <= t:
            txs.append(sends[k][1])
            k += 1
        out.append((t0 + t, txs))
    out.append((t0 + end + BLOCK_MS, _roles(t0, end)))
    return out + _lapses(t0, end + 2 * BLOCK_MS) + _later(t0)


def _write_inputs(tmp: Path) -> tuple[Path, Path]:
    genesis, blocks_file = tmp / "genesis.json", tmp / "blocks.txt"
    dump_genesis(sim_network(N).genesis, genesis)
    lines = [" ".join([str(t), *(raw.hex() for raw in txs)]) for t, txs in blocks()]
    blocks_file.write_text("\n".join(lines) + "\n")
    return genesis, blocks_file


def _start(
    tmp: Path, inputs: tuple[Path, Path], env: tuple[str, str, str, str], kind: str,
    *extra: str,
) -> subprocess.Popen[str]:  # fmt: skip
    seed, tz, locale, digits = env
    child_env = dict(os.environ, PYTHONHASHSEED=seed, TZ=tz, LC_ALL=locale, LANG=locale)
    child_env["PYTHONINTMAXSTRDIGITS"] = digits
    name = f"{kind}-{seed}-{'-'.join(extra) or 'plain'}"
    return subprocess.Popen(
        [sys.executable, "-m", "tests.unit.determinism_child", *map(str, inputs), kind,
         str(tmp / name), *extra],
        cwd=ROOT, env=child_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def _outputs(procs: dict[str, subprocess.Popen[str]]) -> dict[str, list[str]]:
    out = {}
    for name, proc in procs.items():
        try:
            stdout, stderr = proc.communicate(timeout=CHILD_TIMEOUT_S)
        finally:
            proc.kill()
        assert proc.returncode == 0, f"{name} exited {proc.returncode}: {stderr[-2000:]}"
        out[name] = stdout.splitlines()
    return out


def first_difference(runs: dict[str, list[str]]) -> str | None:
    """The first line on which the runs differ, with each run's version; None if none."""
    (first, lines), *others = runs.items()
    for name, theirs in others:
        for i in range(max(len(lines), len(theirs))):
            a = lines[i] if i < len(lines) else "(missing)"
            b = theirs[i] if i < len(theirs) else "(missing)"
            if a != b:
                return f"line {i + 1}:\n  {first}: {a[:300]}\n  {name}: {b[:300]}"
    return None


def _codes(lines: list[str]) -> Counter[str]:
    blocks_only = (line for line in lines if not line.startswith(("state", "repos")))
    return Counter(r for line in blocks_only for r in line.split()[3:])


# Results the workload must reach, or the comparison covers less than it claims.
REACHED = {
    "recorded OK": f"r{ResultCode.OK}",
    "pending recorded": f"r{ResultCode.PENDING_SETTLEMENT}",
    "settled in recycling": f"e{ResultCode.OK}",
    "partly settled": f"e{ResultCode.PARTIALLY_SETTLED}",
    "failed at deadline": f"e{ResultCode.FAILED_DEADLINE}",
    "cancelled": f"e{ResultCode.CANCELLED}",
    "duplicate": f"u{ResultCode.DUPLICATE}",
    "bad signature": f"u{ResultCode.BAD_SIGNATURE}",
    "frozen": f"r{ResultCode.FROZEN}",
    "daily limit": f"r{ResultCode.DAILY_LIMIT}",
    "already paid": f"r{ResultCode.ALREADY_PAID}",
    "locked": f"r{ResultCode.LOCKED}",
    "no margin deficit": f"r{ResultCode.NO_MARGIN_DEFICIT}",
    "past the schedule": f"r{ResultCode.NO_SUCH_PERIOD}",
    "repo lapsed (event)": f"e{ResultCode.REPO_LAPSED}",
}


@pytest.mark.serial  # starts child processes (tests/isolation.py)
def test_blocks_execute_identically_across_processes_and_stores(tmp_path: Path) -> None:
    inputs = _write_inputs(tmp_path)
    procs = {
        f"{kind} PYTHONHASHSEED={env[0]} TZ={env[1]} LC_ALL={env[2]}": _start(
            tmp_path, inputs, env, kind
        )
        for env in ENVS
        for kind in ("memory", "lmdb")
    }
    runs = _outputs(procs)
    lines = next(iter(runs.values()))
    assert len(lines) == len(blocks()) + 2, "a child stopped early"
    reached = _codes(lines)
    missing = [what for what, code in REACHED.items() if not reached[code]]
    assert not missing, f"the workload no longer reaches: {missing}"
    # The repos line says which lapsed and who defaulted; each lapse is an event too.
    lapsed = {r.split(":")[2] != "-" for r in lines[-1].split()[1:] if r.endswith(":lapsed")}
    assert lapsed == {True, False}, f"the workload no longer lapses both ways: {lines[-1]}"
    redeemed = lines[-4].split()[3:]  # the maturity block: RedeemAll, the coupon past it
    assert redeemed == [f"r{ResultCode.OK}", f"r{ResultCode.NO_SUCH_PERIOD}"], redeemed
    assert first_difference(runs) is None, first_difference(runs)


@pytest.mark.serial  # starts child processes (tests/isolation.py)
def test_comparison_catches_a_hash_order_dependent_step(tmp_path: Path) -> None:
    """Negative control: the same children with recycling in set order differ."""
    inputs = _write_inputs(tmp_path)
    procs = {
        f"memory PYTHONHASHSEED={env[0]} injected": _start(
            tmp_path, inputs, env, "memory", "--inject", INJECT_HASH_ORDER
        )
        for env in ENVS
    }
    difference = first_difference(_outputs(procs))
    assert difference is not None, "a hash-order-dependent step went unnoticed"
