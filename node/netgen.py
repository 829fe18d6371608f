"""Generate a validator network: keys, a private CA, TLS certificates, genesis, node configs.

``python -m node.netgen --out run --n 26 --q 16 --port-base 7000`` writes a run directory::

    genesis.json                    the chain; its hash (chain id) is printed at the end
    network.json                    every node's host, ports and config (netconfig.Network)
    validators.pem                  every validator's TLS certificate: the run-time trust
    ca/ca.pem, ca/ca.key            private CA, ECDSA P-256, self-signed, 10 years; used
                                    here only: nothing reads ca/ at run time
    nodes/node-XX/config.json       the node's config (netconfig.NodeConfig)
    nodes/node-XX/validator.key     Ed25519 consensus key, PKCS8 PEM
    nodes/node-XX/tls.pem, tls.key  TLS certificate (ECDSA P-256, signed by the CA)
    participants/<ID>.key           each demo participant's Ed25519 key, PKCS8 PEM

Every private key file is created with mode 0600 (never chmod-ed afterwards, so it is
never readable by others, not even for a moment) and every directory with 0700.

Genesis pins each validator's TLS certificate by the SHA-256 of its DER form. Peers
accept a peer connection only from the certificate pinned for the validator it claims to
be (see :func:`cert_pin_from_pem`), so the CA alone cannot add a validator. Dialers and
SDK clients pin too: the one trust root of a channel to validator i is validator i's
pinned certificate, taken from ``validators.pem`` and checked against genesis
(:func:`pinned_certificates`). The CA signs the certificates when the network is made and
is never trusted afterwards, so its key can go offline (or be deleted) at once: whoever
steals it can impersonate no validator (docs/cluster.md).

The keys derive from a fresh random seed (``demo_genesis``), which is neither printed nor
stored: the key files are the only copy. The demo participants, instruments and holdings
are those of ``demo_genesis``.
"""

from __future__ import annotations

import argparse
import dataclasses
import ipaddress
import logging
import os
import posixpath
import random
import secrets
import shutil
import socket
import stat
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from node import crypto
from node.config import VALIDATORS_MAX
from node.core.quorum import Quorum, classic_quorum
from node.genesis import demo_genesis, dump_genesis
from node.netconfig import (
    PINNED_CERTS_FILE,
    PORT_MAX,
    Network,
    NetworkNode,
    NodeConfig,
    PeerAddress,
    load_network,
    node_name,
    write_network,
    write_node_config,
)
from node.settlement import Genesis, Validator

__all__ = [
    "CONTAINER_CONFIG",
    "CONTAINER_DATA_DIR",
    "CONTAINER_GENESIS",
    "CONTAINER_NODE_DIR",
    "CONTAINER_PINNED",
    "KeyFileError",
    "NetSpec",
    "NetgenError",
    "cert_pin",
    "cert_pin_from_pem",
    "default_quorum",
    "dns_names",
    "generate",
    "load_signing_key",
    "main",
    "parser",
    "pinned_certificates",
    "summary",
    "write_private_file",
    "write_signing_key",
]

log = logging.getLogger(__name__)

CA_VALIDITY = timedelta(days=3650)
CLOCK_SKEW_ALLOWANCE = timedelta(minutes=5)  # certificates valid from a little before now
CLIENT_PORT_OFFSET = 1000
METRICS_PORT_OFFSET = 2000

# Where docker/compose.py mounts a node's files. The config names them relative to
# CONTAINER_NODE_DIR, where the node's own directory is mounted read-only.
CONTAINER_NODE_DIR = "/run/node"
CONTAINER_CONFIG = "/run/node/config.json"
CONTAINER_GENESIS = "/run/genesis.json"
CONTAINER_PINNED = "/run/validators.pem"
CONTAINER_DATA_DIR = "/run/data"  # a named volume

# Files netgen writes; a directory holding one of them may be wiped by --force.
_RUN_DIR_MARKERS = ("network.json", "genesis.json", "validators.pem", "ca", "nodes")


