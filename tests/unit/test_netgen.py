"""Network generation (the ceremony for every node in one directory): keys, self-signed
certificates, genesis pins, node configs, mutual TLS."""

from __future__ import annotations

import json
import logging
import stat
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID

from devtools.netgen import NetSpec, default_quorum, generate, main
from node import crypto
from node.config import COMMIT_RELAY_FACTOR, PIPELINE_DEFAULT, VIEW_PROGRESS_FACTOR
from node.genesis import load_genesis
from node.keyfiles import (
    KeyFileError,
    cert_pin,
    cert_pin_from_pem,
    dns_names,
    load_signing_key,
    pinned_certificates,
    write_private_file,
    write_signing_key,
)
from node.netconfig import (
    ConfigError,
    Network,
    NodeConfig,
    PeerAddress,
    load_network,
    load_node_config,
    node_name,
    write_node_config,
)
from node.settlement import Genesis
from tests.tls_helpers import _make_ca, _make_node_cert


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Network:
    return generate(tmp_path_factory.mktemp("run") / "run", NetSpec(4, 3), progress=lambda _: None)


@pytest.fixture(scope="module")
def genesis(net: Network) -> Genesis:
    return load_genesis(net.genesis)


def _cert(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def _unpinned_pem() -> bytes:
    """A certificate for node-02's names, signed by some CA: genesis pins no such thing."""
    _, cert = _make_node_cert(_make_ca("other", datetime.now(UTC)), "node-02", "val02")
    return cert.public_bytes(serialization.Encoding.PEM)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_genesis_is_the_network_chain(net: Network, genesis: Genesis) -> None:
    assert genesis.chain_id == net.chain_id
    assert (len(genesis.validators), genesis.quorum) == (net.n, net.q) == (4, 3)
    assert [v.id for v in genesis.validators] == ["val00", "val01", "val02", "val03"]
    assert genesis.name.startswith("local-")  # not the demo name, which embeds the seed


def test_genesis_pins_every_node_certificate(net: Network, genesis: Genesis) -> None:
    for node, v in zip(net.nodes, genesis.validators, strict=True):
        der = _cert(node.dir / "tls.pem").public_bytes(serialization.Encoding.DER)
        assert v.tls_cert_sha256 == crypto.sha256(der)
        assert cert_pin_from_pem((node.dir / "tls.pem").read_bytes()) == v.tls_cert_sha256


def test_node_certificates_are_self_signed_with_names_and_usages(net: Network) -> None:
    assert not (net.run_dir / "ca").exists()  # no CA (ADR 0019)
    for node in net.nodes:
        cert = _cert(node.dir / "tls.pem")
        cert.verify_directly_issued_by(cert)  # raises if not signed by its own key
        assert isinstance(cert.public_key(), ec.EllipticCurvePublicKey)
        assert cert.public_key().curve.name == "secp256r1"  # type: ignore[union-attr]
        cn = cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
        assert cn[0].value == node.id
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert san.get_values_for_type(x509.DNSName) == [node.id, node.name, "localhost"]
        assert [str(ip) for ip in san.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
        eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        assert set(eku) == {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH}
        assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca


def test_the_pinned_bundle_holds_each_validator_certificate_and_nothing_else(
    net: Network, genesis: Genesis
) -> None:
    pins = [v.tls_cert_sha256 for v in genesis.validators]
    pinned = pinned_certificates(net.tls_pinned.read_bytes(), pins)
    assert pinned == {x.validator: (x.dir / "tls.pem").read_bytes() for x in net.nodes}
    assert dns_names(pinned[2]) == {"val02", "node-02", "localhost"}
    # A certificate genesis does not pin is no trust root, whoever signed it.
    with pytest.raises(ValueError, match="not pinned by genesis"):
        pinned_certificates(net.tls_pinned.read_bytes() + _unpinned_pem(), pins)
    with pytest.raises(ValueError, match="no PEM certificate"):
        pinned_certificates(b"", pins)


def test_private_files_are_0600_and_directories_0700(net: Network) -> None:
    keys = [*net.run_dir.glob("participants/*.key")]
    for node in net.nodes:
        keys += [node.dir / "validator.key", node.dir / "tls.key"]
        assert _mode(node.dir) == 0o700
    assert len(keys) == 12 + 2 * net.n  # 12 demo participants (AUDITOR too), nodes
    assert {_mode(k) for k in keys} == {0o600}
    dirs = [net.run_dir, *(net.run_dir / d for d in ("bundles", "nodes", "participants"))]
    assert {_mode(d) for d in dirs} == {0o700}


def test_keys_load_and_match_genesis(net: Network, genesis: Genesis) -> None:
    for node, v in zip(net.nodes, genesis.validators, strict=True):
        assert load_signing_key(node.dir / "validator.key").public_key == v.public_key
    for p in genesis.participants:
        key = load_signing_key(net.run_dir / "participants" / f"{p.id}.key")
        assert key.public_key == p.public_key
        msg = b"sign me"
        assert crypto.verify(p.public_key, msg, key.sign(msg))


def test_node_configs_point_at_the_files_and_every_peer(net: Network) -> None:
    for node in net.nodes:
        cfg = load_node_config(node.config)
        assert cfg.validator == node.validator
        assert (cfg.peer_port, cfg.client_port, cfg.metrics_port) == (
            7000 + node.validator,
            8000 + node.validator,
            9000 + node.validator,
        )
        assert cfg.listen_host == "127.0.0.1"
        for f in ("genesis", "signing_key", "tls_pinned", "tls_cert", "tls_key"):
            assert getattr(cfg, f).is_file(), f
        assert cfg.genesis == net.genesis
        assert cfg.data_dir == node.dir / "data"
        others = [x for x in net.nodes if x is not node]
        assert cfg.peers == tuple(
            PeerAddress(x.validator, f"127.0.0.1:{x.peer_port}", x.id) for x in others
        )
        raw = json.loads(node.config.read_text())
        assert (raw["genesis"], raw["data_dir"]) == ("../../genesis.json", "data")


def test_containers_listen_everywhere_and_dial_by_container_name(tmp_path: Path) -> None:
    net = generate(tmp_path / "c", NetSpec(4, 3, containers=True), progress=lambda _: None)
    assert [x.host for x in net.nodes] == ["node-00", "node-01", "node-02", "node-03"]
    raw = json.loads(net.nodes[1].config.read_text())
    assert raw["listen_host"] == "0.0.0.0"
    assert (raw["genesis"], raw["tls_pinned"], raw["data_dir"]) == (
        "../genesis.json",
        "../validators.pem",
        "../data",
    )
    assert raw["peers"][0] == {"validator": 0, "address": "node-00:7000", "tls_name": "node-00"}


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_prints_the_chain_id_and_refuses_an_existing_directory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out_dir = str(tmp_path / "run")
    code, out, _ = _run(["--out", out_dir, "--n", "4", "--q", "3"], capsys)
    chain_id = load_network(out_dir).chain_id
    assert code == 0
    assert out.splitlines()[-1].split() == ["chain", "id", chain_id]
    assert "safe with up to 1 Byzantine, live with up to 1 down" in out

    code, _, err = _run(["--out", out_dir, "--n", "4", "--q", "3"], capsys)
    assert code == 2
    assert "not empty; pass --force" in err
    assert load_network(out_dir).chain_id == chain_id  # untouched

    code, _, _ = _run(["--out", out_dir, "--n", "4", "--q", "3", "--force"], capsys)
    assert code == 0
    assert load_network(out_dir).chain_id != chain_id  # fresh keys, fresh chain


def test_force_does_not_wipe_a_directory_that_is_no_run_directory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "precious.txt").write_text("keep me")
    code, _, err = _run(["--out", str(tmp_path), "--n", "4", "--q", "3", "--force"], capsys)
    assert code == 2
    assert "does not look like a run directory" in err
    assert (tmp_path / "precious.txt").read_text() == "keep me"


@pytest.mark.parametrize(
    ("n", "q", "message"),
    [
        (4, 2, "not more than half"),
        (26, 13, "not more than half"),
        (4, 5, "exceeds the number of validators"),
        (1001, 700, "1..1000 validators"),
    ],
)
def test_cli_refuses_an_unsound_quorum(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], n: int, q: int, message: str
) -> None:
    argv = ["--out", str(tmp_path / "run"), "--n", str(n), "--q", str(q)]
    code, _, err = _run(argv, capsys)
    assert code == 2
    assert message in err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "run").exists()


