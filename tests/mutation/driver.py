"""The cosmic-ray driver behind ``make mutate``: one session per target, resumable.

Each target is mutated in its own copy of the repository (``build/mutation/NAME/src``), so
mutants never touch the working tree and targets never see each other's mutants; the copy
is refreshed at every run (tests written since are used; a run killed mid-mutant leaves
nothing behind). A session is cosmic-ray's sqlite work database: a re-run executes only
the mutants without a result. The session is started again from scratch when the target's
module changed since it was made (its mutation positions would be stale) or on ``--fresh``.
"""

from __future__ import annotations

import ast
import hashlib
import shutil
import sqlite3
import subprocess
import sys
import time
import tomllib
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "build" / "mutation"
TARGETS_FILE = Path(__file__).with_name("targets.toml")
# What a copy needs to import node and run the tests (generated protobuf code included:
# it is git-ignored but lives in node/wire and is copied with node/).
# What a mutated copy of the repository holds: the code (the SDK and the dev tools too,
# whose tests import them from the copy), the tests, docs and docker/ (some tests check
# them against the code).
COPIED = ("node", "client", "devtools", "tests", "docs", "docker", "pyproject.toml")
IGNORED = shutil.ignore_patterns("__pycache__", ".hypothesis", ".pytest_cache", "*.mdb")


def copy_repo(dst: Path) -> None:
    """The parts of the repository a mutant's tests need, into ``dst`` (which exists)."""
    for name in COPIED:
        path = ROOT / name
        if path.is_dir():
            shutil.copytree(path, dst / name, ignore=IGNORED)
        else:
            shutil.copy2(path, dst / name)


PYTEST = ("-m", "pytest", "-x", "-q", "-p", "no:cacheprovider")
TIMEOUT_MIN_S = 10.0
TIMEOUT_FACTOR = 3.0  # a mutant may run this many times as long as the baseline


class MutationError(Exception):
    """A target or a run that cannot give a meaningful score (fails loudly)."""


@dataclass(frozen=True, slots=True)
class Target:
    name: str
    module: str
    tests: tuple[str, ...]
    functions: tuple[str, ...] = ()

    @property
    def dir(self) -> Path:
        return OUT / self.name

    @property
    def src(self) -> Path:
        return self.dir / "src"

    @property
    def session(self) -> Path:
        return self.dir / "session.sqlite"

    @property
    def config(self) -> Path:
        return self.dir / "config.toml"


def load_targets(path: Path = TARGETS_FILE) -> list[Target]:
    data = tomllib.loads(path.read_text())
    targets = [
        Target(
            name=t["name"],
            module=t["module"],
            tests=tuple(t["tests"]),
            functions=tuple(t.get("functions", ())),
        )
        for t in data["target"]
    ]
    names = [t.name for t in targets]
    dup = [n for n, c in Counter(names).items() if c > 1]
    if dup:
        raise MutationError(f"{path}: target names must be unique, repeated: {dup}")
    for t in targets:
        if not (ROOT / t.module).is_file():
            raise MutationError(f"target {t.name}: module {t.module} does not exist")
    return targets


def select(targets: list[Target], names: list[str] | None) -> list[Target]:
    if not names:
        return targets
    known = {t.name: t for t in targets}
    missing = [n for n in names if n not in known]
    if missing:
        raise MutationError(f"unknown target(s) {missing}; known: {sorted(known)}")
    return [known[n] for n in names]


# --- function ranges ---------------------------------------------------------------------


def function_lines(source: str, names: tuple[str, ...]) -> list[tuple[int, int]]:
    """The line ranges (first, last, decorators included) of the named functions or
    methods ("func" or "Class.method"); a name that matches nothing is an error."""
    tree = ast.parse(source)
    found: dict[str, tuple[int, int]] = {}

    def visit(body: list[ast.stmt], prefix: str) -> None:
        for node in body:
            if isinstance(node, ast.ClassDef):
                visit(node.body, f"{prefix}{node.name}.")
            elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                first = min([node.lineno] + [d.lineno for d in node.decorator_list])
                found[f"{prefix}{node.name}"] = (first, node.end_lineno or node.lineno)

    visit(tree.body, "")
    ranges = []
    for name in names:
        hits = [r for qual, r in found.items() if qual == name or qual.endswith(f".{name}")]
        if len(hits) != 1:
            raise MutationError(f"function {name!r}: {len(hits)} definitions match, need 1")
        ranges.append(hits[0])
    return ranges


# --- running -------------------------------------------------------------------------------


