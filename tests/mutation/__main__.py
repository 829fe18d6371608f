"""``python -m tests.mutation {run,report,list}``: see tests/mutation/__init__.py."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tests.mutation import report
from tests.mutation.driver import TARGETS_FILE, MutationError, load_targets, run, select


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.mutation",
        description="Mutation testing (cosmic-ray) of the targets in tests/mutation/targets.toml.",
    )
    parser.add_argument(
        "--targets", type=Path, default=TARGETS_FILE, help="the targets file (TOML)"
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p_run = sub.add_parser("run", help="mutate the targets and run their tests (resumable)")
    p_run.add_argument("--target", action="append", metavar="NAME", help="only this target")
    p_run.add_argument(
        "--fresh", action="store_true", help="discard the sessions and start them again"
    )
    p_run.add_argument(
        "--retest-survivors",
        action="store_true",
        help="run the surviving mutants again (after new tests); the killed stay killed",
    )
    p_run.add_argument(
        "--survivors-only",
        action="store_true",
        help="run only the survivors again; mutants never run stay pending",
    )
    p_run.add_argument(
        "--timeout", type=float, help="seconds per mutant (default: 3x the baseline, >= 10)"
    )
    p_run.add_argument("--poll", type=float, default=5.0, help="progress interval in seconds")
    p_report = sub.add_parser("report", help="write build/mutation/report.md")
    p_report.add_argument("--target", action="append", metavar="NAME", help="only this target")
    sub.add_parser("list", help="list the targets")
    args = parser.parse_args(argv)
    try:
        targets = select(
            load_targets(args.targets), args.target if args.command != "list" else None
        )
        if args.command == "run":
            run(
                targets,
                fresh=args.fresh,
                retest=args.retest_survivors,
                survivors_only=args.survivors_only,
                timeout_s=args.timeout,
                poll_s=args.poll,
            )
        elif args.command == "report":
            report.write(targets)
        else:
            for t in targets:
                only = f" [{', '.join(t.functions)}]" if t.functions else ""
                print(f"{t.name:20} {t.module}{only}  tests: {' '.join(t.tests)}")
    except MutationError as e:
        print(f"mutation: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
