"""``ledger-node check-config``: OK for a config netgen wrote, and each problem named.

Every check has its negative control here: the same config broken in one way, and the
line that says so. Runs on a real run directory (netgen, 4 validators), no node started.
"""

from __future__ import annotations

import json
import shutil
import socket
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from devtools.netgen import NetSpec, free_port_base, generate
from node import health
from node.__main__ import main
from node.check_config import EXIT_OK, EXIT_PROBLEMS, check
from node.netconfig import Network, NetworkNode, load_network, load_node_config


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Network:
    out = tmp_path_factory.mktemp("checkcfg") / "run"
    return generate(out, NetSpec(4, 3, free_port_base(4)), progress=lambda _: None)


@pytest.fixture
def net(pristine: Network, tmp_path: Path) -> Iterator[Network]:
    """A copy each test may break (paths in configs are relative, so a copy is whole)."""
    copy = tmp_path / "run"
    shutil.copytree(pristine.run_dir, copy)
    yield load_network(copy)


def _run(node: NetworkNode, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(["check-config", str(node.config)])
    return code, capsys.readouterr().out


def _edit(node: NetworkNode, **fields: object) -> None:
    doc = json.loads(node.config.read_text())
    doc.update(fields)
    node.config.write_text(json.dumps(doc))


def test_a_generated_config_is_ok(net: Network, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = _run(net.nodes[0], capsys)
    assert (code, out.splitlines()[-1].split()[0]) == (EXIT_OK, "OK:")
    assert "problem" not in out


def test_a_private_key_readable_by_others(net: Network, capsys: pytest.CaptureFixture[str]) -> None:
    (net.nodes[0].dir / "validator.key").chmod(0o644)
    (net.nodes[0].dir / "tls.key").chmod(0o640)
    code, out = _run(net.nodes[0], capsys)
    assert code == EXIT_PROBLEMS
    assert "signing_key" in out and "mode 0644; a private key must be 0600" in out
    assert "tls_key" in out and "mode 0640" in out


def test_another_validators_signing_key(net: Network, capsys: pytest.CaptureFixture[str]) -> None:
    shutil.copy(net.nodes[1].dir / "validator.key", net.nodes[0].dir / "validator.key")
    code, out = _run(net.nodes[0], capsys)
    assert code == EXIT_PROBLEMS
    assert "is not the key genesis lists for" in out


def test_a_tls_key_that_is_not_the_certificates(
    net: Network, capsys: pytest.CaptureFixture[str]
) -> None:
    shutil.copy(net.nodes[1].dir / "tls.key", net.nodes[0].dir / "tls.key")
    code, out = _run(net.nodes[0], capsys)
    assert code == EXIT_PROBLEMS
    assert "is not the key of tls_cert" in out


def test_a_certificate_genesis_does_not_pin_for_it(
    net: Network, capsys: pytest.CaptureFixture[str]
) -> None:
    for f in ("tls.pem", "tls.key"):  # a matching pair, but another validator's
        shutil.copy(net.nodes[1].dir / f, net.nodes[0].dir / f)
    code, out = _run(net.nodes[0], capsys)
    assert code == EXIT_PROBLEMS
    assert "is not the TLS certificate genesis pins for" in out
    assert "is not the key of tls_cert" not in out


def test_missing_files_and_a_missing_peer(net: Network, capsys: pytest.CaptureFixture[str]) -> None:
    node = net.nodes[0]
    (node.dir / "tls.pem").unlink()
    doc = json.loads(node.config.read_text())
    _edit(node, peers=doc["peers"][1:])
    code, out = _run(node, capsys)
    assert code == EXIT_PROBLEMS
    assert "tls_cert" in out and "does not exist" in out
    assert f"peers lists no address for validators [{doc['peers'][0]['validator']}]" in out
    assert out.count("problem: ") == 2  # every problem at once, not the first only


def test_a_port_in_use(net: Network, capsys: pytest.CaptureFixture[str]) -> None:
    node = net.nodes[0]
    with socket.socket() as s:
        s.bind(("127.0.0.1", node.client_port))
        s.listen()
        code, out = _run(node, capsys)
    assert code == EXIT_PROBLEMS
    assert f"client_port 127.0.0.1:{node.client_port}: cannot listen" in out
    assert "peer_port" not in out


def _leave_in_time_wait(port: int) -> None:
    """What a stopped node leaves on its port: a connection it closed first, in TIME_WAIT
    (for a minute), and no listener."""
    with socket.socket() as listener:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", port))
        listener.listen()
        with socket.create_connection(("127.0.0.1", port)) as peer:
            conn, _ = listener.accept()
            conn.close()  # the node's side closes first: its end goes to TIME_WAIT
            assert peer.recv(1) == b""


def test_a_port_a_stopped_node_left_in_time_wait_is_free(
    net: Network, capsys: pytest.CaptureFixture[str]
) -> None:
    """Review 33o: right after a node stopped, check-config called its ports in use for a
    minute (its bind had no SO_REUSEADDR), though the node binds them at once."""
    node = net.nodes[0]
    _leave_in_time_wait(node.peer_port)
    with socket.socket() as plain, pytest.raises(OSError):  # control: the port is in TIME_WAIT
        plain.bind(("127.0.0.1", node.peer_port))
    code, out = _run(node, capsys)
    assert (code, "problem" in out) == (EXIT_OK, False), out


def test_a_data_dir_that_cannot_be_created(
    net: Network, capsys: pytest.CaptureFixture[str]
) -> None:
    node = net.nodes[0]
    blocker = node.dir / "not-a-dir"
    blocker.write_text("")
    _edit(node, data_dir=str(blocker / "data"))
    code, out = _run(node, capsys)
    assert code == EXIT_PROBLEMS
    assert "data_dir" in out and "is not a directory" in out


def test_a_config_or_genesis_that_does_not_load(
    net: Network, capsys: pytest.CaptureFixture[str]
) -> None:
    node = net.nodes[0]
    net.genesis.write_text("{")
    code, out = _run(node, capsys)
    assert code == EXIT_PROBLEMS and "problem: genesis " in out
    node.config.write_text("[]")
    code, out = _run(node, capsys)
    assert code == EXIT_PROBLEMS and "problem: config: " in out
    assert check(node.config)[0] is None


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as e:
        main(["check-config"])
    assert e.value.code == 2
    with pytest.raises(SystemExit) as e:
        main(["no-such-command"])
    assert e.value.code == 2


def test_the_invocation_without_run_still_runs_a_node(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`ledger-node --config FILE` (image, local clusters) is `ledger-node run --config`."""
    missing = str(tmp_path / "none.json")
    assert main(["--config", missing]) == 2
    old = capsys.readouterr().err
    assert main(["run", "--config", missing]) == 2
    assert capsys.readouterr().err == old
    assert old.startswith("node: cannot start: ")


def test_health_dials_loopback_when_the_node_listens_everywhere(net: Network) -> None:
    """`ledger-node health` in a container: the node listens on 0.0.0.0 (or ::), the probe
    dials loopback; a node bound to one address is dialled there."""
    cfg = load_node_config(net.nodes[0].config)
    port = cfg.client_port
    assert health.target(cfg) == f"127.0.0.1:{port}"
    assert health.target(replace(cfg, listen_host="0.0.0.0")) == f"127.0.0.1:{port}"
    assert health.target(replace(cfg, listen_host="::")) == f"[::1]:{port}"
    assert health.target(replace(cfg, listen_host="10.1.2.3")) == f"10.1.2.3:{port}"
