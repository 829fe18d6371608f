"""The peer-message benchmark runs end to end (a receiver process, a few frames over mTLS
on loopback) and refuses bad arguments."""

from __future__ import annotations

import re

import pytest

from devtools.bench import transport

# It starts the receiver as a child process (tests/isolation.py).
pytestmark = pytest.mark.serial

_FIGURE = r"([0-9.]+) us CPU per message"


def test_a_small_run_prints_each_sides_cpu_per_message(capsys: pytest.CaptureFixture[str]) -> None:
    assert transport.main(["--messages", "60", "--rate", "500", "--batch", "3"]) == 0
    out = capsys.readouterr().out
    assert "60 messages of 300 bytes, 3 per frame, 500 frames/s" in out
    sender = re.search(r"sender: -?" + _FIGURE, out)
    receiver = re.search(r"receiver: " + _FIGURE, out)
    assert sender is not None and receiver is not None, out
    assert float(receiver.group(1)) > 0


@pytest.mark.parametrize("bad", [["--messages", "1"], ["--batch", "0"], ["--rate", "0"]])
def test_bad_arguments_are_refused(bad: list[str]) -> None:
    with pytest.raises(SystemExit) as e:
        transport.main(bad)
    assert e.value.code == 2