def test_cli_refuses_ports_past_65535(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["--out", str(tmp_path / "run"), "--n", "4", "--q", "3", "--port-base", "64000"]
    code, _, err = _run(argv, capsys)
    assert code == 2
    assert "outside 1..65535" in err


def test_node_names_widen_past_100_validators() -> None:
    assert (node_name(7, 26), node_name(7, 100), node_name(7, 101)) == (
        "node-07",
        "node-07",
        "node-007",
    )


# --- key files ---------------------------------------------------------------------------


def test_signing_key_round_trip_refuses_overwrite(tmp_path: Path) -> None:
    key = crypto.SigningKey.generate()
    write_signing_key(tmp_path / "k.key", key)
    assert _mode(tmp_path / "k.key") == 0o600
    assert load_signing_key(tmp_path / "k.key").public_key == key.public_key
    with pytest.raises(FileExistsError):
        write_signing_key(tmp_path / "k.key", crypto.SigningKey.generate())


def test_load_signing_key_refuses_other_key_types(net: Network) -> None:
    with pytest.raises(KeyFileError, match="expected an Ed25519 key"):
        load_signing_key(net.nodes[0].dir / "tls.key")  # an ECDSA key
    with pytest.raises(KeyFileError, match="not an unencrypted PKCS8 PEM"):
        load_signing_key(net.nodes[0].dir / "tls.pem")
    with pytest.raises(KeyFileError, match="cannot read"):
        load_signing_key(net.run_dir / "missing.key")


def test_load_signing_key_warns_when_others_may_read_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "loose.key"
    write_signing_key(path, crypto.SigningKey.generate())
    path.chmod(0o644)
    with caplog.at_level(logging.WARNING, logger="devtools.netgen"):
        load_signing_key(path)
    assert "chmod 600" in caplog.text


def test_write_private_file_does_not_follow_a_symlink(tmp_path: Path) -> None:
    (tmp_path / "link").symlink_to(tmp_path / "target")
    with pytest.raises(FileExistsError):
        write_private_file(tmp_path / "link", b"secret")
    assert not (tmp_path / "target").exists()


# --- node config -------------------------------------------------------------------------


def test_node_config_round_trips(net: Network, tmp_path: Path) -> None:
    cfg = load_node_config(net.nodes[2].config)
    moved = replace(cfg, log_level="debug", data_dir=tmp_path / "elsewhere")
    path = net.nodes[2].dir / "copy.json"
    write_node_config(path, moved)
    assert load_node_config(path) == moved
    assert json.loads(path.read_text())["tls_key"] == "tls.key"


def test_the_pipeline_option_round_trips_and_takes_only_a_boolean(
    net: Network, tmp_path: Path
) -> None:
    """``pipeline`` (ADR 0012): off unless a config says so, written only when on, and a
    boolean: 1 or "true" is refused, not taken for one."""
    default = load_node_config(net.nodes[0].config)
    assert default.pipeline is PIPELINE_DEFAULT is False
    assert "pipeline" not in json.loads(net.nodes[0].config.read_text())
    path = tmp_path / "on.json"
    write_node_config(path, replace(default, pipeline=True))
    assert json.loads(path.read_text())["pipeline"] is True
    assert load_node_config(path).pipeline is True
    for bad in (1, "true", None):
        edited = _edited(net, tmp_path, lambda d, v=bad: d.update(pipeline=v))
        with pytest.raises(ConfigError, match="pipeline: expected true or false"):
            load_node_config(edited)


@pytest.mark.parametrize(
    ("field", "default"),
    [("view_progress_factor", VIEW_PROGRESS_FACTOR), ("commit_relay_factor", COMMIT_RELAY_FACTOR)],
)
def test_the_slow_leader_factors_round_trip_and_are_bounded(
    net: Network, tmp_path: Path, field: str, default: int
) -> None:
    """``view_progress_factor`` and ``commit_relay_factor`` (docs/consensus.md "Slow
    leaders"): the default unless a config says so, written only when it differs, 0 (off)
    to the maximum (100 for both), an integer."""
    loaded = load_node_config(net.nodes[0].config)
    assert getattr(loaded, field) == default
    assert field not in json.loads(net.nodes[0].config.read_text())
    path = tmp_path / "off.json"
    write_node_config(path, replace(loaded, **{field: 0}))
    assert json.loads(path.read_text())[field] == 0
    assert getattr(load_node_config(path), field) == 0
    for bad, says in (
        (-1, "must be 0..100"),
        (101, "must be 0..100"),
        (True, "expected an integer"),
        ("4", "expected an integer"),
        (4.0, "expected an integer"),
    ):
        edited = _edited(net, tmp_path, lambda d, v=bad: d.update({field: v}))
        with pytest.raises(ConfigError, match=f"{field}: {says}"):
            load_node_config(edited)


def test_netgen_pipeline_flag_sets_every_node(tmp_path: Path) -> None:
    spec = NetSpec(4, 3, pipeline=True)
    out = generate(tmp_path / "run", spec, progress=lambda _: None)
    assert all(load_node_config(node.config).pipeline for node in out.nodes)


def _edited(net: Network, tmp_path: Path, edit: Callable[[dict[str, Any]], object]) -> Path:
    doc = json.loads(net.nodes[0].config.read_text())
    edit(doc)
    path = tmp_path / "config.json"
    path.write_text(json.dumps(doc))
    return path


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d.update(colour="blue"), "config.json.colour: unknown field"),
        (lambda d: d.pop("tls_key"), "config.json.tls_key: missing field"),
        (lambda d: d.update(peer_port="7000"), "config.json.peer_port: expected an integer"),
        (lambda d: d.update(peer_port=7000.0), "config.json.peer_port: expected an integer"),
        (lambda d: d.update(validator=True), "config.json.validator: expected an integer"),
        (lambda d: d.update(genesis=7), "config.json.genesis: expected a non-empty string"),
        (lambda d: d.update(peers={}), "config.json.peers: expected a list"),
        (lambda d: d.update(client_port=70000), "config.json.client_port: port 70000"),
        (lambda d: d.update(log_level="loud"), "config.json.log_level: must be one of"),
        (lambda d: d["peers"][1].pop("tls_name"), "peers[1].tls_name: missing field"),
        (lambda d: d["peers"][1].update(x=1), "peers[1].x: unknown field"),
        (lambda d: d["peers"][0].update(address="node-01"), "peers[0].address: 'node-01'"),
        (lambda d: d["peers"][0].update(validator=0), "config.json.peers: lists this node"),
    ],
)
def test_load_node_config_names_the_bad_field(
    net: Network, tmp_path: Path, edit: Callable[[dict[str, Any]], object], message: str
) -> None:
    with pytest.raises(ConfigError) as e:
        load_node_config(_edited(net, tmp_path, edit))
    assert message in str(e.value)


