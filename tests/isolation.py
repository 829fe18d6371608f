"""Which tests may share the cores, and the guard that keeps that group honest.

`make test` runs the suite in two pytest runs (docs/testing.md, "CI wall time"): the tests
that start no process on both cores with pytest-xdist (``-m "not serial"``), then the
``serial`` ones alone (``-m serial``). A test that starts a process (a validator cluster,
a browser, netgen, a child Python) is serial: its processes escape the xdist worker (ports,
run directories, and the CPU that a cluster's timeouts need).

- every test under tests/cluster/ and tests/packaging/ is serial: each starts processes;
- elsewhere a test says so itself with ``@pytest.mark.serial``;
- a known mutant (tests/mutation) is serial when a test it names is (``names_serial_test``);
  the others are ``child_pytest``: they may start ``python -m pytest`` (the named tests,
  which are all guarded the same way in the child) and the warm runner that forks such
  children, one per xdist worker (tests/mutation/warm.py).

The guard: while a test without the ``serial`` marker runs (setup, call and teardown),
starting a process fails it. An audit hook sees ``subprocess.Popen`` (asyncio's
subprocesses included), ``os.fork``, ``os.posix_spawn``, ``os.system``, ``os.exec*`` and
``os.spawn*``; a wrapper sees multiprocessing's spawn and forkserver launches, which call
``_posixsubprocess.fork_exec`` with no audit event. The failure is recorded even when the
test swallows the exception the guard raises. Loaded by tests/conftest.py.
"""

from __future__ import annotations

import _posixsubprocess
import importlib
import sys
from collections.abc import Callable, Generator, Iterable
from typing import Any

import pytest

SERIAL_DIRS = ("tests/cluster/", "tests/packaging/")
WARM_RUNNER = "tests.mutation.warm"  # forks the known mutants' child pytest runs
# Audit events (docs.python.org "Audit events table") that start a process.
SPAWN_EVENTS = frozenset(
    {"subprocess.Popen", "os.fork", "os.forkpty", "os.posix_spawn", "os.spawn", "os.system",
     "os.exec"}
)  # fmt: skip
MARKERS = (
    "serial: starts processes (clusters, a browser, netgen, a child Python): runs in make "
    "test's serial run, never beside another test (tests/isolation.py)",
    "child_pytest: a known mutant whose named tests are all in the parallel run: may start "
    "the one `python -m pytest` that runs them (tests/isolation.py)",
)


class ProcessInParallelGroup(AssertionError):
    """A test of the parallel run started a process without the ``serial`` marker."""


def _marks(obj: object) -> list[Any]:
    marks = getattr(obj, "pytestmark", [])
    return list(marks) if isinstance(marks, list) else [marks]


def names_serial_test(test_ids: Iterable[str]) -> bool:
    """Whether any of these ids (``path::name[param]``) is a serial test, read from its
    directory and the ``serial`` marks on its module, class and function, without
    running a collection (the known mutants decide their run at import)."""
    for test_id in test_ids:
        path, _, name = test_id.partition("::")
        if path.startswith(SERIAL_DIRS):
            return True
        obj: object = importlib.import_module(path.removesuffix(".py").replace("/", "."))
        marks = _marks(obj)
        for part in name.split("[")[0].split("::"):
            obj = getattr(obj, part)
            marks += _marks(obj)
        if any(m.name == "serial" for m in marks):
            return True
    return False


def _is_child_pytest(event: str, args: tuple[Any, ...]) -> bool:
    if event != "subprocess.Popen":
        return False
    argv = [str(a) for a in (args[1] if isinstance(args[1], list | tuple) else [args[1]])]
    return argv[:3] in ([sys.executable, "-m", "pytest"], [sys.executable, "-m", WARM_RUNNER])


class ProcessGuard:
    """Refuses process starts while an unmarked test runs; records each one."""

    def __init__(self) -> None:
        self.test: str | None = None  # the nodeid being watched, None when disarmed
        self.child_pytest = False
        self.starts: list[str] = []
        self.installed = False

    def install(self) -> None:
        """Once per process. Audit hooks cannot be removed: between tests the guard is
        only disarmed."""
        if self.installed:
            return
        self.installed = True
        sys.addaudithook(self._audit)
        self._wrap_fork_exec(_posixsubprocess.fork_exec)

    def _wrap_fork_exec(self, original: Callable[..., int]) -> None:
        def fork_exec(*args: Any, **kwargs: Any) -> int:
            self._refuse("_posixsubprocess.fork_exec", args[0] if args else "")
            return original(*args, **kwargs)

        # subprocess holds its own reference (it audits as subprocess.Popen above);
        # multiprocessing looks the name up on the module at every launch.
        _posixsubprocess.fork_exec = fork_exec  # type: ignore[attr-defined]

    def _audit(self, event: str, args: tuple[Any, ...]) -> None:
        if self.test is None or event not in SPAWN_EVENTS:
            return
        if self.child_pytest and _is_child_pytest(event, args):
            return
        self._refuse(event, args[:2])

    def _refuse(self, what: str, detail: object) -> None:
        if self.test is None:
            return
        message = (
            f"{self.test} started a process ({what} {str(detail)[:120]}) but is not marked "
            "serial: mark it @pytest.mark.serial so it runs alone (tests/isolation.py)"
        )
        self.starts.append(message)
        raise ProcessInParallelGroup(message)

    def watch(self, item: pytest.Item) -> Generator[None, object, object]:
        """A hook wrapper's body: arm around one phase, fail it if a process started."""
        if item.get_closest_marker("serial") is not None:
            return (yield)
        seen = len(self.starts)
        self.test, self.child_pytest = item.nodeid, bool(item.get_closest_marker("child_pytest"))
        try:
            return (yield)
        finally:
            self.test, self.child_pytest = None, False
            if len(self.starts) > seen:
                raise ProcessInParallelGroup("; ".join(self.starts[seen:]))


_GUARD = ProcessGuard()


def pytest_configure(config: pytest.Config) -> None:
    for line in MARKERS:
        config.addinivalue_line("markers", line)
    _GUARD.install()


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Before ``-m`` selects: the directories whose every test starts processes."""
    for item in items:
        if item.nodeid.startswith(SERIAL_DIRS):
            item.add_marker(pytest.mark.serial)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Generator[None, object, object]:
    return (yield from _GUARD.watch(item))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, object, object]:
    return (yield from _GUARD.watch(item))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item) -> Generator[None, object, object]:
    return (yield from _GUARD.watch(item))