def _cosmic_ray() -> str:
    exe = Path(sys.executable).with_name("cosmic-ray")
    if not exe.exists():
        raise MutationError("cosmic-ray is not installed: pip install -e '.[mutate]'")
    return str(exe)


def _test_command(t: Target) -> list[str]:
    return [sys.executable, *PYTEST, f"--basetemp={t.dir / 'pytest-tmp'}", *t.tests]


def _refresh_copy(t: Target) -> None:
    if t.src.exists():
        shutil.rmtree(t.src)
    t.src.mkdir(parents=True)
    copy_repo(t.src)


def baseline(t: Target) -> float:
    """Run the selected tests on the unmutated copy; their duration in seconds."""
    start = time.monotonic()
    proc = subprocess.run(
        _test_command(t), cwd=t.src, capture_output=True, text=True, check=False, timeout=600
    )
    elapsed = time.monotonic() - start
    if proc.returncode != 0:
        raise MutationError(
            f"target {t.name}: the selected tests fail WITHOUT a mutant (exit "
            f"{proc.returncode}); every mutant would count as killed. Fix them first:\n"
            f"{proc.stdout[-3000:]}{proc.stderr[-2000:]}"
        )
    return elapsed


def _write_config(t: Target, timeout_s: float) -> None:
    import shlex

    command = shlex.join(_test_command(t))
    t.config.write_text(
        "[cosmic-ray]\n"
        f'module-path = "{t.module}"\n'
        f"timeout = {timeout_s:.1f}\n"
        "excluded-modules = []\n"
        f"test-command = {_toml_str(command)}\n"
        "\n[cosmic-ray.distributor]\n"
        'name = "local"\n'
    )