def test_node_config_validates_when_built_directly(net: Network) -> None:
    cfg = load_node_config(net.nodes[0].config)
    with pytest.raises(ConfigError, match="must differ"):
        replace(cfg, client_port=cfg.peer_port)
    assert isinstance(cfg, NodeConfig)


def test_load_network_is_strict(net: Network, tmp_path: Path) -> None:
    doc = json.loads((net.run_dir / "network.json").read_text())
    doc["nodes"][1]["client_port"] = doc["nodes"][0]["client_port"]
    (tmp_path / "network.json").write_text(json.dumps(doc))
    with pytest.raises(ConfigError, match="share a host and port"):
        load_network(tmp_path)
    doc["nodes"][1]["extra"] = 1
    (tmp_path / "network.json").write_text(json.dumps(doc))
    with pytest.raises(ConfigError, match=r"nodes\[1\]\.extra: unknown field"):
        load_network(tmp_path)


# --- mutual TLS with pinned certificates, as validators will use it ----------------------

_METHOD = "/test.Pin/Who"


def _pin_checking_server(net: Network, genesis: Genesis) -> tuple[grpc.aio.Server, int]:
    """A server on node-00's certificate that requires a client certificate among the
    pinned ones and answers with the genesis index whose pin equals it."""
    pins = {v.tls_cert_sha256: i for i, v in enumerate(genesis.validators)}

    async def who(request: bytes, context: grpc.aio.ServicerContext[bytes, bytes]) -> bytes:
        pem = context.auth_context()["x509_pem_cert"][0]
        index = pins.get(cert_pin_from_pem(pem))
        if index is None:
            await context.abort(grpc.StatusCode.PERMISSION_DENIED, "certificate not in genesis")
        return str(index).encode()

    node = net.nodes[0]
    creds = grpc.ssl_server_credentials(
        [((node.dir / "tls.key").read_bytes(), (node.dir / "tls.pem").read_bytes())],
        root_certificates=net.tls_pinned.read_bytes(),
        require_client_auth=True,
    )
    server = grpc.aio.server()
    handler = grpc.unary_unary_rpc_method_handler(who)
    server.add_generic_rpc_handlers(
        [grpc.method_handlers_generic_handler("test.Pin", {"Who": handler})]
    )
    port = server.add_secure_port("127.0.0.1:0", creds)
    return server, port


