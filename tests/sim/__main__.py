"""``python -m tests.sim --seeds 200 --seed-start 0 --n 4 [--q 3] [--byz silent,forge]``: run
seeds, print progress. ``--byz all`` draws from every strategy of tests/sim/byzantine.py;
``--byz-count`` forces the number of Byzantine validators (beyond the bound: a control).

``python -m tests.sim --steady --n 4 --byz slow_leader --byz-count 1 [--progress-factor 0]``:
instead, one steady load (100 trades a second for 4 s on a calm network,
``runner.steady_load``) with that many validators running the strategy, spread over the
indexes from 1; prints blocks and latency in simulated time (docs/consensus.md "Slow
leaders").

Exit status 1 on the first violation, after printing the seed, the replay command and the
file holding the transcripts of every node's engine (``runner.explain``).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter

from node.core import Quorum
from node.settlement import ResultCode
from tests.sim.byzantine import STRATEGIES
from tests.sim.invariants import Violation
from tests.sim.runner import failure_report, make_scenario, run, steady_load


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tests.sim")
    ap.add_argument("--seeds", type=int, default=200)
    ap.add_argument("--seed-start", type=int, default=0)
    ap.add_argument("--n", type=int, default=4)
    ap.add_argument("--q", type=int, default=None)
    ap.add_argument("--byz", default="", help=f"all, or some of {','.join(STRATEGIES)}")
    ap.add_argument("--byz-count", type=int, default=None)
    ap.add_argument("--steady", action="store_true", help="one steady load, not seeds")
    ap.add_argument("--progress-factor", type=int, default=None, help="0: no progress deadline")
    ap.add_argument("--relay-factor", type=int, default=None, help="0: no commit-vote relay")
    args = ap.parse_args(argv)
    byz = tuple(STRATEGIES) if args.byz == "all" else tuple(filter(None, args.byz.split(",")))
    if args.steady:
        return _steady(args, byz)
    started = time.monotonic()
    blocks = 0
    kinds: Counter[str] = Counter()
    twinned = 0
    codes: Counter[str] = Counter()
    refused: Counter[str] = Counter()
    refusals: Counter[str] = Counter()
    crafted: Counter[str] = Counter()
    censored = 0
    for k, seed in enumerate(range(args.seed_start, args.seed_start + args.seeds), 1):
        sc = make_scenario(args.n, args.q, seed, byz, args.byz_count)
        try:
            result = run(sc)
        except Violation as e:
            print(f"\nFAIL {failure_report(sc, e)}", file=sys.stderr)
            return 1
        blocks += result.height
        kinds.update(result.sent)
        codes.update(result.codes)
        refused.update(result.refused)
        refusals.update(result.refusals)
        crafted.update(result.crafted)
        twinned += 1 if result.twins else 0
        censored = max(censored, result.censored_views)
        if k % 10 == 0 or k == args.seeds:
            elapsed = time.monotonic() - started
            print(
                f"\r{k}/{args.seeds} seeds ok, n={sc.n} q={sc.q}, {blocks} blocks, "
                f"{elapsed:.1f} s ({1000 * elapsed / k:.0f} ms/seed)",
                end="",
                flush=True,
            )
    print()
    print(f"seeds with twins: {twinned}; messages by kind: {dict(sorted(kinds.items()))}")
    print(f"most views a transaction waited after stabilising: {censored}")
    print("result codes (in blocks / answered by honest admission):")
    for code in ResultCode:
        print(f"  {code.name:<24} {codes[code.name]:>7} / {refused[code.name]:<7}")
    unreached = [c.name for c in ResultCode if not codes[c.name] + refused[c.name]]
    print(f"codes never reached: {', '.join(unreached) or 'none'}")
    print("honest replicas refused (Replica.refused):")
    for reason, count in sorted(refusals.items()):
        print(f"  {count:>7}  {reason}")
    if crafted:
        print("crafted by Byzantine strategies:")
        for kind, count in sorted(crafted.items()):
            print(f"  {count:>7}  {kind}")
    return 0


def _steady(args: argparse.Namespace, byz: tuple[str, ...]) -> int:
    q = Quorum.classic(args.n).q if args.q is None else args.q
    count = (1 if byz else 0) if args.byz_count is None else args.byz_count
    if len(byz) > 1 or (count and not byz):
        print("--steady takes one strategy (--byz NAME) and --byz-count", file=sys.stderr)
        return 2
    chosen = {1 + k * (args.n // max(count, 1)): byz[0] for k in range(count)}
    r = steady_load(
        args.n, q, chosen, progress_factor=args.progress_factor, relay_factor=args.relay_factor
    )
    print(
        f"n={args.n} q={q} byzantine={chosen or 'none'}: {r.blocks} blocks in {r.seconds} s; "
        f"latency p50 {r.percentile(0.5)} ms, p99 {r.percentile(0.99)} ms, "
        f"max after the warm-up {max(r.warmed_up())} ms; views failed {r.views_failed}; "
        f"commit votes relayed {r.relayed}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
