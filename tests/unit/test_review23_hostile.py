"""Review 23 (hostile): a request signature names the validator it is sent to (ADR 0015,
"Session 23"; commits ced44f5 and d715010).

What the two commits changed: the signed bytes carry the genesis id of the validator a
call goes to, the node checks its own (``Gate(..., genesis.validators[cfg.validator].id)``),
and every client path must sign for the id of the validator it reaches. The SDK derives
that id from the one pinned certificate an endpoint's channel trusts; the tools' signed
channels (``devtools/cluster.py``) take it from ``network.json``; the cluster tests' own
hostile clients pass a name by hand.

Two holes, each shown by a test here beside a control; both were strict xfails when the
review found them and pass since the fix (the same session):

- ``test_client_limits`` (tests/cluster) signed for the TLS name (``node.name``,
  ``node-01``) that the first commit bound calls to; the second commit bound them to the
  genesis id (``val01``), so every Ledger call of its "authenticated" connections was
  refused UNAUTHENTICATED and its limit tests no longer reached the limits they test.
  Fixed: it signs for ``node.id``.
- ``devtools/cluster.py`` signed for ``network.json``'s ``id``, which nothing checks
  against genesis, over a channel whose roots were every pinned certificate, while the
  SDK on the same run directory derives the validator from the one certificate carrying
  the endpoint's name: on a ``network.json`` whose ids are not the genesis ids the
  operator tools' every call was refused. Fixed: the tools' channels trust that one
  certificate and sign for its validator (``pinned_credentials``, shared with the SDK).
"""

from __future__ import annotations

import time
import types
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from client import ParticipantKey
from client._async import _run_dir_config, pinned_credentials
from client._identity import RequestSigner
from devtools import cluster as tools
from devtools.netgen import NetSpec
from node.access import AccessError
from node.genesis import dump_genesis
from node.keyfiles import write_signing_key
from node.netconfig import (
    OPERATOR_IDENTITY,
    PINNED_CERTS_FILE,
    ConfigError,
    Network,
    load_network,
    write_network,
)
from node.runtime._access import Gate
from node.settlement import Registry
from node.wire import ledger_pb2 as pb
from tests.ledger_helpers import pinned_tls, shared_net

NET = shared_net()
PINNED, CERTS = pinned_tls(NET)  # genesis pinning one certificate per validator, node-XX
_STATUS = "/ledger.v1.Ledger/GetStatus"
_REQUEST = pb.StatusRequest().SerializeToString()
_N, _Q = 4, 3  # module_cluster's network: 4 validators, quorum 3


def _key(pid: str = OPERATOR_IDENTITY) -> ParticipantKey:
    return ParticipantKey(pid, NET.participant_keys[pid])


def _gate(index: int) -> Gate:
    """Validator ``index``'s gate as node/runtime/_server.py builds it: for its genesis id."""
    g = NET.genesis
    return Gate(lambda: Registry.at_genesis(g), _now, g.validators[index].id)


def _now() -> int:
    return time.time_ns() // 1_000_000


def _run_dir(tmp_path: Path) -> Path:
    """A run directory as netgen lays it out for module_cluster (nodes/node-XX, ids valXX),
    with validators.pem: what the channels read."""
    run = tmp_path / "run"
    run.mkdir()
    (run / PINNED_CERTS_FILE).write_bytes(CERTS)
    dump_genesis(PINNED.genesis, run / "genesis.json")
    return run


def _netgen_network(run: Path) -> Network:
    spec = NetSpec(n=_N, q=_Q, port_base=17000)
    return Network(run, NET.genesis.chain_id, _N, _Q, tuple(spec.node(i, run) for i in range(_N)))


# --- 1. tests/cluster/test_client_limits.py signs for the TLS name, not the genesis id ----


async def _limits_connection_signs_for(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, index: int
) -> str:
    """What node ``index``'s "authenticated client" of test_client_limits (``_connection``,
    the same name as its garbage-protobuf test's ``signed_channel``) signs its calls for."""
    from tests.cluster import test_client_limits as limits

    seen: list[str] = []

    def interceptors(signer: Any, node: str) -> list[Any]:
        seen.append(node)
        return []

    monkeypatch.setattr(limits, "aio_interceptors", interceptors)
    monkeypatch.setattr(limits, "signer_for", lambda net: None)
    fake = types.SimpleNamespace(net=_netgen_network(_run_dir(tmp_path)))
    async with limits._connection(fake, index):  # type: ignore[arg-type]
        pass
    assert len(seen) == 1
    return seen[0]


