"""House rule 1, checked by what the code reaches and does, not by import names alone.

Three checks, used by tests/unit/test_purity.py:

- ``import_graph``: every module the pure packages (node/core, node/settlement) import,
  followed transitively inside the project (``node.crypto``, ``node.codec``, ...), with
  every import outside the project checked against ``PURE_EXTERNAL`` (an allowlist: a
  module not on it is reported, with the chain of imports that reaches it).
- ``builtin_calls``: builtins that do I/O or run code by name (``open``, ``print``,
  ``eval``, ``__import__``, ...) and clock reads (``.now``, ``.today``) named anywhere
  in those modules.
- ``EffectGuard``: a run-time guard (an audit hook, which sees ``open``, sockets,
  subprocesses and imports, plus wrappers around the clocks, the random sources and
  ``print``) that records an effect when the nearest project frame on the stack belongs
  to a pure module. Code the pure layer calls back into (a store or a fake passed in by a
  test) is judged as its own, so the guard can run the pure layers' existing tests. An
  effect is recorded even if the pure code swallows the exception the guard raises.
  ``datetime.now()`` is a C call no wrapper sees without replacing the class (which
  breaks other libraries' type checks), so the static checks cover it.

As a pytest plugin (``-p tests.purity``) the guard runs over a whole test session and
fails every test during which pure code had an effect; ``--purity-plant FILE`` adds a file
to the pure set (for the negative controls only).
"""

from __future__ import annotations

import ast
import builtins
import gc
import importlib
import os
import random
import sys
import time
from collections.abc import Callable, Generator, Iterable
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
PURE_PACKAGES = ("node.core", "node.settlement")
# Modules outside the project that the pure layers may import: computation only.
PURE_EXTERNAL = frozenset(
    {
        "__future__", "abc", "bisect", "collections", "copy", "dataclasses", "enum", "functools",
        "hashlib", "heapq", "hmac", "itertools", "math", "operator", "re", "struct",
        "types", "typing",
        "datetime",  # dates as values (bond maturity); clock reads are CLOCK_READS below
        "cryptography",  # Ed25519 in node.crypto; key generation is guarded at run time
        "nacl",  # libsodium's Ed25519 verify in node.crypto (ADR 0009)
    }
)  # fmt: skip
# Builtins that touch the outside world or run code chosen at run time.
IMPURE_BUILTINS = frozenset(
    {"open", "input", "print", "exec", "eval", "compile", "__import__", "breakpoint",
     "exit", "quit", "help", "__builtins__"}
)  # fmt: skip
# Test tools that run tracers inside any code (hypothesis reads sources to explain).
HARNESS = ("hypothesis", "_pytest", "pluggy", "coverage")
# Attributes that read the clock through a module allowed above (``date.today()``).
CLOCK_READS = frozenset({"now", "utcnow", "today"})
# Audit events (docs.python.org "Audit events table") that are effects: files, the
# network, processes, the OS, imports at run time, code built from strings.
IMPURE_EVENTS = (
    "open", "os.", "socket.", "subprocess.", "shutil.", "tempfile.", "glob.", "urllib.",
    "http.", "ftplib.", "smtplib.", "ssl.", "select.", "fcntl.", "mmap.", "signal.",
    "ctypes.", "sqlite3.", "import", "exec", "compile", "builtins.input", "time.sleep",
    "pty.", "syslog.", "webbrowser.",
)  # fmt: skip


# --- static: the import graph ----------------------------------------------------------
def _module_file(name: str, root: Path) -> Path | None:
    base = root.joinpath(*name.split("."))
    for f in (base.with_suffix(".py"), base / "__init__.py"):
        if f.is_file():
            return f
    return None


def _package_modules(package: str, root: Path) -> list[str]:
    pkg = root.joinpath(*package.split("."))
    return sorted(
        ".".join(f.relative_to(root).with_suffix("").parts).removesuffix(".__init__")
        for f in pkg.glob("**/*.py")
    )


