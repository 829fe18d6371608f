"""Golden transcripts: short scenarios on 4 replicas, each driven by its engine, whose
transcript (node/core/transcript.py) must match ``tests/unit/golden/<name>.txt`` line by
line. A change in behaviour -- a message more or less, another order, a refusal -- shows
as a diff.

After an intended change, rewrite the files and review the diff like code:

    UPDATE_GOLDEN=1 .venv/bin/python -m pytest -q tests/unit/test_transcripts.py
    git diff tests/unit/golden/
"""

from __future__ import annotations

import difflib
import os
import textwrap
from collections import deque
from collections.abc import Callable
from pathlib import Path

import pytest

from node.config import BATCH_DELAY_MS, VIEW_TIMEOUT_BASE_MS
from node.core import Block, Phase, Proposal, QCMessage, SyncRequest
from node.core.transcript import Transcript, describe
from node.merkle import EMPTY_ROOT
from tests.unit.test_core_replica import CHAIN, ROOT0, Net

GOLDEN = Path(__file__).parent / "golden"
UPDATE_ENV = "UPDATE_GOLDEN"


def _recorded(n: int = 4) -> tuple[Net, deque[str]]:
    """A cluster whose engines all write to one transcript, in the order things happen."""
    net, out = Net(n=n), deque[str]()
    net.now = 0
    for i, node in enumerate(net.nodes):
        net.engine(i).observers.append(Transcript(node, f"n{i} ", out))
    return net, out


def fresh_view_commit(net: Net) -> None:
    """A client's trade at the leader of view 0: proposal, two rounds of votes, commit;
    then the empty block that certifies its results."""
    net.engine(0).submit(b"trade-1", 0)
    net.run()
    net.tick(BATCH_DELAY_MS)


def timeout_view_change(net: Net) -> None:
    """The leader of view 0 is down: the view times out, the timeouts form a TC, and the
    leader of view 1 proposes with it."""
    net.down = {0}
    for i in (1, 2, 3):
        net.engine(i).submit(b"trade-1", 0)
    net.run()
    net.tick(VIEW_TIMEOUT_BASE_MS)


def refused_non_leader(net: Net) -> None:
    """Validator 2 proposes in view 0, which validator 0 leads: no vote, and a refusal."""
    block = Block(
        CHAIN, 1, 0, net.nodes[1].committed_hash, 2, 1_000, 0, ROOT0, EMPTY_ROOT, (b"t",)
    )  # fmt: skip
    net.engine(1).step(2, Proposal(0, block, None, None), 1_000)


def catch_up(net: Net) -> None:
    """Validator 3 misses a commit; a peer's word of its height makes it ask for the
    block, which it then commits from the certificate that comes with it."""
    net.down = {3}
    fresh_view_commit(net)
    net.down = set()
    net.now = 100
    net.engine(3).peer_height(0, net.disks[0].committed_height(), 100)
    net.run()


def pipelined_proposal(net: Net) -> None:
    """The commit certificate of block 1 is slow to leave the leader of view 0: the leader
    of view 1, holding block 1's prepare QC and its speculative roots, proposes block 2 on
    that QC; when the certificate arrives, block 1 commits, then block 2 in height order."""
    held: list[tuple[int, int, object]] = []

    def hold_commit_certs(src: int, dst: int, msg: object) -> object | None:
        if isinstance(msg, QCMessage) and msg.qc.phase is Phase.COMMIT and msg.qc.height == 1:
            held.append((src, dst, msg))
            return None
        return msg

    net.tamper = hold_commit_certs
    net.engine(0).submit(b"trade-1", 0)
    net.run()
    net.tick(BATCH_DELAY_MS)
    net.tamper = None
    net.queue.extend(held)
    net.run()


SCENARIOS: dict[str, Callable[[Net], None]] = {
    f.__name__: f
    for f in (
        fresh_view_commit,
        timeout_view_change,
        refused_non_leader,
        catch_up,
        pipelined_proposal,
    )
}


def transcript_of(scenario: Callable[[Net], None]) -> str:
    net, out = _recorded()
    scenario(net)
    head = textwrap.wrap(" ".join((scenario.__doc__ or "").split()), 88)
    return "".join(f"# {line}\n" for line in head) + "".join(line + "\n" for line in out)


def differences(expected: str, actual: str) -> list[str]:
    """The unified diff between a golden file and a fresh transcript (empty: equal)."""
    return list(
        difflib.unified_diff(
            expected.splitlines(), actual.splitlines(), "golden", "now", lineterm=""
        )
    )


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_golden_transcript(name: str) -> None:
    path = GOLDEN / f"{name}.txt"
    actual = transcript_of(SCENARIOS[name])
    if os.environ.get(UPDATE_ENV):
        path.write_text(actual)
    diff = differences(path.read_text(), actual)
    assert not diff, f"{path} differs ({UPDATE_ENV}=1 rewrites it):\n" + "\n".join(diff)


def test_the_scenarios_show_what_they_are_named_for() -> None:
    """The golden files hold the events they exist to pin (so a rewrite that lost them,
    say a scenario that stopped committing, cannot pass unnoticed)."""
    text = {name: (GOLDEN / f"{name}.txt").read_text() for name in SCENARIOS}
    assert "commit h1" in text["fresh_view_commit"] and "commit h2" in text["fresh_view_commit"]
    assert "n1   send 2 Proposal(v1 h1" in text["timeout_view_change"]
    assert "TC(v0 x3" in text["timeout_view_change"]
    assert "commit h1" in text["timeout_view_change"]
    refusal = text["refused_non_leader"].splitlines()[-1]  # its key's form may change
    assert refusal.startswith("n1   refused ") and "lead" in refusal and refusal.endswith(" +1")
    assert "send" not in text["refused_non_leader"]  # no vote
    assert "SyncRequest(from h1" in text["catch_up"]
    assert "n3   commit h1" in text["catch_up"]


def test_negative_control_a_change_in_behaviour_shows_as_a_diff() -> None:
    """The comparison has teeth: the same scenario with another input (the trade at
    validator 1 instead of the leader) or a lost message differs from the golden file."""
    golden = (GOLDEN / "fresh_view_commit.txt").read_text()
    assert not differences(golden, transcript_of(fresh_view_commit))

    def elsewhere(net: Net) -> None:
        net.engine(1).submit(b"trade-1", 0)
        net.run()
        net.tick(BATCH_DELAY_MS)

    elsewhere.__doc__ = fresh_view_commit.__doc__
    assert differences(golden, transcript_of(elsewhere))

    def one_vote_lost(net: Net) -> None:
        net.tamper = lambda src, dst, msg: None if (src, dst) == (3, 0) else msg
        fresh_view_commit(net)

    one_vote_lost.__doc__ = fresh_view_commit.__doc__
    assert differences(golden, transcript_of(one_vote_lost))


def test_describe_names_every_message_kind() -> None:
    assert describe(SyncRequest(3, 16)) == "SyncRequest(from h3, 16 blocks)"