async def _call(port: int, creds: grpc.ChannelCredentials) -> bytes:
    options = [("grpc.ssl_target_name_override", "node-00")]
    async with grpc.aio.secure_channel(f"127.0.0.1:{port}", creds, options) as channel:
        reply: bytes = await channel.unary_unary(_METHOD)(b"", timeout=10)
        return reply


async def test_mutual_tls_identifies_the_peer_by_its_genesis_pin(
    net: Network, genesis: Genesis, tmp_path: Path
) -> None:
    server, port = _pin_checking_server(net, genesis)
    await server.start()
    try:
        ca = (net.nodes[0].dir / "tls.pem").read_bytes()  # the server's pin: its only root
        n1 = net.nodes[1].dir
        client = grpc.ssl_channel_credentials(
            ca, (n1 / "tls.key").read_bytes(), (n1 / "tls.pem").read_bytes()
        )
        assert await _call(port, client) == b"1"
        assert cert_pin(_cert(n1 / "tls.pem")) == genesis.validators[1].tls_cert_sha256

        with pytest.raises(grpc.aio.AioRpcError) as no_cert:
            await _call(port, grpc.ssl_channel_credentials(ca))
        assert no_cert.value.code() is grpc.StatusCode.UNAVAILABLE

        other = generate(tmp_path / "other", NetSpec(1, 1), progress=lambda _: None)
        o0 = other.nodes[0].dir
        stranger = grpc.ssl_channel_credentials(
            ca, (o0 / "tls.key").read_bytes(), (o0 / "tls.pem").read_bytes()
        )
        with pytest.raises(grpc.aio.AioRpcError) as wrong_ca:
            await _call(port, stranger)
        assert wrong_ca.value.code() is grpc.StatusCode.UNAVAILABLE

        # Signed by a CA, named node-01, but not the certificate genesis pins: the
        # handshake refuses it (the roots are the pinned certificates, not any CA).
        rogue_key, rogue_cert = _make_node_cert(
            _make_ca("rogue", datetime.now(UTC)), "node-01", "val01"
        )
        rogue = grpc.ssl_channel_credentials(
            ca,
            rogue_key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            ),
            rogue_cert.public_bytes(serialization.Encoding.PEM),
        )
        with pytest.raises(grpc.aio.AioRpcError) as unpinned:
            await _call(port, rogue)
        assert unpinned.value.code() is grpc.StatusCode.UNAVAILABLE
    finally:
        await server.stop(None)


def test_default_quorum_is_16_of_26_else_classic(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, _ = _run(["--out", str(tmp_path / "run"), "--n", "7"], capsys)
    assert code == 0
    assert load_network(tmp_path / "run").q == 5
    assert default_quorum(26) == 16
