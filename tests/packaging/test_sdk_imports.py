"""The SDK and both commands without the validator extra, in this checkout: a child Python
whose import system refuses lmdb, the gRPC health/reflection packages and
prometheus_client (what `pip install dvp-ledger` leaves out) imports the SDK, runs `ledger
--help` and `--version`, replays into a MemoryStore, and gets an install hint from the
validator. tests/packaging/test_install.py does the same from a real wheel install."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from node import __version__
from node._code import code_digest
from tests.packaging.dist import ROOT, VALIDATOR_MODULES

_BLOCKER = f"""
import importlib.abc, sys

class _NoValidatorExtra(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in {set(VALIDATOR_MODULES)!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name.split(".")[0])
        return None

sys.meta_path.insert(0, _NoValidatorExtra())
"""


def _without_validator_extra(body: str) -> subprocess.CompletedProcess[str]:
    script = _BLOCKER + textwrap.dedent(body)
    return subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_sdk_cli_and_replay_store_import_without_the_validator_extra() -> None:
    done = _without_validator_extra(
        """
        import contextlib, io
        import client, client.cli
        from node.store import MemoryStore  # what `ledger holders --height` replays into
        for argv in (["--help"], ["--version"]):
            out = io.StringIO()
            with contextlib.redirect_stdout(out):
                assert client.cli.main(argv) == 0, argv
            print(out.getvalue().splitlines()[0])
        print("version", client.__version__)
        print("loaded", sorted({m.split(".")[0] for m in sys.modules} & set(BLOCKED)))
        """.replace("BLOCKED", repr(VALIDATOR_MODULES))
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("usage: ledger")
    assert lines[1] == f"ledger {__version__}"
    assert f"version {__version__}" in lines
    assert "loaded []" in lines


def test_the_validator_says_which_extra_it_needs() -> None:
    done = _without_validator_extra(
        """
        from node.__main__ import main
        try:
            main(["--version"])
        except SystemExit as e:
            assert e.code == 0
        raise SystemExit(main(["--config", "/nonexistent/config.json"]))
        """
    )
    assert done.stdout == f"ledger-node {__version__} (code {code_digest()})\n"
    assert done.returncode == 2
    assert "pip install 'dvp-ledger[validator]'" in done.stderr


def test_the_blocker_refuses_the_validator_modules() -> None:
    """Negative control: under the same blocker the validator runtime cannot import, so
    the tests above would fail if the SDK reached any of those modules."""
    done = _without_validator_extra("import node.runtime\n")
    assert done.returncode != 0
    assert "ModuleNotFoundError" in done.stderr
    for name in VALIDATOR_MODULES:
        probe = _without_validator_extra(f"import {name}\n")
        assert "ModuleNotFoundError" in probe.stderr, name


def test_the_console_says_which_extra_it_needs() -> None:
    """Without aiohttp (the console extra) `ledger console` is a usage error naming the
    extra, not a traceback; the rest of the CLI does not need it (above)."""
    done = _without_validator_extra(
        """
        import importlib.abc

        class _NoConsoleExtra(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path, target=None):
                if name.split(".")[0] == "aiohttp":
                    raise ModuleNotFoundError(f"No module named {name!r}", name="aiohttp")
                return None

        sys.meta_path.insert(0, _NoConsoleExtra())
        import client.cli
        raise SystemExit(client.cli.main(["console", "--port", "0"]))
        """
    )
    assert done.returncode == 2, done.stderr
    assert "pip install 'dvp-ledger[console]'" in done.stderr
    assert "Traceback" not in done.stderr