class NetgenError(ValueError):
    """The requested network cannot be generated; the message says why and what to do."""


class KeyFileError(ValueError):
    """A key file is missing, unreadable or holds the wrong kind of key."""


# --- key files ---------------------------------------------------------------------------


def write_private_file(path: str | Path, data: bytes) -> None:
    """Create ``path`` with mode 0600 from the start; refuse to overwrite or follow a link."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    fd = os.open(path, flags, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def write_signing_key(path: str | Path, key: crypto.SigningKey) -> None:
    """Write an Ed25519 key as unencrypted PKCS8 PEM, mode 0600 (FileExistsError if present)."""
    pem = Ed25519PrivateKey.from_private_bytes(key.seed()).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    write_private_file(path, pem)


def load_signing_key(path: str | Path) -> crypto.SigningKey:
    """Read a PKCS8 PEM Ed25519 key. Warns (does not refuse) if others may read the file."""
    try:
        mode = os.stat(path).st_mode
        data = Path(path).read_bytes()
    except OSError as e:
        raise KeyFileError(f"{path}: cannot read the signing key ({e.strerror})") from e
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        log.warning(
            "%s is accessible by group or others (mode %o); run: chmod 600 %s",
            path,
            stat.S_IMODE(mode),
            path,
        )
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as e:
        raise KeyFileError(f"{path}: not an unencrypted PKCS8 PEM private key ({e})") from e
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyFileError(f"{path}: expected an Ed25519 key, found {type(key).__name__}")
    return crypto.SigningKey(key.private_bytes_raw())


def cert_pin(cert: x509.Certificate) -> bytes:
    """What genesis pins for a validator: SHA-256 of the certificate's DER form."""
    return crypto.sha256(cert.public_bytes(serialization.Encoding.DER))


def cert_pin_from_pem(pem: bytes) -> bytes:
    """The pin of a PEM certificate, e.g. ``context.auth_context()["x509_pem_cert"][0]``."""
    return cert_pin(x509.load_pem_x509_certificate(pem))


def pinned_certificates(bundle: bytes, pins: Sequence[bytes]) -> dict[int, bytes]:
    """Validator index -> its PEM certificate, for every certificate in ``bundle`` (PEM,
    e.g. ``validators.pem``); ``pins`` are genesis's, in validator order. ValueError for a
    bundle with no certificate, or with one that genesis pins for no validator: a run-time
    trust root is a pinned certificate or nothing."""
    try:
        certs = x509.load_pem_x509_certificates(bundle)
    except ValueError as e:
        raise ValueError(f"no PEM certificate could be read ({e})") from e
    index_by_pin = {pin: i for i, pin in enumerate(pins) if pin}
    found: dict[int, bytes] = {}
    for cert in certs:
        index = index_by_pin.get(cert_pin(cert))
        if index is None:
            subject = cert.subject.rfc4514_string()
            raise ValueError(f"the certificate of {subject!r} is not pinned by genesis")
        found[index] = _pem_cert(cert)
    return found


def dns_names(pem: bytes) -> frozenset[str]:
    """The DNS names a PEM certificate's subjectAltName carries (node-XX, localhost...)."""
    cert = x509.load_pem_x509_certificate(pem)
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return frozenset()
    return frozenset(san.get_values_for_type(x509.DNSName))


