"""The safety state names its owner (session 30): a validator refuses to start on another
validator's safety file, of its chain or another, with or without a lock; it still reads
a file written before the owner was recorded (format 1) and records itself at the next
save. Session 29's review found the first two undetected (docs/testing.md)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from node import tags
from node.core import DecodeError, SafetyOwner, SafetyState
from node.runtime._metrics import Metrics
from node.runtime._node import Node
from node.store import LmdbStore, StorageError
from tests.ledger_helpers import shared_net
from tests.unit.test_core_pipeline import _certified_not_committed
from tests.unit.test_core_replica import CHAIN, Net
from tests.unit.test_restart_hostile import _restart


def _format_1(data: bytes) -> bytes:
    """The same state as the node wrote it before the owner was recorded."""
    state = SafetyState.decode(data)
    assert state.owner is not None
    owner_end = len(tags.SAFETY_STATE) + 2 + len(state.owner.chain_id.encode()) + 4
    return tags.SAFETY_STATE_V1 + data[owner_end:]


def _start(store: LmdbStore, index: int) -> Node:
    net = shared_net()
    return Node(net.genesis, index, net.validator_keys[index], store, Metrics(), clock=lambda: 0)


# --- the replica ---------------------------------------------------------------------------


def test_a_replica_saves_its_own_name_with_its_votes() -> None:
    net = Net()
    _certified_not_committed(net)
    for i, disk in enumerate(net.disks):
        assert disk.safety is not None
        assert SafetyState.decode(disk.safety).owner == SafetyOwner(CHAIN, i)


def test_a_replica_refuses_another_validators_safety_state() -> None:
    """Validator 1's saved votes given to validator 0 (a cloned data directory): its
    views say nothing of validator 0's votes, which it could then make again."""
    net = Net()
    _certified_not_committed(net)
    mine, theirs = net.disks[0].safety, net.disks[1].safety
    assert mine is not None and theirs is not None
    with pytest.raises(DecodeError, match=r"that of validator 1 of chain .*, not of validator 0 "):
        _restart(net, 0, {}, theirs, 1_000)
    _restart(net, 0, {}, mine, 1_000)  # control: its own is accepted
    assert net.nodes[0].safety == SafetyState.decode(mine)


def test_a_format_1_state_is_read_and_then_saved_with_the_owner() -> None:
    """An upgrade: the state written before the owner was recorded keeps every view and
    the lock; the replica takes it as its own and the next save names it."""
    net = Net()
    _certified_not_committed(net)
    mine = SafetyState.decode(net.disks[2].safety)  # type: ignore[arg-type]
    old = _format_1(net.disks[2].safety)  # type: ignore[arg-type]
    assert SafetyState.decode(old) == replace(mine, owner=None)
    _restart(net, 2, {}, old, 1_000)
    assert net.nodes[2].safety == mine
    net.tick(1_000 + 10**6)  # the view times out: a timeout is saved before it is sent
    saved = SafetyState.decode(net.disks[2].safety)  # type: ignore[arg-type]
    assert saved.timeout_view >= mine.last_view and saved.owner == SafetyOwner(CHAIN, 2)


# --- the node, on LMDB and the safety file on disk -----------------------------------------


def test_a_node_refuses_to_start_on_another_validators_safety_file(tmp_path: Path) -> None:
    chain = shared_net().genesis.chain_id
    votes = SafetyState(proposed_view=7, prepare_view=9, commit_view=9, timeout_view=8)
    with LmdbStore(tmp_path, shared_net().genesis) as store:
        store.save_safety(replace(votes, owner=SafetyOwner(chain, 1)).encode())
        with pytest.raises(
            StorageError, match=r"that of validator 1 of chain .*, not of validator 0"
        ):
            _start(store, 0)
        node = _start(store, 1)  # control: validator 1 starts on its own
        assert node.replica.safety == replace(votes, owner=SafetyOwner(chain, 1))
        assert node.replica.view == 9  # its last view: no vote in it again


def test_a_node_refuses_another_chains_safety_file_without_a_lock(tmp_path: Path) -> None:
    """Session 29 refused another chain's file only by its lock's block; one with views
    and no lock (a validator that timed out, or voted and was never locked) started."""
    with LmdbStore(tmp_path, shared_net().genesis) as store:
        store.save_safety(SafetyState(3, 4, 4, 5, owner=SafetyOwner(CHAIN, 0)).encode())
        with pytest.raises(StorageError, match=f"of chain '{CHAIN}'"):
            _start(store, 0)


def test_a_node_starts_on_a_format_1_safety_file(tmp_path: Path) -> None:
    chain = shared_net().genesis.chain_id
    votes = SafetyState(4, 5, 5, 2, owner=SafetyOwner(chain, 0))
    with LmdbStore(tmp_path, shared_net().genesis) as store:
        store.save_safety(_format_1(votes.encode()))
        node = _start(store, 0)
        assert node.replica.safety == votes and node.replica.view == 5


def test_a_format_1_file_of_another_chain_is_refused_by_its_lock(tmp_path: Path) -> None:
    """Format 1 names no owner; its lock's block still names a chain (session 29's check)."""
    net = Net()
    _certified_not_committed(net)  # every replica locked on a block of CHAIN
    foreign = _format_1(net.disks[0].safety)  # type: ignore[arg-type]
    assert SafetyState.decode(foreign).owner is None
    with LmdbStore(tmp_path, shared_net().genesis) as store:
        store.save_safety(foreign)
        with pytest.raises(StorageError, match="lock is a block of chain"):
            _start(store, 0)