def parse(path: Path) -> ast.Module:
    """``ast.parse`` of a source file with the garbage collector held off: a finalizer run
    inside the AST constructor (an earlier test's asyncio task, logging as it is destroyed)
    trips CPython 3.11's check "AST constructor recursion depth mismatch" (seen once in
    CI's serial run, session 13)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        return ast.parse(path.read_text(), str(path))
    finally:
        if enabled:
            gc.enable()


def _imported(name: str, path: Path, root: Path) -> Iterable[str]:
    """Every module ``name`` (at ``path``) imports, absolute, anywhere in its code."""
    is_pkg = path.name == "__init__.py"
    for node in ast.walk(parse(path)):
        if isinstance(node, ast.Import):
            yield from (a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = name.split(".")[: len(name.split(".")) - node.level + is_pkg]
                base = ".".join([*parts, *([node.module] if node.module else [])])
            else:
                base = node.module or ""
            yield base
            for a in node.names:  # ``from node import crypto`` imports node.crypto
                if _module_file(f"{base}.{a.name}", root):
                    yield f"{base}.{a.name}"


def _with_parents(name: str) -> list[str]:
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts) + 1)]


@dataclass(frozen=True)
class Graph:
    modules: dict[str, Path]  # project modules reachable from the pure packages
    findings: list[str]  # imports outside the project not on the allowlist, with chains


def import_graph(
    packages: Iterable[str] = PURE_PACKAGES,
    root: Path = ROOT,
    allowed: frozenset[str] = PURE_EXTERNAL,
) -> Graph:
    via: dict[str, str | None] = {}
    todo = [m for p in packages for m in _package_modules(p, root)]
    for m in todo:
        via[m] = None
    modules: dict[str, Path] = {}
    findings: list[str] = []

    def chain(m: str) -> str:
        steps = [m]
        while (p := via.get(steps[-1])) is not None:
            steps.append(p)
        return " <- ".join(steps)

    while todo:
        name = todo.pop()
        path = _module_file(name, root)
        if path is None or name in modules:
            continue
        modules[name] = path
        for target in _imported(name, path, root):
            for m in _with_parents(target):
                if _module_file(m, root) is not None:
                    if m not in via:
                        via[m] = name
                        todo.append(m)
                elif m == target.split(".")[0] and m not in allowed:
                    findings.append(f"{m} imported by {chain(name)}")
    return Graph(modules, sorted(findings))


# --- static: builtins ------------------------------------------------------------------
def builtin_calls(paths: Iterable[Path], root: Path = ROOT) -> list[str]:
    """``file:line name`` for every impure builtin or clock read named in ``paths``."""
    found = []
    for path in paths:
        for node in ast.walk(parse(path)):
            if isinstance(node, ast.Name) and node.id in IMPURE_BUILTINS:
                found.append(f"{path.relative_to(root)}:{node.lineno} {node.id}")
            elif isinstance(node, ast.Attribute) and node.attr in CLOCK_READS:
                found.append(f"{path.relative_to(root)}:{node.lineno} .{node.attr}")
    return sorted(found)


# --- run time: the effect guard --------------------------------------------------------
class PureEffectError(AssertionError):
    """Pure code did I/O, read a clock or drew randomness."""


def _clock_names() -> list[str]:
    names = ["time", "time_ns", "monotonic", "monotonic_ns", "perf_counter"]
    names += ["perf_counter_ns", "process_time", "process_time_ns", "thread_time"]
    return [*names, "localtime", "gmtime", "ctime", "strftime", "sleep"]


_RANDOM_FUNCS = ("random", "getrandbits", "randbytes", "seed")


class EffectGuard:
    """Records effects whose nearest project frame is in ``pure_files``."""

    def __init__(self, pure_files: Iterable[Path], project_roots: Iterable[Path]) -> None:
        self.pure = {str(p) for p in pure_files}
        self.roots = tuple(str(r) + os.sep for r in project_roots)
        self.venv = str(ROOT / ".venv") + os.sep
        self.harness = tuple(f"{os.sep}{p}{os.sep}" for p in HARNESS)
        self.violations: list[str] = []
        self._undo: list[Callable[[], None]] = []
        self.armed = False

    # attribution
    def _culprit(self, frame: FrameType | None) -> str | None:
        while frame is not None:
            name = frame.f_code.co_filename
            if name in self.pure:
                return f"{Path(name).name}:{frame.f_lineno} in {frame.f_code.co_name}"
            if name.startswith(self.roots) and not name.startswith(self.venv):
                if name != __file__:
                    return None  # project code outside the pure set called it: its own
            elif any(h in name for h in self.harness):
                return None  # a tracer the test tools run between two lines of pure code
            frame = frame.f_back
        return None

    def check(self, effect: str) -> None:
        if not self.armed:
            return
        culprit = self._culprit(sys._getframe(1))
        if culprit is not None:
            message = f"{effect} from pure code at {culprit}"
            self.violations.append(message)
            raise PureEffectError(message)

    def _audit(self, event: str, args: tuple[Any, ...]) -> None:
        if self.armed and event.startswith(IMPURE_EVENTS):
            self.check(f"{event}{_brief(args)}")

    # installation
    def _wrap(self, owner: Any, name: str, effect: str) -> None:
        original = getattr(owner, name)
        guard = self

        def guarded(*args: Any, **kwargs: Any) -> Any:
            guard.check(effect)
            return original(*args, **kwargs)

        self._replace(owner, name, guarded)

    def _replace(self, owner: Any, name: str, value: Any) -> None:
        if name in owner.__dict__:
            saved = owner.__dict__[name]
            self._undo.append(lambda: setattr(owner, name, saved))
        else:
            self._undo.append(lambda: delattr(owner, name))
        setattr(owner, name, value)

    def install(self) -> None:
        """Arm the guard; audit hooks cannot be removed, so ``uninstall`` only disarms it."""
        sys.addaudithook(self._audit)
        for name in _clock_names():
            self._wrap(time, name, f"time.{name}()")
        for name in ("random", "uniform", "randint", "randrange", "choice", "choices"):
            self._wrap(random, name, f"random.{name}()")
        for name in ("shuffle", "sample", "getrandbits", "randbytes", "seed", "_urandom"):
            self._wrap(random, name, f"random.{name}()")
        for cls in (random.Random, random.SystemRandom):
            for name in _RANDOM_FUNCS:
                self._wrap(cls, name, f"random.{cls.__name__}.{name}()")
        self._wrap(os, "urandom", "os.urandom()")
        self._wrap(os, "getrandom", "os.getrandom()")
        self._wrap(builtins, "print", "print()")
        self._wrap(builtins, "input", "input()")
        from node import crypto

        self._wrap(crypto.SigningKey, "generate", "SigningKey.generate()")
        self.armed = True

    def uninstall(self) -> None:
        self.armed = False
        while self._undo:
            self._undo.pop()()


def _brief(args: tuple[Any, ...]) -> str:
    text = repr(args[:2])
    return text if len(text) < 80 else text[:77] + "...)"


# --- pytest plugin (-p tests.purity) ---------------------------------------------------
_GUARD = pytest.StashKey[EffectGuard]()


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--purity-plant",
        action="append",
        default=[],
        help="test only: treat this file as pure code (the guard's negative control)",
    )


def pytest_configure(config: pytest.Config) -> None:
    planted = [Path(p).resolve() for p in config.getoption("--purity-plant")]
    graph = import_graph()
    # Import the pure modules before arming: their imports at load time are the static
    # checks' business; an import while pure code runs is an effect.
    for name in graph.modules:
        importlib.import_module(name)
    for path in planted:
        sys.path.insert(0, str(path.parent))
        importlib.import_module(path.stem)
    pure = {p.resolve() for p in graph.modules.values()} | set(planted)
    guard = EffectGuard(pure, [ROOT, *(p.parent for p in planted)])
    guard.install()
    config.stash[_GUARD] = guard


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    guard = config.stash[_GUARD]
    terminalreporter.write_line(
        f"effect guard: armed over {len(guard.pure)} pure files, "
        f"{len(guard.violations)} effects from pure code"
    )


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, object, object]:
    guard = item.config.stash[_GUARD]
    seen = len(guard.violations)
    try:
        return (yield)
    finally:
        if len(guard.violations) > seen:
            raise PureEffectError("effect guard: " + "; ".join(guard.violations[seen:]))