# --- certificates ------------------------------------------------------------------------


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _pem_cert(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


@dataclass(frozen=True)
class _Ca:
    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate


def _make_ca(label: str, now: datetime) -> _Ca:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "dvp-ledger"),
            x509.NameAttribute(NameOID.COMMON_NAME, f"{label} validator CA"),
        ]
    )
    usage = x509.KeyUsage(
        digital_signature=False,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=True,
        crl_sign=True,
        encipher_only=False,
        decipher_only=False,
    )
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - CLOCK_SKEW_ALLOWANCE)
        .not_valid_after(now + CA_VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(usage, critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .sign(key, hashes.SHA256())
    )
    return _Ca(key, cert)


def _san(name: str, host: str) -> x509.SubjectAlternativeName:
    entries: list[x509.GeneralName] = [
        x509.DNSName(name),
        x509.DNSName("localhost"),
        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
    ]
    try:
        extra: x509.GeneralName = x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        extra = x509.DNSName(host)
    if extra not in entries and host not in ("0.0.0.0", "::"):
        entries.append(extra)
    return x509.SubjectAlternativeName(entries)


def _make_node_cert(
    ca: _Ca, name: str, host: str
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    """A certificate for both ports: server auth on both, client auth when dialing peers."""
    key = ec.generate_private_key(ec.SECP256R1())
    usage = x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=False,
        crl_sign=False,
        encipher_only=False,
        decipher_only=False,
    )
    ca_ski = ca.cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(ca.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(ca.cert.not_valid_before_utc)
        .not_valid_after(ca.cert.not_valid_after_utc)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(usage, critical=True)
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .add_extension(_san(name, host), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), False
        )
        .sign(ca.key, hashes.SHA256())
    )
    return key, cert


# --- the network -------------------------------------------------------------------------


@dataclass(frozen=True)
class NetSpec:
    """What to generate.

    ``containers``: one container per node (docker/compose.py). Each node is reached at
    its container name (node-XX), listens on 0.0.0.0 and names its files by the paths
    compose mounts them at (CONTAINER_*). Otherwise every node is on ``host``.
    """

    n: int = 26
    q: int = 16
    port_base: int = 7000
    host: str = "127.0.0.1"
    listen_host: str | None = None  # default: host
    containers: bool = False

    def check(self) -> Quorum:
        if not 0 < self.n <= VALIDATORS_MAX:
            raise NetgenError(f"n={self.n}: a network has 1..{VALIDATORS_MAX} validators")
        try:
            quorum = Quorum(self.n, self.q)
        except ValueError as e:
            raise NetgenError(str(e)) from e
        top = self.port_base + METRICS_PORT_OFFSET + self.n - 1
        if self.port_base < 1 or top > PORT_MAX:
            raise NetgenError(
                f"port base {self.port_base} puts ports outside 1..{PORT_MAX} "
                f"(the highest is port base + {METRICS_PORT_OFFSET} + n - 1 = {top})"
            )
        return quorum

    def host_of(self, name: str) -> str:
        return name if self.containers else self.host

    def node(self, i: int, run_dir: Path) -> NetworkNode:
        name = node_name(i, self.n)
        return NetworkNode(
            validator=i,
            id=f"val{i:02d}",
            host=self.host_of(name),
            peer_port=self.port_base + i,
            client_port=self.port_base + CLIENT_PORT_OFFSET + i,
            metrics_port=self.port_base + METRICS_PORT_OFFSET + i,
            config=run_dir / "nodes" / name / "config.json",
        )


def _prepare_run_dir(out: Path, force: bool) -> None:
    if out.exists() and not out.is_dir():
        raise NetgenError(f"{out} exists and is not a directory")
    if out.is_dir() and any(out.iterdir()):
        if not force:
            raise NetgenError(f"{out} is not empty; pass --force to wipe it and generate anew")
        if not any((out / m).exists() for m in _RUN_DIR_MARKERS):
            raise NetgenError(
                f"refusing to wipe {out}: it holds no network.json, genesis.json, ca/ or "
                "nodes/, so it does not look like a run directory; remove it yourself"
            )
        # Empty it rather than remove it: it may be a mount point or a symlink.
        for child in out.iterdir():
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child)
            else:
                child.unlink()
    out.mkdir(mode=0o700, parents=True, exist_ok=True)
    for sub in ("ca", "nodes", "participants"):
        (out / sub).mkdir(mode=0o700)


