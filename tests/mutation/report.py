"""``build/mutation/report.md``: per target the outcome counts, the score, every survivor."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from tests.mutation.driver import (
    OUT,
    ROOT,
    SKIP_ANNOTATION,
    Target,
    annotation_spans,
    function_lines,
)


@dataclass
class Survivor:
    path: str
    line: int
    operator: str
    diff: str


@dataclass
class Tally:
    counts: Counter[str] = field(default_factory=Counter)
    survivors: list[Survivor] = field(default_factory=list)

    @property
    def score(self) -> str:
        """Killed (timeouts included) of the mutants that ran to a verdict."""
        dead = self.counts["killed"] + self.counts["timeout"]
        judged = dead + self.counts["survived"]
        return f"{dead}/{judged} = {100 * dead / judged:.1f}%" if judged else "n/a"


def _outcome(result: object) -> str:
    from cosmic_ray.work_item import TestOutcome, WorkerOutcome

    if result.worker_outcome == WorkerOutcome.SKIPPED:  # type: ignore[attr-defined]
        return "equivalent" if result.output == SKIP_ANNOTATION else "skipped"  # type: ignore[attr-defined]
    if result.worker_outcome == WorkerOutcome.NO_TEST:  # type: ignore[attr-defined]
        return "no-test"
    if result.worker_outcome != WorkerOutcome.NORMAL:  # type: ignore[attr-defined]
        return "incompetent"
    if result.test_outcome == TestOutcome.SURVIVED:  # type: ignore[attr-defined]
        return "survived"
    if result.test_outcome == TestOutcome.INCOMPETENT:  # type: ignore[attr-defined]
        return "incompetent"
    return "timeout" if result.output == "timeout" else "killed"  # type: ignore[attr-defined]


def tally(t: Target) -> Tally | None:
    from cosmic_ray.work_db import WorkDB, use_db

    if not t.session.exists():
        return None
    out = Tally()
    source = (ROOT / t.module).read_text()
    notes = annotation_spans(source)
    ranges = function_lines(source, t.functions) if t.functions else [(1, 10**9)]
    with use_db(str(t.session), WorkDB.Mode.open) as db:
        results = dict(db.results)
        for item in db.work_items:
            result = results.get(item.job_id)
            kind = "pending" if result is None else _outcome(result)
            m = item.mutations[0]
            if not any(lo <= m.start_pos[0] <= hi for lo, hi in ranges):
                kind = "skipped"  # a session shared with a target of other functions
            elif kind == "survived" and any(a <= m.start_pos < b for a, b in notes):
                kind = "equivalent"  # a session made before the driver skipped these
            out.counts[kind] += 1
            if kind == "survived" and result is not None:
                out.survivors.append(
                    Survivor(str(m.module_path), m.start_pos[0], m.operator_name, result.diff or "")
                )
    out.survivors.sort(key=lambda s: (s.line, s.operator))
    return out


def render(targets: list[Target]) -> str:
    lines = [
        "# Mutation report",
        "",
        "Score = killed (timeouts included) / (killed + survived). Skipped: outside the "
        "target's functions. Equivalent: inside an annotation, never evaluated (`from "
        "__future__ import annotations`). Incompetent: the mutant could not run. None of "
        "these three counts in the score.",
        "",
        "| target | module | killed | timeout | survived | equivalent | incompetent | skipped "
        "| pending | score |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    tallies = [(t, tally(t)) for t in targets]
    for t, tl in tallies:
        if tl is None:
            lines.append(f"| {t.name} | {t.module} | not run | | | | | | | |")
            continue
        c = tl.counts
        lines.append(
            f"| {t.name} | {t.module} | {c['killed']} | {c['timeout']} | {c['survived']} "
            f"| {c['equivalent']} | {c['incompetent']} | {c['skipped']} | {c['pending']} "
            f"| {tl.score} |"
        )
    for t, tl in tallies:
        if tl is None or not tl.survivors:
            continue
        lines += ["", f"## {t.name}: {len(tl.survivors)} survivors", ""]
        for s in tl.survivors:
            lines += [f"### {s.path}:{s.line} {s.operator}", "", "```diff", s.diff.strip(), "```"]
    return "\n".join(lines) + "\n"


def write(targets: list[Target], path: Path = OUT / "report.md") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render(targets))
    print(f"wrote {path.relative_to(ROOT)}")
    return path
