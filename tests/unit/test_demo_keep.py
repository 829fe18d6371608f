"""A demo that fails keeps its temporary run directory and prints where it is: the node
logs are the only record of why a trade was not final (docs/reliability.md, "A finality
wait that missed its commit"). One that succeeds leaves nothing behind."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from devtools.demo import run as demo


def _fake_demo(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, succeeds: bool) -> Path:
    """The demo's own directory handling around a cluster run that succeeds or not."""
    made = tmp_path / "ledger-demo-x"

    def mkdtemp(prefix: str) -> str:
        made.mkdir()
        return str(made)

    def generate(run_dir: Path, spec: Any, force: bool) -> object:
        run_dir.mkdir(parents=True)
        (run_dir / "logs").mkdir()
        return object()

    monkeypatch.setattr(demo.tempfile, "mkdtemp", mkdtemp)
    monkeypatch.setattr(demo, "generate", generate)
    monkeypatch.setattr(demo, "_run", lambda net, run_dir, console: succeeds)
    return made


def test_a_failed_demo_keeps_its_run_dir_and_prints_its_path(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    made = _fake_demo(monkeypatch, tmp_path, succeeds=False)
    assert demo.main(["--n", "4"]) == 1
    assert (made / "run" / "logs").is_dir()
    assert f"run directory kept: {made / 'run'}" in capsys.readouterr().err


def test_a_demo_that_succeeds_removes_its_run_dir(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    made = _fake_demo(monkeypatch, tmp_path, succeeds=True)
    assert demo.main(["--n", "4"]) == 0
    assert not made.exists()
    assert "kept" not in capsys.readouterr().err