def _toml_str(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _module_digest(t: Target) -> str:
    text = (ROOT / t.module).read_bytes() + "\0".join(t.functions).encode()
    return hashlib.sha256(text).hexdigest()


def _init_session(t: Target, fresh: bool) -> None:
    from cosmic_ray.work_db import WorkDB, use_db

    stamp = t.dir / "session.module-sha256"
    digest = _module_digest(t)
    if not fresh and t.session.exists() and stamp.exists() and stamp.read_text() == digest:
        with use_db(str(t.session), WorkDB.Mode.open) as db:
            if db.num_work_items:
                print(f"{t.name}: resuming session {t.session.relative_to(ROOT)}", flush=True)
                return
    t.session.unlink(missing_ok=True)
    stamp.unlink(missing_ok=True)
    subprocess.run([_cosmic_ray(), "init", str(t.config), str(t.session)], cwd=t.src, check=True)
    stamp.write_text(digest)


def annotation_spans(source: str) -> list[tuple[tuple[int, int], tuple[int, int]]]:
    """Where the module's annotations are, if it never evaluates them (``from __future__
    import annotations``): a mutant there changes a string nobody reads, so it is
    equivalent by construction and is not run."""
    tree = ast.parse(source)
    future = any(
        isinstance(n, ast.ImportFrom)
        and n.module == "__future__"
        and any(a.name == "annotations" for a in n.names)
        for n in tree.body
    )
    if not future:
        return []
    spans = []
    for node in ast.walk(tree):
        notes: list[ast.expr | None] = []
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            a = node.args
            args = [*a.posonlyargs, *a.args, *a.kwonlyargs, a.vararg, a.kwarg]
            notes = [x.annotation for x in args if x is not None] + [node.returns]
        elif isinstance(node, ast.AnnAssign):
            notes = [node.annotation]
        for e in notes:
            if e is not None and e.end_lineno is not None and e.end_col_offset is not None:
                spans.append(((e.lineno, e.col_offset), (e.end_lineno, e.end_col_offset)))
    return spans


SKIP_OUTSIDE = "outside the target's functions"
SKIP_ANNOTATION = "equivalent: an annotation, never evaluated"
SKIP_DEFERRED = "deferred: not run in a survivors-only run"


def _undefer(t: Target) -> None:
    with sqlite3.connect(t.session) as con:
        con.execute("DELETE FROM work_results WHERE output = ?", (SKIP_DEFERRED,))


def _classify(t: Target, *, retest: bool, survivors_only: bool = False) -> None:
    """Mark pending mutants that need no run: outside the target's functions, or inside an
    annotation. With ``retest``, survivors are made pending again first (new tests since);
    with ``survivors_only`` too, every other pending mutant is deferred to a later run."""
    from cosmic_ray.work_db import WorkDB, use_db
    from cosmic_ray.work_item import TestOutcome, WorkerOutcome, WorkResult

    source = (ROOT / t.module).read_text()
    ranges = function_lines(source, t.functions) if t.functions else [(1, 10**9)]
    notes = annotation_spans(source)
    _undefer(t)  # what an interrupted run deferred is pending again
    survivors: set[str] = set()
    if retest or survivors_only:
        with sqlite3.connect(t.session) as con:
            survived = (TestOutcome.SURVIVED.name,)
            survivors = {
                job
                for (job,) in con.execute(
                    "SELECT job_id FROM work_results WHERE test_outcome = ?", survived
                )
            }
            con.execute("DELETE FROM work_results WHERE test_outcome = ?", survived)
        print(f"{t.name}: {len(survivors)} survivors to run again", flush=True)
    with use_db(str(t.session), WorkDB.Mode.open) as db:
        done = {job for job, _ in db.results}
        skip: dict[str, list[str]] = {SKIP_OUTSIDE: [], SKIP_ANNOTATION: [], SKIP_DEFERRED: []}
        for item in db.work_items:
            if item.job_id in done:
                continue
            starts = [m.start_pos for m in item.mutations]
            if not any(lo <= row <= hi for row, _ in starts for lo, hi in ranges):
                skip[SKIP_OUTSIDE].append(item.job_id)
            elif all(any(a <= pos < b for a, b in notes) for pos in starts):
                skip[SKIP_ANNOTATION].append(item.job_id)
            elif survivors_only and item.job_id not in survivors:
                skip[SKIP_DEFERRED].append(item.job_id)
        for why, jobs in skip.items():
            result = WorkResult(worker_outcome=WorkerOutcome.SKIPPED, output=why)
            db.set_multiple_results(jobs, result)
            if jobs:
                print(f"{t.name}: {len(jobs)} mutants skipped: {why}", flush=True)


def _progress(t: Target) -> tuple[int, int]:
    """(done, total) over the mutants this target runs (skipped ones excluded)."""
    from cosmic_ray.work_db import WorkDB, use_db
    from cosmic_ray.work_item import WorkerOutcome

    with use_db(str(t.session), WorkDB.Mode.open) as db:
        skipped = sum(1 for _, r in db.results if r.worker_outcome == WorkerOutcome.SKIPPED)
        return db.num_results - skipped, db.num_work_items - skipped


def run_target(
    t: Target,
    *,
    fresh: bool,
    retest: bool,
    timeout_s: float | None,
    poll_s: float,
    survivors_only: bool = False,
) -> None:
    t.dir.mkdir(parents=True, exist_ok=True)
    _refresh_copy(t)
    took = baseline(t)
    per_mutant = timeout_s or max(TIMEOUT_MIN_S, TIMEOUT_FACTOR * took)
    print(f"{t.name}: baseline passes in {took:.1f} s; timeout {per_mutant:.0f} s", flush=True)
    _write_config(t, per_mutant)
    _init_session(t, fresh)
    _classify(t, retest=retest, survivors_only=survivors_only)
    try:
        _exec(t, poll_s)
    finally:
        _undefer(t)


def _exec(t: Target, poll_s: float) -> None:
    done, total = _progress(t)
    print(f"{t.name}: {done} of {total} mutants done", flush=True)
    if done == total:
        return
    start = time.monotonic()
    proc = subprocess.Popen(
        [_cosmic_ray(), "exec", str(t.config), str(t.session)],
        cwd=t.src,
        stdout=subprocess.DEVNULL,
    )
    last = done
    while proc.poll() is None:
        time.sleep(poll_s)
        done, total = _progress(t)
        if done != last:
            print(f"{t.name}: {done} of {total} ({time.monotonic() - start:.0f} s)", flush=True)
            last = done
    if proc.returncode != 0:
        raise MutationError(f"{t.name}: cosmic-ray exec exited {proc.returncode}")
    done, total = _progress(t)
    print(f"{t.name}: {done} of {total} done in {time.monotonic() - start:.0f} s", flush=True)


def run(
    targets: list[Target],
    *,
    fresh: bool,
    retest: bool,
    timeout_s: float | None,
    poll_s: float,
    survivors_only: bool = False,
) -> None:
    for i, t in enumerate(targets, 1):
        print(f"== target {t.name} ({i} of {len(targets)}): {t.module}", flush=True)
        run_target(
            t,
            fresh=fresh,
            retest=retest,
            timeout_s=timeout_s,
            poll_s=poll_s,
            survivors_only=survivors_only,
        )