def _node_config(spec: NetSpec, node: NetworkNode, nodes: Sequence[NetworkNode]) -> NodeConfig:
    peers = tuple(PeerAddress(p.validator, p.peer_address, p.name) for p in nodes if p is not node)
    run_dir = node.dir.parent.parent
    if spec.containers:
        # Relative to CONTAINER_NODE_DIR: e.g. ../genesis.json is /run/genesis.json.
        genesis, data_dir, tls_pinned = (
            Path(posixpath.relpath(p, CONTAINER_NODE_DIR))
            for p in (CONTAINER_GENESIS, CONTAINER_DATA_DIR, CONTAINER_PINNED)
        )
    else:
        genesis, data_dir, tls_pinned = (
            run_dir / "genesis.json",
            node.dir / "data",
            run_dir / PINNED_CERTS_FILE,
        )
    return NodeConfig(
        validator=node.validator,
        signing_key=node.dir / "validator.key",
        tls_cert=node.dir / "tls.pem",
        tls_key=node.dir / "tls.key",
        listen_host="0.0.0.0" if spec.containers else (spec.listen_host or spec.host),
        peer_port=node.peer_port,
        client_port=node.client_port,
        metrics_port=node.metrics_port,
        peers=peers,
        genesis=genesis,
        data_dir=data_dir,
        tls_pinned=tls_pinned,
    )


def generate(
    out: str | Path,
    spec: NetSpec,
    *,
    force: bool = False,
    progress: Callable[[str], None] = print,
) -> Network:
    """Write a run directory for ``spec`` into ``out`` and return its network.

    Raises NetgenError (nothing written) for a bad spec or a non-empty ``out`` without
    ``force``; with ``force`` a previous run directory is wiped first.
    """
    spec.check()
    out = Path(os.path.abspath(out))
    _prepare_run_dir(out, force)
    now = datetime.now(UTC)
    label = f"local-{secrets.token_hex(4)}"
    ca = _make_ca(label, now)
    write_private_file(out / "ca" / "ca.key", _pem_key(ca.key))
    (out / "ca" / "ca.pem").write_bytes(_pem_cert(ca.cert))

    # demo_genesis puts its seed into the genesis name, so the seed must be an ASCII id;
    # 64 hex characters carry 256 random bits. The name is replaced below: it never leaks.
    # The lifecycle bonds' dates are relative to today: the demo pays a due coupon and
    # redeems a matured bond (block time is the wall clock).
    seed = secrets.token_hex(32).encode()
    demo = demo_genesis(
        spec.n,
        spec.q,
        seed,
        lifecycle_date=now.date(),
        backing=True,
        compliance=True,
        margin=True,
    )
    progress(f"generating {spec.n} validator keys and TLS certificates in {out}")
    nodes = [spec.node(i, out) for i in range(spec.n)]
    validators, pinned = [], []
    for node, vkey in zip(nodes, demo.validator_keys, strict=True):
        node.dir.mkdir(mode=0o700)
        tls_key, cert = _make_node_cert(ca, node.name, node.host)
        write_signing_key(node.dir / "validator.key", vkey)
        write_private_file(node.dir / "tls.key", _pem_key(tls_key))
        (node.dir / "tls.pem").write_bytes(_pem_cert(cert))
        pinned.append(_pem_cert(cert))
        validators.append(Validator(node.id, vkey.public_key, tls_cert_sha256=cert_pin(cert)))
    genesis: Genesis = dataclasses.replace(demo.genesis, name=label, validators=tuple(validators))
    dump_genesis(genesis, out / "genesis.json")
    (out / PINNED_CERTS_FILE).write_bytes(b"".join(pinned))
    for node in nodes:
        write_node_config(node.config, _node_config(spec, node, nodes))
    for pid, pkey in demo.participant_keys.items():
        write_signing_key(out / "participants" / f"{pid}.key", pkey)
    write_network(Network(out, genesis.chain_id, spec.n, spec.q, tuple(nodes)))
    return load_network(out)


