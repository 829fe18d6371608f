"""Helpers of the packaging tests: copy the checkout as a fresh clone would have it, build
the sdist and the wheel, make virtualenvs outside the checkout, read the lock file.

Installs are offline (``--no-index``) from the wheelhouse ``make setup`` fills, so the
tests download nothing.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tarfile
import tomllib
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[2]
WHEELHOUSE = ROOT / ".venv" / "wheelhouse"
LOCK = ROOT / "requirements" / "validator.lock"
# What the build hook must add to every wheel (proto/generate.py GENERATED).
WIRE_MODULES = tuple(
    f"node/wire/{stem}{suffix}"
    for stem in ("ledger", "peer")  # the public API and the validators' Peer service
    for suffix in ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py")
)
# The dev tools (issue 16 item 2): devtools/, and where they lived in node/ before it.
# Neither the wheel nor the sdist may carry one (MANIFEST.in, pyproject's package find).
DEV_TOOL_PREFIXES = (
    "devtools/", "node/demo", "node/bench", "node/chaos/", "node/cluster.py",
    "node/netgen.py", "node/k8s.py",
)  # fmt: skip
# pyproject's validator extra: not one of these may be installed by the SDK alone.
VALIDATOR_MODULES = ("lmdb", "grpc_health", "grpc_reflection", "prometheus_client")
STEP_TIMEOUT_S = 300  # one build or install; far above what they take (seconds)


def pyproject() -> dict[str, object]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def clean_env(**extra: str) -> dict[str, str]:
    """The environment minus what would let a child see this checkout or the machine's
    pip settings (so an install can only use the wheelhouse)."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PIP_", "PYTHON", "VIRTUAL_ENV", "UV_"))
    }
    env["PIP_CONFIG_FILE"] = os.devnull
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    env.update(extra)
    return env


def run(cmd: list[str | Path], cwd: Path, **extra: str) -> str:
    done = subprocess.run(
        [str(c) for c in cmd],
        cwd=cwd,
        env=clean_env(**extra),
        capture_output=True,
        text=True,
        timeout=STEP_TIMEOUT_S,
        check=False,
    )
    assert done.returncode == 0, f"{cmd} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def copy_checkout(dst: Path) -> Path:
    """The files a fresh clone of this working tree has (tracked and new, not ignored), so
    no generated code, .venv or build output of the checkout comes along."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.decode()
    for rel in filter(None, listed.split("\0")):
        src = ROOT / rel
        if src.is_file():  # a file deleted in the working tree is still listed as cached
            (dst / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst / rel)
    return dst


def build_dists(src: Path, out: Path) -> tuple[Path, Path]:
    """``python -m build``: the sdist, then the wheel built from that sdist (so both are
    proven). No isolation: the dev virtualenv has the build-system pins, offline."""
    run([sys.executable, "-m", "build", "--no-isolation", "--outdir", out, src], cwd=src)
    (sdist,) = out.glob("*.tar.gz")
    (wheel,) = out.glob("*.whl")
    return sdist, wheel


def missing_wire_modules(wheel: Path) -> list[str]:
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
    return [m for m in WIRE_MODULES if m not in names]


def dev_tool_files(names: Iterable[str]) -> list[str]:
    """The dev tools' files among a package's file names (paths from the package root)."""
    return sorted(n for n in names if n.startswith(DEV_TOOL_PREFIXES))


def wheel_files(wheel: Path) -> list[str]:
    with zipfile.ZipFile(wheel) as z:
        return z.namelist()


def sdist_files(sdist: Path) -> list[str]:
    """Paths inside the sdist's top directory (``dvp_ledger-X.Y/``)."""
    with tarfile.open(sdist) as t:
        return [n.split("/", 1)[1] for n in t.getnames() if "/" in n]


def make_venv(path: Path) -> Path:
    """A virtualenv of this interpreter's base Python; returns its bin directory."""
    run([sys.executable, "-m", "venv", path], cwd=path.parent)
    return path / "bin"


def install(bin_dir: Path, *what: str | Path) -> None:
    if not WHEELHOUSE.is_dir():
        raise AssertionError(f"{WHEELHOUSE} is missing: run `make setup`")
    pip = [bin_dir / "python", "-m", "pip", "install", "--no-index", "--find-links", WHEELHOUSE]
    run([*pip, *what], cwd=bin_dir.parent)


# --- the lock file -----------------------------------------------------------------------


@dataclass(frozen=True)
class Pin:
    version: str
    hashes: tuple[str, ...]


_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)")
_HASH = re.compile(r"--hash=(sha256:[0-9a-f]{64})")


def parse_lock(text: str) -> dict[str, Pin]:
    """requirements/validator.lock: ``name==version \\`` then its ``--hash=`` lines."""
    pins: dict[str, Pin] = {}
    name = ""
    for line in text.splitlines():
        if m := _PIN.match(line):
            name = _canonical(m[1])
            pins[name] = Pin(m[2], ())
        elif (h := _HASH.search(line)) and name:
            pins[name] = Pin(pins[name].version, (*pins[name].hashes, h[1]))
    return pins


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def lock_problems(pins: dict[str, Pin], sdk: list[str], validator: list[str]) -> list[str]:
    """What is wrong with a lock for these requirements: a requirement it leaves out or
    pins outside its range (the SDK's ranges too: the validator runs the SDK's code), a
    validator pin it changes, a pin without a hash."""
    problems = [f"{n}=={p.version} has no hash" for n, p in pins.items() if not p.hashes]
    for text in [*sdk, *validator]:
        req = Requirement(text)
        pin = pins.get(_canonical(req.name))
        if pin is None:
            problems.append(f"{req.name} is not in the lock")
        elif not req.specifier.contains(pin.version):
            problems.append(f"{req.name}=={pin.version} is outside {req.specifier}")
    return problems