async def test_the_limits_tests_authenticated_connection_is_taken_by_its_node(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    node = await _limits_connection_signs_for(monkeypatch, tmp_path, 1)
    md = RequestSigner(_key(), NET.genesis).metadata(node, _STATUS, _REQUEST)
    _gate(1).admit(_STATUS, _REQUEST, md)  # AccessError: signed for another node than val01


async def test_control_the_cluster_harness_signs_for_the_id_its_node_checks(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The harness's own channels (devtools/cluster.py, used by ``Cluster.stub``) sign for
    ``network.json``'s id, which netgen writes as the genesis id: its node takes them; and
    the limits tests' name is refused there, as the xfail above says."""
    net = _netgen_network(_run_dir(tmp_path))
    seen: list[str] = []
    monkeypatch.setattr(
        tools, "_signer", lambda run_dir, identity: RequestSigner(_key(), NET.genesis)
    )

    def interceptors(signer: Any, node: str) -> list[Any]:
        seen.append(node)
        return []

    monkeypatch.setattr(tools, "aio_interceptors", interceptors)
    await tools.client_aio_channel(net, 1).close(None)
    assert seen == [NET.genesis.validators[1].id] == [net.nodes[1].id]
    signer = RequestSigner(_key(), NET.genesis)
    assert _gate(1).admit(_STATUS, _REQUEST, signer.metadata(seen[0], _STATUS, _REQUEST))
    with pytest.raises(AccessError, match="another node than val01"):
        _gate(1).admit(_STATUS, _REQUEST, signer.metadata(net.nodes[1].name, _STATUS, _REQUEST))


# --- 2. devtools/cluster.py signs for network.json's id, unchecked ------------------------


def _hand_written_run_dir(tmp_path: Path) -> Network:
    """A run directory whose network.json names each node by its TLS name in ``id`` (as an
    operator writing one for the tools might: tests/cluster/test_ceremony.py writes one by
    hand), the rest as netgen has it: genesis, validators.pem, the operator's key."""
    run = _run_dir(tmp_path)
    (run / "participants").mkdir()
    write_signing_key(run / "participants" / f"{OPERATOR_IDENTITY}.key", _key().key)
    net = _netgen_network(run)
    ids = tuple(replace(x, id=x.name) for x in net.nodes)  # node-XX where genesis has valXX
    hand = Network(run, PINNED.genesis.chain_id, _N, _Q, ids)
    write_network(hand)
    return load_network(run)  # loads: nothing compares the ids with genesis


def test_the_tools_sign_for_the_validator_the_sdk_signs_for(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    net = _hand_written_run_dir(tmp_path)
    seen: list[str] = []

    def signed(channel: Any, signer: Any, node: str) -> Any:
        seen.append(node)
        return channel

    monkeypatch.setattr(tools, "signed_channel", signed)
    try:
        tools.client_channel(net, 1).close()
    except (ConfigError, tools.ClusterError):
        return  # refusing such a network.json would close the hole too
    assert seen == [NET.genesis.validators[1].id]  # what node 1 checks (and the SDK signs)


def test_control_the_sdk_on_that_run_directory_signs_for_the_genesis_ids(
    tmp_path: Path,
) -> None:
    """The SDK (from_run_dir's endpoints and credentials) on the same run directory derives
    each endpoint's validator from the one pinned certificate carrying its TLS name: the
    genesis ids, whatever network.json's ids say. And the tools sign for those ids."""
    net = _hand_written_run_dir(tmp_path)
    endpoints, certs, genesis = _run_dir_config(net.run_dir)
    _, validators = pinned_credentials(endpoints, certs, genesis)
    assert validators == [v.id for v in NET.genesis.validators]
    assert [x.id for x in net.nodes] == [f"node-0{i}" for i in range(_N)]  # != those


# --- sound: what was checked and held ------------------------------------------------------


@pytest.mark.parametrize(
    ("signed_for", "gate_of"),
    [("val0", 0), ("val00", 1), ("VAL01", 1), ("val01\x00", 1), ("", 0), (" val01", 1)],
)
def test_control_a_node_takes_only_its_exact_id(signed_for: str, gate_of: int) -> None:
    """A prefix, another case, a trailing NUL or space, the empty id: none is the node's id
    (the id is length-prefixed and compared as bytes); the exact id is taken."""
    signer = RequestSigner(_key(), NET.genesis)
    with pytest.raises(AccessError):
        _gate(gate_of).admit(_STATUS, _REQUEST, signer.metadata(signed_for, _STATUS, _REQUEST))
    own = NET.genesis.validators[gate_of].id
    assert _gate(gate_of).admit(_STATUS, _REQUEST, signer.metadata(own, _STATUS, _REQUEST))


def test_control_a_call_to_one_validator_is_refused_by_every_other_within_the_window() -> None:
    """The hole session 23 closed: one participant's call (any method), signed for one
    validator, is refused by each of the others at the same moment, though their nonce
    memories never saw it; and taken once where it was sent."""
    signer = RequestSigner(_key("BANK01"), NET.genesis)
    ids = [v.id for v in NET.genesis.validators]
    for to, node in enumerate(ids):
        md = signer.metadata(node, _STATUS, _REQUEST)
        for other in range(len(ids)):
            if other != to:
                with pytest.raises(AccessError, match=f"another node than {ids[other]}"):
                    _gate(other).admit(_STATUS, _REQUEST, md)
        gate = _gate(to)
        gate.admit(_STATUS, _REQUEST, md)
        with pytest.raises(AccessError, match="replayed"):
            gate.admit(_STATUS, _REQUEST, md)
