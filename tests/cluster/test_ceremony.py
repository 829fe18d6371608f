"""The genesis ceremony across operators, as docs/deploy.md has it, on real processes:
four operators each run `ledger-node keygen` in their own private directory, the banks
run participant keygen, a coordinator assembles from the bundles alone, every operator
verifies and makes its own config (one validator is known to the others by a DNS name
that does not resolve here, so they dial it through a `--peer` override), and the
network settles a trade whose receipt verifies."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from client import LedgerClient
from devtools import cluster
from devtools.demo.run import load_run_network
from devtools.netgen import free_port_base
from node import ceremony
from node.__main__ import main as node_main
from node.genesis import demo_genesis
from node.netconfig import Network, NetworkNode, load_network, write_network
from tests.ledger_helpers import TxFactory

pytestmark = pytest.mark.slow

NAMES = ("val00", "val01", "val02", "val03")
REMOTE = "val03.bank03.invalid"  # val03's public name; reached here through an override


def _keygen(root: Path, base: int) -> list[Path]:
    """Each operator's keygen on "its own machine" (its own directory); the bundles."""
    bundles = []
    for i, name in enumerate(NAMES):
        host = REMOTE if name == "val03" else "127.0.0.1"
        argv = ["keygen", "--name", name, "--host", host, "--port", str(base + i)]
        assert (
            node_main([*argv, "--client-port", str(base + 1000 + i), "--out", str(root / name)])
            == 0
        )
        bundles.append(root / name / f"{name}.bundle.json")
    for pid in demo_genesis().participant_keys:  # the banks', the CSD's, the auditor's...
        out = root / "public" / "participants"
        assert node_main(["keygen", "--participant", "--name", pid, "--out", str(out)]) == 0
        bundles.append(out / f"{pid}.bundle.json")
    return bundles


def _configs(root: Path, base: int, fingerprint: str) -> None:
    genesis = root / "public" / "genesis.json"
    for i, name in enumerate(NAMES):
        mine = root / name / f"{name}.bundle.json"
        verify = ["genesis", "verify", str(genesis), "--bundle", str(mine)]
        verify += ["--validators", "4", "--q", "3"]  # what the four operators agreed
        assert node_main([*verify, "--fingerprint", fingerprint]) == 0
        argv = ["config", "--genesis", str(genesis), "--name", name, "--key-dir", str(root / name)]
        argv += ["--listen-host", "127.0.0.1", "--metrics-port", str(base + 2000 + i)]
        if name != "val03":
            argv += ["--peer", f"val03=127.0.0.1:{base + 3}"]
        assert node_main(argv) == 0


def _network(root: Path, base: int) -> Network:
    """network.json for devtools/cluster.py (start, stop) and the SDK's from_run_dir."""
    public = root / "public"
    asm = ceremony.load_assembly(public / "genesis.json")
    nodes = tuple(
        NetworkNode(i, name, "127.0.0.1", base + i, base + 1000 + i, base + 2000 + i,
                    root / name / "config.json")
        for i, name in enumerate(NAMES)
    )  # fmt: skip
    write_network(Network(public, asm.genesis.chain_id, 4, 3, nodes))
    return load_network(public)


def test_four_operators_run_the_ceremony_and_the_network_settles(tmp_path: Path) -> None:
    base = free_port_base(4)
    bundles = _keygen(tmp_path, base)
    template = tmp_path / "template.json"
    g = demo_genesis(4, 3, lifecycle_date=None).genesis
    template.write_text(json.dumps(ceremony.template_from_genesis(g, name="four-banks")))
    public = tmp_path / "public"
    argv = ["genesis", "assemble", "--template", str(template), "--q", "3", "--out", str(public)]
    assert node_main([*argv, "--bundles", *map(str, bundles)]) == 0
    asm = ceremony.load_assembly(public / "genesis.json")
    assert asm.addresses[3].tls_name == REMOTE  # TLS names match the host
    _configs(tmp_path, base, asm.fingerprint)
    net = _network(tmp_path, base)
    try:
        cluster.start_cluster(net, progress=False)
        txf = TxFactory(load_run_network(public), now_ms=int(time.time() * 1000))
        with LedgerClient.from_run_dir(public, identity="AUDITOR") as c:
            receipt = c.submit(txf.signed(txf.transfer()))
        assert receipt.ok and receipt.result_proof is not None
    finally:
        cluster.stop_cluster(net)