def summary(net: Network, spec: NetSpec) -> list[str]:
    """What was generated, for people: quorum bounds, ports, where the keys are."""
    quorum = Quorum(net.n, net.q)
    first, last = net.nodes[0], net.nodes[-1]
    where = "node-XX" if spec.containers else spec.host
    lines = [
        f"quorum      {quorum.describe()}",
        f"ports       peer {first.peer_port}-{last.peer_port}, "
        f"client {first.client_port}-{last.client_port}, "
        f"metrics {first.metrics_port}-{last.metrics_port} on {where}",
        f"genesis     {net.genesis}",
        f"network     {net.run_dir / 'network.json'} (configs in nodes/node-XX/config.json)",
        "keys (0600) nodes/node-XX/validator.key (Ed25519), nodes/node-XX/tls.key (TLS), "
        "ca/ca.key (CA), participants/<ID>.key (demo participants)",
        f"trust       {PINNED_CERTS_FILE}: each validator's pinned certificate; nothing reads "
        "ca/ at run time: move ca/ca.key offline",
    ]
    warning = quorum.warning()
    if warning:
        lines.append(f"warning     {warning}")
    lines.append(f"chain id    {net.chain_id}")
    return lines


_EPHEMERAL_PORT_MIN = 32_768


def free_port_base(
    n: int, host: str = "127.0.0.1", *, also: Callable[[int], Sequence[int]] | None = None
) -> int:
    """A port base whose peer, client and metrics ports for ``n`` nodes are all free now
    (for demos and tests that must not collide with a running `make cluster`), and the
    ports ``also(base)`` too (the chaos run's proxy ports)."""
    for _ in range(200):
        # Below Linux's ephemeral range (32768..60999): there, the outgoing connections of
        # other clusters on this machine take ports between this check and the bind.
        base = random.randrange(10_000, _EPHEMERAL_PORT_MIN - METRICS_PORT_OFFSET - n, 10)
        ports = [
            base + off + i for off in (0, CLIENT_PORT_OFFSET, METRICS_PORT_OFFSET) for i in range(n)
        ]
        ports += also(base) if also else []
        if all(p < _EPHEMERAL_PORT_MIN and _bindable(host, p) for p in ports):
            return base
    raise NetgenError(f"no free range of ports on {host} for {n} nodes")


def _bindable(host: str, port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def default_quorum(n: int) -> int:
    """16 for the standard 26-validator network (issue #4), else the classic quorum."""
    return 16 if n == 26 else classic_quorum(max(n, 1))


def parser() -> argparse.ArgumentParser:
    """The command line of ``python -m node.netgen`` (``ledger genesis`` reuses it)."""
    p = argparse.ArgumentParser(
        prog="python -m node.netgen",
        description="Generate validator keys, a private CA, TLS certificates, a genesis "
        "and one config per node into a run directory.",
    )
    p.add_argument("--out", type=Path, default=Path("run"), help="run directory (default: run)")
    p.add_argument("--n", type=int, default=26, help="number of validators (default: 26)")
    p.add_argument(
        "--q",
        type=int,
        help="quorum, more than n/2 (default: 16 for 26 validators, else the classic "
        "floor(2n/3) + 1)",
    )
    p.add_argument(
        "--port-base",
        type=int,
        default=7000,
        help="peer port of node 0; client ports at +1000, metrics at +2000 (default: 7000)",
    )
    p.add_argument(
        "--host",
        default="127.0.0.1",
        help="address peers and clients use to reach the nodes; also in the certificates "
        "(default: 127.0.0.1)",
    )
    p.add_argument("--listen-host", help="address the nodes listen on (default: --host)")
    p.add_argument("--force", action="store_true", help="wipe an existing run directory first")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    q = args.q if args.q is not None else default_quorum(args.n)
    spec = NetSpec(args.n, q, args.port_base, args.host, args.listen_host)
    try:
        net = generate(args.out, spec, force=args.force)
    except NetgenError as e:
        print(f"netgen: error: {e}", file=sys.stderr)
        return 2
    print("\n".join(summary(net, spec)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
