"""A warm runner for the known mutants' child pytest runs (tests/mutation/test_known_mutants.py).

A fresh ``python -m pytest`` per mutant spends most of its time before the first test:
the interpreter, pytest and its plugins, hypothesis, cryptography, protobuf. This process
imports those once, then forks one child per request. The child forgets every project
module (``node``, ``client``, ``devtools``, ``tests``: none is imported here, and none may
be, or the child would run them instead of the mutant copy's), puts the copy first on its
path, and runs ``pytest.main`` there: the same arguments, environment and exit codes as
``python -m pytest`` in the copy.

Requests and replies are one JSON object per line, on stdin and stdout:
``{"repo", "args", "env", "timeout_s"}`` in, ``{"rc", "output"}`` out, where ``rc`` is
pytest's exit code or None when the run passed ``timeout_s`` (its process group, and every
process whose command line names the copy, validators started in their own session
included, are killed then, and after every run).

Run as ``python -m tests.mutation.warm``; it ends at the end of its input.
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import json
import os
import select
import signal
import sys
from pathlib import Path
from typing import Any, NoReturn

PROJECT = frozenset({"node", "client", "devtools", "tests"})
# Imported before forking: what every child imports, none of it the project's. grpc only
# imported: its core starts no thread and no state until a channel or server is made,
# which happens in the children alone (gRPC's fork support stays off).
PRELOAD = (
    "pytest",
    "_pytest.assertion.rewrite",
    "_pytest.python",
    "_pytest.fixtures",
    "_pytest.terminal",
    "pytest_asyncio.plugin",
    "xdist.plugin",
    "hypothesis",
    "cryptography.hazmat.primitives.asymmetric.ed25519",
    "cryptography.x509",
    "google.protobuf.message",
    "lmdb",
    "grpc",
    "grpc.aio",
    "asyncio",
)
OUTPUT_TAIL = 8_000  # characters of a run's output sent back


def _child(repo: str, args: list[str], env: dict[str, str], out: str) -> NoReturn:
    """In the forked child: run pytest in ``repo`` as ``python -m pytest`` would there."""
    rc = 3
    try:
        os.setpgid(0, 0)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)  # not the runner's requests
        os.close(null)
        fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.close(fd)
        os.chdir(repo)
        os.environ.clear()
        os.environ.update(env)
        for name in [n for n in sys.modules if n.partition(".")[0] in PROJECT]:
            del sys.modules[name]
        sys.path.insert(0, repo)  # main() took the runner's own project entries out
        sys.dont_write_bytecode = env.get("PYTHONDONTWRITEBYTECODE") == "1"
        importlib.invalidate_caches()
        import pytest

        sys.argv = [str(Path(pytest.__file__).with_name("__main__.py")), *args]
        rc = int(pytest.main(args))
    except BaseException as e:  # reported as pytest's internal error (exit 3)
        print(f"warm runner child failed: {e!r}", file=sys.stderr)
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
    os._exit(rc)


def _in_project(path: str) -> bool:
    """A path entry from which a project package could be imported (the directory this
    runner was started from, or the one holding ``tests``)."""
    p = Path(path or ".").resolve()
    return any((p / name / "__init__.py").exists() for name in PROJECT)


def _kill_leftovers(pgid: int, repo: str) -> None:
    """The child's process group, and any process whose command line names ``repo``."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)
    exact, under = repo.encode(), repo.encode() + b"/"
    me = os.getpid()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == me:
            continue
        with contextlib.suppress(OSError):
            args = (entry / "cmdline").read_bytes().split(b"\0")
            if any(a == exact or under in a for a in args):
                os.kill(int(entry.name), signal.SIGKILL)


def _exits_within(pid: int, timeout_s: float) -> bool:
    """Whether the child exits within ``timeout_s`` (it is not reaped here)."""
    fd = os.pidfd_open(pid)
    try:
        ready, _, _ = select.select([fd], [], [], timeout_s)
    finally:
        os.close(fd)
    return bool(ready)


def run(request: dict[str, Any]) -> dict[str, Any]:
    repo, args, env = request["repo"], request["args"], request["env"]
    out = str(Path(repo) / ".warm-output")
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        _child(repo, args, env, out)
    with contextlib.suppress(OSError):
        os.setpgid(pid, pid)  # as the child does: whichever runs first
    exited = _exits_within(pid, float(request["timeout_s"]))
    _kill_leftovers(pid, repo)  # the child too, in its group, when it ran past the bound
    _, status = os.waitpid(pid, 0)
    rc = os.waitstatus_to_exitcode(status) if exited else None
    try:
        output = Path(out).read_text(errors="replace")[-OUTPUT_TAIL:]
    except OSError as e:
        output = f"(no output: {e})"
    return {"rc": rc, "output": output}


def main() -> None:
    sys.path[:] = [p for p in sys.path if p and not _in_project(p)]
    for name in PRELOAD:
        importlib.import_module(name)
    gc.freeze()  # what the children share: their collections skip it, their pages stay shared
    leaked = sorted(n for n in sys.modules if n.partition(".")[0] in PROJECT - {"tests"})
    if leaked:
        raise SystemExit(f"warm runner: project modules imported before forking: {leaked}")
    for line in sys.stdin:
        if line.strip():
            print(json.dumps(run(json.loads(line))), flush=True)


if __name__ == "__main__":
    main()
