"""The one status command's pieces (client/_status.py): the document, its schema check with
negative controls, the disagreement finder and the table. The commands themselves run
against a real cluster in tests/cluster/test_ops.py."""

from __future__ import annotations

import copy
import io
import json
from dataclasses import dataclass
from typing import Any

import pytest

from client._status import (
    EXIT_HEALTHY,
    EXIT_UNHEALTHY,
    STATUS_SCHEMA,
    disagreements,
    node_doc,
    schema_problems,
    show,
    status_doc,
)


@dataclass(frozen=True)
class FakeAnswer:
    chain_id: str = "ab" * 32
    validator_id: str = "val00"
    height: int = 7
    view: int = 9
    leader: int = 1
    n: int = 4
    q: int = 3
    peers_connected: int = 3
    mempool_txs: int = 2
    halted: str = ""
    uptime_ms: int = 1234
    state_root: bytes = b"\x01" * 32


def _doc(*answers: FakeAnswer | None, disagreeing: tuple[str, ...] = ()) -> Any:
    nodes = [
        node_doc(f"node-{i:02d}", f"127.0.0.1:{8000 + i}", 100 + i, a, "UNAVAILABLE: refused")
        for i, a in enumerate(answers)
    ]
    return status_doc(nodes, list(answers), list(disagreeing))


def test_a_healthy_cluster_conforms_and_exits_0() -> None:
    doc = _doc(*[FakeAnswer(validator_id=f"val{i:02d}") for i in range(4)])
    as_json = json.loads(json.dumps(doc.to_json()))
    assert schema_problems(as_json) == []
    assert (as_json["schema"], as_json["healthy"], as_json["problems"]) == (STATUS_SCHEMA, True, [])
    assert (as_json["n"], as_json["q"], as_json["chain_id"]) == (4, 3, "ab" * 32)
    assert show(doc, True, io.StringIO()) == EXIT_HEALTHY


def test_down_and_halted_nodes_are_problems_and_exit_1() -> None:
    doc = _doc(FakeAnswer(), None, FakeAnswer(halted="diverged at 7"))
    as_json = json.loads(json.dumps(doc.to_json()))
    assert schema_problems(as_json) == []
    down, halted = as_json["nodes"][1], as_json["nodes"][2]
    assert (down["up"], down["state"], down["height"], down["error"]) == (
        False, "down", None, "UNAVAILABLE: refused"
    )  # fmt: skip
    assert (halted["state"], halted["halted"]) == ("halted", "diverged at 7")
    assert as_json["problems"] == [
        "node-01 is down (UNAVAILABLE: refused)",
        "node-02 halted: diverged at 7",
    ]
    assert show(doc, False, io.StringIO()) == EXIT_UNHEALTHY


def test_nothing_answers() -> None:
    doc = _doc(None, None)
    as_json = doc.to_json()
    assert schema_problems(as_json) == []
    assert (as_json["chain_id"], as_json["n"], as_json["healthy"]) == (None, None, False)


# --- the schema check fires (negative controls) ----------------------------------------------


def _good() -> dict[str, Any]:
    return json.loads(json.dumps(_doc(FakeAnswer(), None).to_json()))  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    ("break_it", "expected"),
    [
        (lambda d: d.pop("problems"), "status.problems is missing"),
        (lambda d: d["nodes"][0].pop("height"), "status.nodes[0].height is missing"),
        (lambda d: d.update(extra=1), "status.extra is not in the schema"),
        (lambda d: d["nodes"][0].update(height="7"), "status.nodes[0].height is str, not int"),
        (lambda d: d["nodes"][0].update(up=1), "status.nodes[0].up is int, not bool"),
        (lambda d: d["nodes"][1].update(pid=True), "status.nodes[1].pid is bool, not int"),
        (lambda d: d.update(nodes={}), "status.nodes is not a list"),
        (lambda d: d.update(schema="ledger.status/0"), "status.schema is 'ledger.status/0'"),
        (lambda d: d.update(healthy=True), "status.healthy must be true exactly when"),
        (lambda d: d["problems"].append(3), "status.problems[1] is int, not str"),
    ],
)
def test_schema_problems_fires(break_it: Any, expected: str) -> None:
    doc = _good()
    assert schema_problems(doc) == []
    broken = copy.deepcopy(doc)
    break_it(broken)
    problems = schema_problems(broken)
    assert any(p.startswith(expected) for p in problems), problems


# --- disagreements ---------------------------------------------------------------------------


def test_the_node_with_another_block_is_named() -> None:
    hashes = {0: b"a", 1: b"a", 2: b"b", 3: b"a"}
    asked: list[tuple[int, int]] = []

    def hash_at(i: int, h: int) -> bytes | None:
        asked.append((i, h))
        return hashes[i]

    names = [f"node-{i:02d}" for i in range(4)]
    assert disagreements(names, [5, 7, 6, 5], hash_at) == ["node-02 has another block at height 5"]
    assert sorted(asked) == [(0, 5), (1, 5), (2, 5), (3, 5)]  # the lowest common height


def test_no_disagreement_when_all_agree_down_nodes_aside() -> None:
    names = ["a", "b", "c"]
    assert disagreements(names, [4, None, 4], lambda i, h: b"x") == []
    assert disagreements(names, [0, 3, 3], lambda i, h: b"x" if i else b"y") == []  # height 0
    assert disagreements(names, [None, None, None], lambda i, h: b"x") == []


def test_the_table_names_every_node_and_problem() -> None:
    out = io.StringIO()
    show(
        _doc(FakeAnswer(), None, disagreeing=("node-00 has another block at height 7",)), False, out
    )
    lines = out.getvalue().splitlines()
    assert lines[0].startswith(f"chain {'ab' * 8}...  n=4 q=3")
    assert lines[1].split()[:4] == ["node", "address", "pid", "state"]
    assert lines[2].split()[:9] == [
        "node-00",
        "127.0.0.1:8000",
        "100",
        "up",
        "7",
        "9",
        "1",
        "3/3",
        "2",
    ]
    assert lines[3].split() == ["node-01", "127.0.0.1:8001", "101", "down", "UNAVAILABLE"]
    assert lines[4:] == [
        "problem: node-01 is down (UNAVAILABLE: refused)",
        "problem: node-00 has another block at height 7",
    ]
