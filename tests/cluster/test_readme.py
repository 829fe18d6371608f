"""Every code example in README.md's quickstart runs, in order, as a new user would run it.

The blocks run as one bash session (``set -euxo pipefail``), as a user would type them:
shell blocks as they are, Python blocks through ``python`` (the virtualenv's, once the
quickstart has activated it). The session runs in a scratch directory that links
``.venv`` to this repository's, so files the quickstart writes (trade.json, receipt.json)
land there; ``make`` runs this repository's Makefile (a shell function adds ``-C <repo>``)
with ``RUN_DIR`` pointing at the scratch ``run/`` and a free ``PORT_BASE``, both of which
the Makefile takes from the environment.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
from pathlib import Path

import pytest

from devtools.cluster import stop_cluster
from devtools.netgen import free_port_base
from node.netconfig import load_network

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
_FENCE = re.compile(r"^```(\w+)\n(.*?)^```", re.S | re.M)
_SESSION_TIMEOUT_S = 300


def quickstart_blocks(readme: str) -> list[tuple[str, str]]:
    """(language, code) of each fenced block between '## Quickstart' and the next '## '."""
    start = readme.index("\n## Quickstart")
    end = readme.find("\n## ", start + 1)
    section = readme[start : end if end != -1 else None]
    return [(m.group(1), m.group(2)) for m in _FENCE.finditer(section)]


def _run(cmd: list[str], cwd: Path, env: dict[str, str], what: str) -> str:
    done = subprocess.run(
        cmd,
        check=False,
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=_SESSION_TIMEOUT_S,
    )
    assert done.returncode == 0, (
        f"README step failed (exit {done.returncode}): {what}\n"
        f"stdout:\n{done.stdout[-3000:]}\nstderr:\n{done.stderr[-3000:]}"
    )
    return done.stdout


def test_the_quickstart_runs_as_written(tmp_path: Path) -> None:
    blocks = quickstart_blocks((REPO / "README.md").read_text())
    assert any(lang == "python" for lang, _ in blocks), "the quickstart shows the SDK"
    assert any(lang == "sh" for lang, _ in blocks), "the quickstart shows the CLI"
    run_dir = tmp_path / "run"
    env = dict(os.environ)
    (tmp_path / ".venv").symlink_to(REPO / ".venv")
    env["RUN_DIR"] = str(run_dir)
    env["PORT_BASE"] = str(free_port_base(4))
    env.pop("LEDGER_RUN_DIR", None)  # the CLI's default, run/, is the scratch one
    make_here = f'make() {{ command make -C {shlex.quote(str(REPO))} "$@"; }}'
    session = ["set -euxo pipefail", make_here]  # one shell session, as a user types it
    for lang, code in blocks:
        if lang == "sh":
            session.append(code)
        elif lang == "python":
            session.append(f"python <<'README_PYTHON'\n{code}README_PYTHON")
    try:
        text = _run(["bash", "-c", "\n".join(session)], tmp_path, env, "the quickstart")
    finally:
        if (run_dir / "network.json").exists():
            stop_cluster(load_network(run_dir))
    assert re.search(r"^valid", text, re.M), "verify-receipt accepted the CLI's receipt"
    assert re.search(r"^OK at height \d+ by [34] validators$", text, re.M), "the SDK's trade"
