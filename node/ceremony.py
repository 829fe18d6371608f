"""The genesis ceremony: every operator makes its own keys, a coordinator assembles genesis
from public bundles, every operator verifies what it got (docs/deploy.md, ADR 0019).

Theory of operation:

1. **keygen**, by each operator on its own machine (``ledger-node keygen``): a validator's
   Ed25519 consensus key and ECDSA P-256 TLS key are made in its private directory (0600)
   and never leave it, with a self-signed TLS certificate naming the validator and its host.
   It writes a *public* bundle, ``<name>.bundle.json``: name, public key, certificate,
   host and ports, signed by the validator key. A participant (a bank trading through the
   SDK) makes its Ed25519 key and a bundle of its name and public key the same way.
2. **assemble**, by a coordinator (``ledger-node genesis assemble``): reads the bundles,
   refuses any that is malformed, badly self-signed or that repeats a name, a key, a
   certificate or an address, fills the coordinator's genesis template (participants'
   roles and tiers, instruments, holdings, governance) with the validators (in name order)
   and the participants' keys, and writes three public files: ``genesis.json``,
   ``validators.pem`` (every validator's certificate, each pinned by genesis) and
   ``addresses.json`` (where each validator is reached, and the TLS name it proves).
3. **verify**, by every operator (``ledger-node genesis verify``): its own key,
   certificate and address are in those files as its bundle has them, and the files pass
   what assemble checks of bundles (a coordinator could skip assemble's checks); it prints
   the chain id and a fingerprint of the chain id and the addresses, which the operators
   compare out of band (a call, not the channel the files came by).
4. **config**, by each operator (``ledger-node config``): its node config from the public
   files and its private directory, with local overrides of peers' addresses.

What the self-signature proves: that whoever holds the validator key made this bundle as
it is, so a bundle altered on its way (another certificate, another address) is refused.
It cannot prove that the bundle comes from the bank it names: a coordinator could swap in
a bundle of its own. Step 3 catches that: the bank whose key is missing fails its verify,
and a genesis that differs between operators shows as a different fingerprint.

No certificate authority: each validator's certificate is self-signed and genesis pins it
by hash, which peers and clients already check (ADR 0004); nobody holds a key that could
sign for another validator (ADR 0019). Nothing is written when any input is bad.
"""

from __future__ import annotations

import dataclasses
import errno
import ipaddress
import json
import re
import stat
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from node import codec, crypto, tags
from node.config import (
    BUNDLE_CERT_PEM_BYTES_MAX,
    BUNDLE_FILE_BYTES_MAX,
    BUNDLE_HOST_BYTES_MAX,
    BUNDLES_MAX,
    TLS_CERT_VALIDITY_DAYS,
)
from node.core.quorum import Quorum
from node.files import read_regular, read_regular_text
from node.genesis import dump_genesis, genesis_to_json, load_genesis, parse_genesis
from node.keyfiles import (
    KeyFileError,
    cert_pin,
    cert_pin_from_pem,
    dns_names,
    load_signing_key,
    pem_cert,
    pem_key,
    pinned_certificates,
    write_private_file,
    write_signing_key,
)
from node.netconfig import (
    PINNED_CERTS_FILE,
    PORT_MAX,
    NodeConfig,
    PeerAddress,
    host_port,
    is_ip,
)
from node.settlement import Genesis, GenesisError
from node.settlement._codec import check_id

__all__ = [
    "ADDRESSES_FILE",
    "BUNDLE_SUFFIX",
    "GENESIS_FILE",
    "PARTICIPANT",
    "TLS_CERT_FILE",
    "TLS_KEY_FILE",
    "VALIDATOR",
    "VALIDATOR_KEY_FILE",
    "Address",
    "Assembly",
    "Bundle",
    "CeremonyError",
    "assemble",
    "check_bundle",
    "fingerprint",
    "keygen_participant",
    "keygen_validator",
    "load_assembly",
    "node_config",
    "parse_bundle",
    "parse_overrides",
    "read_bundle",
    "read_bundles",
    "template_from_genesis",
    "verify",
    "write_assembly",
    "write_bundle",
]

VALIDATOR, PARTICIPANT = "validator", "participant"
BUNDLE_FORMAT = 1  # signed with the bundle: a later layout cannot be read as this one
BUNDLE_SUFFIX = ".bundle.json"
GENESIS_FILE, ADDRESSES_FILE = "genesis.json", "addresses.json"
VALIDATOR_KEY_FILE, TLS_KEY_FILE, TLS_CERT_FILE = "validator.key", "tls.key", "tls.pem"
CLOCK_SKEW_ALLOWANCE = timedelta(minutes=5)  # a fresh certificate is valid a little before now
_NAME_BYTES_MAX = 64
# A validator's name is its genesis id, a DNS name in its certificate and the name of its
# Kubernetes objects, so it is a DNS label (RFC 1123): lowercase letters, digits, '-'.
_DNS_LABEL = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\Z")
_LABEL = r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_DNS_NAME = re.compile(rf"{_LABEL}(\.{_LABEL})*\Z")
# A name whose last label is a number is no DNS name: resolvers (glibc's inet_aton, gRPC's
# with it) read it as an IPv4 address in a legacy spelling: "0" is 0.0.0.0, "127.1" is
# 127.0.0.1, "010.0.0.1" is 8.0.0.1 (octal). WHATWG's URL parser does the same.
_NUMERIC_LABEL = re.compile(r"([0-9]+|0[xX][0-9A-Fa-f]*)\Z")
_FINGERPRINT_HEX = 32  # 128 bits, read aloud as eight groups of four
# What reading a hostile certificate raises: cryptography's own classes are no ValueError.
_CERT_ERRORS = (
    ValueError,
    x509.DuplicateExtension,
    x509.UnsupportedGeneralNameType,
    x509.InvalidVersion,
)


class CeremonyError(ValueError):
    """A bundle, template or genesis that the ceremony refuses; the message says which
    file and field, and what to do. Nothing was written."""


# --- bundles -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Bundle:
    """What an operator hands over: public, signed by the key it carries."""

    kind: str  # VALIDATOR or PARTICIPANT
    name: str  # genesis id: a validator's (a DNS label) or a participant's
    public_key: bytes  # Ed25519
    signature: bytes = b""  # by ``public_key`` over signed_message()
    tls_cert: bytes = b""  # validators: PEM, self-signed; genesis pins its SHA-256
    host: str = ""  # validators: where peers and clients reach it
    peer_port: int = 0
    client_port: int = 0

    def signed_message(self) -> bytes:
        """tags.BUNDLE || every field but the signature, canonically encoded."""
        try:
            return (
                codec.Writer()
                .raw(tags.BUNDLE)
                .u8(BUNDLE_FORMAT)
                .blob16(self.kind.encode(), _NAME_BYTES_MAX)
                .blob16(self.name.encode(), _NAME_BYTES_MAX)
                .fixed(self.public_key, 32)
                .blob(self.tls_cert, BUNDLE_CERT_PEM_BYTES_MAX)
                .blob16(self.host.encode(), BUNDLE_HOST_BYTES_MAX)
                .u16(self.peer_port)
                .u16(self.client_port)
                .finish()
            )
        except codec.EncodeError as e:
            raise CeremonyError(f"bundle {self.name!r}: {e}") from e

    def signed(self, key: crypto.SigningKey) -> Bundle:
        return dataclasses.replace(self, signature=key.sign(self.signed_message()))

    @property
    def tls_pin(self) -> bytes:
        return cert_pin_from_pem(self.tls_cert)

    @property
    def tls_name(self) -> str:
        """The name peers check the certificate for: the host if it is a DNS name (TLS
        names match the host), else the validator's name (an IP address is no TLS name
        gRPC overrides the target with)."""
        return self.name if is_ip(self.host) else self.host

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "bundle": BUNDLE_FORMAT,
            "kind": self.kind,
            "name": self.name,
            "public_key": self.public_key.hex(),
        }
        if self.kind == VALIDATOR:
            doc.update(
                tls_cert=self.tls_cert.decode("ascii"),
                host=self.host,
                peer_port=self.peer_port,
                client_port=self.client_port,
            )
        doc["signature"] = self.signature.hex()
        return doc


_COMMON = {"bundle", "kind", "name", "public_key", "signature"}
_VALIDATOR_FIELDS = {"tls_cert", "host", "peer_port", "client_port"}


def _field(doc: dict[str, Any], key: str, kind: type, where: str) -> Any:
    v = doc[key]
    if type(v) is not kind:  # bool is an int subclass; a port is never 7000.0
        raise CeremonyError(f"{where}.{key}: expected {kind.__name__}, got {type(v).__name__}")
    return v


def _hex(doc: dict[str, Any], key: str, where: str) -> bytes:
    try:
        return bytes.fromhex(_field(doc, key, str, where))
    except ValueError as e:
        raise CeremonyError(f"{where}.{key}: not hex") from e


def parse_bundle(doc: Any, where: str = "bundle") -> Bundle:
    """A bundle from its JSON form; strict: a missing, unknown or mistyped field is named.
    Parsing checks form only; :func:`check_bundle` checks what the fields say."""
    if not isinstance(doc, dict):
        raise CeremonyError(f"{where}: expected a JSON object")
    kind = doc.get("kind")
    required = _COMMON | (_VALIDATOR_FIELDS if kind == VALIDATOR else set())
    if kind not in (VALIDATOR, PARTICIPANT):
        raise CeremonyError(f"{where}.kind: must be {VALIDATOR!r} or {PARTICIPANT!r}")
    missing, unknown = sorted(required - doc.keys()), sorted(doc.keys() - required)
    if missing or unknown:
        raise CeremonyError(f"{where}: missing fields {missing}, unknown fields {unknown}")
    if doc["bundle"] != BUNDLE_FORMAT or type(doc["bundle"]) is not int:
        raise CeremonyError(f"{where}.bundle: format {doc['bundle']!r}, this reads {BUNDLE_FORMAT}")
    extra: dict[str, Any] = {}
    if kind == VALIDATOR:
        extra = {
            "tls_cert": _field(doc, "tls_cert", str, where).encode("ascii", "replace"),
            "host": _field(doc, "host", str, where),
            "peer_port": _field(doc, "peer_port", int, where),
            "client_port": _field(doc, "client_port", int, where),
        }
    return Bundle(
        kind=kind,
        name=_field(doc, "name", str, where),
        public_key=_hex(doc, "public_key", where),
        signature=_hex(doc, "signature", where),
        **extra,
    )


def check_bundle(b: Bundle, where: str = "bundle") -> Bundle:
    """``b`` if the signature is by its key and every field is sound, else CeremonyError.
    The signature first: an altered bundle is reported as altered, whatever field it was."""
    if not crypto.is_acceptable_public_key(b.public_key):
        raise CeremonyError(f"{where}.public_key: not a valid Ed25519 public key")
    try:
        message = b.signed_message()
    except CeremonyError as e:  # a field past its encoding's bound: no keygen made it
        raise CeremonyError(f"{where}: {e}") from e
    if not crypto.verify(b.public_key, message, b.signature):
        raise CeremonyError(
            f"{where}.signature: not by the bundle's own key over its fields: the bundle "
            "was altered after keygen (ask its operator for it again, by another channel)"
        )
    if b.kind == VALIDATOR:
        _check_validator_fields(b, where)
    else:
        try:
            check_id(b.name, "participant id")
        except ValueError as e:
            raise CeremonyError(f"{where}.name: {e}") from e
    return b


def _check_validator_fields(b: Bundle, where: str) -> None:
    _check_validator_address(b, where)
    if len(b.tls_cert) > BUNDLE_CERT_PEM_BYTES_MAX:
        raise CeremonyError(f"{where}.tls_cert: over {BUNDLE_CERT_PEM_BYTES_MAX} bytes")
    try:
        names = dns_names(b.tls_cert)
        cert = x509.load_pem_x509_certificate(b.tls_cert)
        canonical, issuer = pem_cert(cert), _can_issue(cert)
    except _CERT_ERRORS as e:
        raise CeremonyError(f"{where}.tls_cert: not a PEM certificate ({e})") from e
    if b.tls_cert != canonical:  # validators.pem joins them: no text, no unpinned root
        raise CeremonyError(
            f"{where}.tls_cert: not one PEM certificate as keygen writes it (nothing before "
            "or after it, no second one)"
        )
    if issuer:
        raise CeremonyError(
            f"{where}.tls_cert: can sign certificates (a CA, or no key usage that forbids "
            "it): every node trusts the pinned certificates as roots; make it with keygen"
        )
    if b.tls_name not in names or b.name not in names:
        raise CeremonyError(
            f"{where}.tls_cert: its names {sorted(names)} must include the validator's "
            f"name {b.name!r} and its TLS name {b.tls_name!r}"
        )


def _can_issue(cert: x509.Certificate) -> bool:
    """Whether TLS could take ``cert`` as the issuer of another certificate. Every peer
    port trusts the pinned certificates as client roots, so a pinned issuer lets its
    validator mint clients that pass TLS there; gRPC's BoringSSL does not insist on a
    root's CA flag, but a key usage without keyCertSign stops it (as keygen makes them)."""
    try:
        constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
        usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        return True
    return constraints.ca or usage.key_cert_sign


def _check_validator_address(b: Bundle, where: str) -> None:
    """A validator bundle's name, host and ports: what keygen checks before it makes a
    certificate of them."""
    if not _DNS_LABEL.match(b.name):
        raise CeremonyError(
            f"{where}.name: {b.name!r} must be a DNS label (1-63 of a-z, 0-9, '-'; "
            "letters or digits at both ends): it names the validator, its certificate "
            "and its Kubernetes objects"
        )
    if not _dialable(b.host):
        raise CeremonyError(f"{where}.host: {b.host!r} is no DNS name or address peers can dial")
    for f in ("peer_port", "client_port"):
        if not 0 < getattr(b, f) <= PORT_MAX:
            raise CeremonyError(f"{where}.{f}: must be 1..{PORT_MAX}")
    if b.peer_port == b.client_port:
        raise CeremonyError(f"{where}: peer_port and client_port must differ")


def _dialable(host: str) -> bool:
    """A DNS name, or an IP address other machines can dial: not the unspecified address
    (in any spelling, "0" included), an IPv4 address in its dotted-quad form only (a DNS
    name ending in a number is one in another spelling, which the same-address check
    would not see), no IPv6 zone (``%eth0``: an interface of the bundle's own machine,
    and any text but '%', newlines included)."""
    if not 0 < len(host) <= BUNDLE_HOST_BYTES_MAX:
        return False
    if not is_ip(host):
        return bool(_DNS_NAME.match(host)) and not _NUMERIC_LABEL.match(host.rsplit(".", 1)[-1])
    return "%" not in host and not ipaddress.ip_address(host).is_unspecified


def _once_each(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object whose keys differ: JSON lets a key repeat and Python keeps the last,
    so a bundle could show a reader one host and the parser another."""
    doc = dict(pairs)
    if len(doc) != len(pairs):
        twice = sorted(k for k in doc if [p[0] for p in pairs].count(k) > 1)
        raise CeremonyError(f"the field {twice[0]!r} twice")
    return doc


def read_bundle(path: str | Path) -> Bundle:
    """Read and check one bundle file (size-bounded before it is parsed)."""
    path = Path(path)
    try:
        data = read_regular(path, BUNDLE_FILE_BYTES_MAX)
    except OSError as e:
        if e.errno == errno.EFBIG:
            raise CeremonyError(f"{path}: over {BUNDLE_FILE_BYTES_MAX} bytes, no bundle is") from e
        raise CeremonyError(f"{path}: cannot read ({e.strerror})") from e
    try:
        doc = json.loads(data.decode("utf-8"), object_pairs_hook=_once_each)
    except (ValueError, RecursionError) as e:  # ValueError: also a 5,000-digit integer
        raise CeremonyError(f"{path}: not a JSON bundle ({e})") from e
    return check_bundle(parse_bundle(doc, path.name), path.name)


def read_bundles(sources: Iterable[str | Path]) -> list[Bundle]:
    """Every ``*.bundle.json`` of the given directories, and the given files."""
    paths: list[Path] = []
    for src in map(Path, sources):
        paths += sorted(src.glob("*" + BUNDLE_SUFFIX)) if src.is_dir() else [src]
    if len(paths) > BUNDLES_MAX:
        raise CeremonyError(f"{len(paths)} bundles; at most {BUNDLES_MAX}")
    return [read_bundle(p) for p in paths]


def write_bundle(path: str | Path, bundle: Bundle) -> None:
    """Write a bundle (public: mode 0644); refuses to overwrite."""
    with open(path, "x", encoding="utf-8") as f:
        f.write(json.dumps(bundle.to_json(), indent=2) + "\n")


# --- keygen ------------------------------------------------------------------------------


def _self_signed(
    key: ec.EllipticCurvePrivateKey, names: Sequence[str], now: datetime
) -> x509.Certificate:
    """A certificate for both ports (server auth, and client auth when dialing peers),
    issued by itself: genesis pins it, no CA vouches for it (ADR 0019)."""
    alt: list[x509.GeneralName] = []
    for n in dict.fromkeys(names):  # in order, once each
        alt.append(x509.IPAddress(ipaddress.ip_address(n)) if is_ip(n) else x509.DNSName(n))
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])])
    usage = x509.KeyUsage(
        digital_signature=True, content_commitment=False, key_encipherment=False,
        data_encipherment=False, key_agreement=False, key_cert_sign=False, crl_sign=False,
        encipher_only=False, decipher_only=False,
    )  # fmt: skip
    eku = x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH])
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - CLOCK_SKEW_ALLOWANCE)
        .not_valid_after(now + timedelta(days=TLS_CERT_VALIDITY_DAYS))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(usage, critical=True)
        .add_extension(eku, critical=False)
        .add_extension(x509.SubjectAlternativeName(alt), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .sign(key, hashes.SHA256())
    )


def _private_dir(out: Path) -> None:
    """``out`` made 0700, or, if it exists, one that only its owner may write: whoever
    may write a directory may replace the keys and the bundle in it before the bundle is
    handed over (and then holds the validator key genesis lists)."""
    if out.is_dir():
        mode = stat.S_IMODE(out.stat().st_mode)
        if mode & (stat.S_IWGRP | stat.S_IWOTH):
            raise CeremonyError(
                f"{out}: mode {mode:04o}, so others may replace the keys in it; "
                f"run chmod go-w {out}, or name a new directory (keygen makes it 0700)"
            )
    out.mkdir(mode=0o700, parents=True, exist_ok=True)


def keygen_validator(
    out: str | Path,
    name: str,
    host: str,
    peer_port: int,
    client_port: int,
    *,
    extra_names: Sequence[str] = (),
) -> Bundle:
    """Make a validator's keys and certificate in ``out`` (0600, never overwritten) and
    its public bundle ``out/<name>.bundle.json``. The bundle is checked before any key is
    written, so a bad name, host or port writes nothing."""
    out = Path(out)
    vkey = crypto.SigningKey.generate()
    tls_key = ec.generate_private_key(ec.SECP256R1())
    probe = Bundle(VALIDATOR, name, vkey.public_key, host=host, peer_port=peer_port,
                   client_port=client_port)  # fmt: skip
    _check_validator_address(probe, "keygen")  # before a certificate is made of them
    for extra in extra_names:
        if not (is_ip(extra) or _DNS_NAME.match(extra)) or len(extra) > BUNDLE_HOST_BYTES_MAX:
            raise CeremonyError(f"--san {extra[:80]!r}: not a DNS name or IP address")
    names = [name, probe.tls_name, host, *extra_names]
    cert = _self_signed(tls_key, names, datetime.now(UTC))
    bundle = dataclasses.replace(probe, tls_cert=pem_cert(cert)).signed(vkey)
    check_bundle(bundle, f"{name}{BUNDLE_SUFFIX}")
    targets = [out / f for f in (VALIDATOR_KEY_FILE, TLS_KEY_FILE, TLS_CERT_FILE)]
    _refuse_existing([*targets, out / f"{name}{BUNDLE_SUFFIX}"])
    _private_dir(out)
    write_signing_key(targets[0], vkey)
    write_private_file(targets[1], pem_key(tls_key))
    targets[2].write_bytes(bundle.tls_cert)
    write_bundle(out / f"{name}{BUNDLE_SUFFIX}", bundle)
    return bundle


def keygen_participant(out: str | Path, name: str) -> Bundle:
    """A participant's Ed25519 key ``out/<name>.key`` (0600) and its bundle."""
    out = Path(out)
    key = crypto.SigningKey.generate()
    bundle = check_bundle(Bundle(PARTICIPANT, name, key.public_key).signed(key))
    _refuse_existing([out / f"{name}.key", out / f"{name}{BUNDLE_SUFFIX}"])
    _private_dir(out)
    write_signing_key(out / f"{name}.key", key)
    write_bundle(out / f"{name}{BUNDLE_SUFFIX}", bundle)
    return bundle


def _refuse_existing(paths: Iterable[Path]) -> None:
    for p in paths:
        if p.exists() or p.is_symlink():
            raise CeremonyError(f"{p} exists; keygen never overwrites a key or a bundle")


# --- assemble ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Address:
    """Where validator ``id`` is reached and the name its certificate proves."""

    id: str
    host: str
    peer_port: int
    client_port: int
    tls_name: str

    @property
    def peer_address(self) -> str:
        return host_port(self.host, self.peer_port)

    @property
    def client_address(self) -> str:
        return host_port(self.host, self.client_port)


@dataclass(frozen=True, slots=True)
class Assembly:
    """The public outcome of a ceremony: genesis, the addresses (in validator order) and
    every validator's certificate (PEM, in validator order)."""

    genesis: Genesis
    addresses: tuple[Address, ...]
    certificates: tuple[bytes, ...]

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.genesis.chain_id, self.addresses)


def fingerprint(chain_id: str, addresses: Sequence[Address]) -> str:
    """What operators read to each other: 128 bits of SHA-256 over the chain id and the
    addresses, as eight groups of four hex digits. The chain id alone covers keys, pins
    and quorum; the addresses are outside genesis (a node may move without a new chain)
    but every operator's config is made from them, so they are compared too."""
    doc = [dataclasses.asdict(a) for a in addresses]
    text = json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()
    digest = crypto.sha256(tags.FINGERPRINT, chain_id.encode(), text).hex()[:_FINGERPRINT_HEX]
    return " ".join(digest[i : i + 4] for i in range(0, _FINGERPRINT_HEX, 4))


def template_from_genesis(g: Genesis, *, name: str | None = None) -> dict[str, Any]:
    """A genesis template (what the coordinator brings): ``g`` without validators, quorum
    or participants' public keys, which the bundles supply."""
    doc = genesis_to_json(g)
    del doc["validators"], doc["quorum"]
    for p in doc["participants"]:
        del p["public_key"]
    if name is not None:
        doc["name"] = name
    return doc


def _unique(values: Iterable[tuple[Any, str]], what: str) -> None:
    seen: dict[Any, str] = {}
    for value, owner in values:
        if value in seen:
            raise CeremonyError(f"{seen[value]} and {owner} have the same {what}")
        seen[value] = owner


def _check_distinct(bundles: Sequence[Bundle]) -> None:
    validators = [b for b in bundles if b.kind == VALIDATOR]
    _unique((((b.kind, b.name), b.name) for b in bundles), "name")
    _unique(((b.public_key, b.name) for b in bundles), "public key")
    _unique(((b.tls_pin, b.name) for b in validators), "TLS certificate")
    _unique(((b.tls_name, b.name) for b in validators), "TLS name")
    ports = [
        ((_same_host(b.host), p), b.name) for b in validators for p in (b.peer_port, b.client_port)
    ]
    _unique(ports, "address (host and port)")
    _check_own_names(validators)


def _same_host(host: str) -> object:
    """What two spellings of one host share: the address ('::1' is '0::1', and
    '::ffff:10.0.0.5', which a dual-stack socket dials as '10.0.0.5', is '10.0.0.5'), or
    the name in lowercase (DNS ignores case)."""
    if not is_ip(host):
        return host.lower()
    address = ipaddress.ip_address(host)
    return getattr(address, "ipv4_mapped", None) or address


def _check_own_names(validators: Sequence[Bundle]) -> None:
    """No validator's certificate carries another validator's name or TLS name: for each
    endpoint the SDK trusts the one pinned certificate carrying its TLS name and refuses
    an endpoint two carry, so one hostile certificate naming the others would cut every
    bank off from them (TLS compares names ignoring case; so does this)."""
    claims = {n.lower(): b.name for b in validators for n in (b.name, b.tls_name)}
    for b in validators:
        for n in sorted(dns_names(b.tls_cert)):
            other = claims.get(n.lower(), b.name)
            if other != b.name:
                raise CeremonyError(
                    f"the certificate of {b.name!r} carries the name {n!r} of validator "
                    f"{other!r}: a certificate names its own validator only"
                )


def _participants(template: dict[str, Any], keys: dict[str, bytes]) -> list[Any]:
    """The template's participants with each missing public key taken from its bundle."""
    items = template.get("participants")
    if not isinstance(items, list):
        raise CeremonyError("template.participants: expected a list")
    out, named = [], set()
    for i, p in enumerate(items):
        if not isinstance(p, dict) or not isinstance(p.get("id"), str):
            raise CeremonyError(f"template.participants[{i}]: expected an object with an id")
        named.add(p["id"])
        if "public_key" in p:
            if p["id"] in keys:
                raise CeremonyError(
                    f"participant {p['id']!r}: the template has its key and a bundle too"
                )
            out.append(p)
        elif p["id"] in keys:
            out.append({**p, "public_key": keys[p["id"]].hex()})
        else:
            raise CeremonyError(f"participant {p['id']!r}: no bundle and no key in the template")
    unknown = sorted(keys.keys() - named)
    if unknown:
        raise CeremonyError(
            f"participant bundle {unknown[0]!r}: the template has no such participant "
            "(its roles and KYC tier are the template's to say)"
        )
    return out


def assemble(bundles: Sequence[Bundle], template: Mapping[str, Any], q: int) -> Assembly:
    """Genesis from checked bundles and a template; CeremonyError names the bad input.
    Validators are ordered by name, so the same bundles make the same chain anywhere."""
    for i, b in enumerate(bundles):
        check_bundle(b, f"bundles[{i}] ({b.name})")
    _check_distinct(bundles)
    validators = sorted((b for b in bundles if b.kind == VALIDATOR), key=lambda b: b.name)
    if not validators:
        raise CeremonyError("no validator bundle: a chain needs at least one validator")
    try:
        Quorum(len(validators), q)
    except ValueError as e:
        raise CeremonyError(f"--q {q}: {e}") from e
    doc = dict(template)
    for key in ("validators", "quorum"):
        if key in doc:
            raise CeremonyError(f"template.{key}: comes from the bundles and --q; remove it")
    keys = {b.name: b.public_key for b in bundles if b.kind == PARTICIPANT}
    doc["participants"] = _participants(doc, keys)
    doc["validators"] = [
        {"id": b.name, "public_key": b.public_key.hex(), "tls_cert_sha256": b.tls_pin.hex()}
        for b in validators
    ]
    doc["quorum"] = q
    try:
        genesis = parse_genesis(doc)
    except GenesisError as e:
        raise CeremonyError(f"genesis from the template: {e}") from e
    addresses = tuple(
        Address(b.name, b.host, b.peer_port, b.client_port, b.tls_name) for b in validators
    )
    assembly = Assembly(genesis, addresses, tuple(b.tls_cert for b in validators))
    _check_files(assembly)  # as every verify will: the template's participant keys too
    return assembly


def _addresses_json(a: Assembly) -> dict[str, Any]:
    return {
        "chain_id": a.genesis.chain_id,
        "validators": [dataclasses.asdict(x) for x in a.addresses],
    }


def write_assembly(out: str | Path, a: Assembly) -> list[Path]:
    """Write genesis.json, validators.pem and addresses.json into ``out`` (public files);
    refuses to overwrite any of them."""
    out = Path(out)
    files = [out / GENESIS_FILE, out / PINNED_CERTS_FILE, out / ADDRESSES_FILE]
    for f in files:
        if f.exists() or f.is_symlink():
            raise CeremonyError(f"{f} exists; assemble into an empty directory")
    out.mkdir(parents=True, exist_ok=True)
    dump_genesis(a.genesis, files[0])
    files[1].write_bytes(b"".join(a.certificates))
    files[2].write_text(json.dumps(_addresses_json(a), indent=2) + "\n", encoding="utf-8")
    return files


# --- verify ------------------------------------------------------------------------------


_ADDRESS_TYPES = (str, str, int, int, str)  # Address's fields, in order


def _read_addresses(path: Path, g: Genesis) -> tuple[Address, ...]:
    try:
        doc = json.loads(read_regular_text(path))
        if doc["chain_id"] != g.chain_id:
            raise CeremonyError(f"{path}: for chain {doc['chain_id']}, not this genesis")
        items = [Address(**x) for x in doc["validators"]]
    except CeremonyError:
        raise
    except (OSError, ValueError, KeyError, TypeError, RecursionError) as e:
        raise CeremonyError(f"{path}: not an addresses file of this ceremony ({e})") from e
    if [x.id for x in items] != [v.id for v in g.validators]:
        raise CeremonyError(f"{path}: does not list genesis's validators, in order")
    for x in items:  # verify compares with ==, and 7000.0 == 7000
        if tuple(map(type, dataclasses.astuple(x))) != _ADDRESS_TYPES:
            raise CeremonyError(f"{path}: {x.id!r}: hosts and names are strings, ports integers")
    return tuple(items)


def load_assembly(genesis_path: str | Path) -> Assembly:
    """genesis.json and, beside it, addresses.json and validators.pem, each checked
    against genesis (every certificate pinned, every validator addressed)."""
    genesis_path = Path(genesis_path)
    try:
        g = load_genesis(genesis_path)
        bundle = read_regular(genesis_path.parent / PINNED_CERTS_FILE)
    except (GenesisError, OSError) as e:
        raise CeremonyError(f"{genesis_path}: {e}") from e
    addresses = _read_addresses(genesis_path.parent / ADDRESSES_FILE, g)
    try:
        certs = pinned_certificates(bundle, [v.tls_cert_sha256 for v in g.validators])
    except ValueError as e:
        raise CeremonyError(f"{PINNED_CERTS_FILE}: {e}") from e
    if len(certs) != len(g.validators):
        raise CeremonyError(f"{PINNED_CERTS_FILE}: lacks a validator's pinned certificate")
    a = Assembly(g, addresses, tuple(certs[i] for i in range(len(g.validators))))
    try:
        _check_files(a)
    except CeremonyError as e:
        raise CeremonyError(
            f"{genesis_path.parent}: {e}: assemble refuses this; do not start"
        ) from e
    return a


def _check_files(a: Assembly) -> None:
    """What assemble checks of the bundles, checked again of the public files: every
    operator's verify runs this, since assemble's checks protect nobody from a coordinator
    that skips them. (The self-signatures are not in the files; each checks its own.)"""
    g = a.genesis
    validators = [
        Bundle(VALIDATOR, v.id, v.public_key, tls_cert=cert, host=x.host, peer_port=x.peer_port,
               client_port=x.client_port)
        for v, x, cert in zip(g.validators, a.addresses, a.certificates, strict=True)
    ]  # fmt: skip
    # In name order, as assemble orders them: the same bundles give the same chain id.
    for before, after in zip(g.validators, g.validators[1:], strict=False):
        if before.id > after.id:
            raise CeremonyError(f"validator {after.id!r} after {before.id!r}: not in name order")
    for b, x in zip(validators, a.addresses, strict=True):
        _check_validator_fields(b, f"validator {b.name!r}")
        if x.tls_name != b.tls_name:
            raise CeremonyError(
                f"validator {b.name!r}: TLS name {x.tls_name!r}, not {b.tls_name!r}"
            )
    _check_distinct(
        [*validators, *(Bundle(PARTICIPANT, p.id, p.public_key) for p in g.participants)]
    )


def _mismatch(what: str, name: str) -> CeremonyError:
    return CeremonyError(
        f"{what} of {name!r} in genesis is not the one in your bundle: do not start this "
        "chain; tell the coordinator and the other operators"
    )


def verify(
    a: Assembly,
    mine: Bundle,
    expect_fingerprint: str | None = None,
    *,
    expect_validators: int | None = None,
    expect_q: int | None = None,
) -> list[str]:
    """Check ``mine`` is in ``a`` as it was handed over; lines to print: chain id,
    fingerprint, quorum. CeremonyError when it is not, or the fingerprint, the number of
    validators or the quorum is not the one agreed."""
    g = a.genesis
    _check_agreed(g, expect_validators, expect_q)
    if mine.kind == VALIDATOR:
        index = next((i for i, v in enumerate(g.validators) if v.id == mine.name), None)
        if index is None:
            raise CeremonyError(f"validator {mine.name!r} is not in genesis")
        v, addr = g.validators[index], a.addresses[index]
        if v.public_key != mine.public_key:
            raise _mismatch("the validator key", mine.name)
        if v.tls_cert_sha256 != mine.tls_pin:
            raise _mismatch("the TLS certificate", mine.name)
        want = (mine.host, mine.peer_port, mine.client_port, mine.tls_name)
        if (addr.host, addr.peer_port, addr.client_port, addr.tls_name) != want:
            raise _mismatch("the address", mine.name)
    else:
        p = g.participant_by_id.get(mine.name)
        if p is None or p.public_key != mine.public_key:
            raise _mismatch("the participant key", mine.name)
    if expect_fingerprint is not None and _norm(expect_fingerprint) != _norm(a.fingerprint):
        raise CeremonyError(
            f"fingerprint {a.fingerprint} is not the {expect_fingerprint} you were told: "
            "the operators hold different genesis or addresses files"
        )
    quorum = Quorum(len(g.validators), g.quorum)
    return [
        f"ok          {mine.kind} {mine.name} is in genesis as its bundle has it",
        f"chain id    {g.chain_id}",
        f"fingerprint {a.fingerprint}",
        f"quorum      {quorum.describe()}",
        f"network     {len(g.validators)} validators, {len(g.participants)} participants",
    ]


def _check_agreed(g: Genesis, validators: int | None, q: int | None) -> None:
    """The number of validators and the quorum the operators agreed on. Each operator's
    verify proves only its own entry and the fingerprint only that all hold the same
    files: a coordinator adding validators of its own (and a quorum to suit them) passes
    both. When every operator's verify passes and the number of validators is the number
    of operators, no validator is anyone else's."""
    n = len(g.validators)
    if validators is not None and n != validators:
        raise CeremonyError(
            f"genesis has {n} validators, not the {validators} agreed: a validator was "
            "added or left out; do not start this chain"
        )
    if q is not None and g.quorum != q:
        raise CeremonyError(f"genesis has quorum {g.quorum}, not the {q} agreed")


def _norm(fp: str) -> str:
    return "".join(fp.split()).lower()


# --- node config -------------------------------------------------------------------------


def parse_overrides(lines: Iterable[str], where: str) -> dict[str, str]:
    """``NAME HOST:PORT`` lines (a hosts file; '#' starts a comment) or ``NAME=HOST:PORT``
    flags: where this node dials a peer when its bundle's address is not reachable from
    here (a private network, NAT)."""
    out: dict[str, str] = {}
    for n, raw in enumerate(lines, 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        parts = line.replace("=", " ", 1).split()
        if len(parts) != 2 or parts[0] in out:
            raise CeremonyError(f"{where} line {n}: expected one 'NAME HOST:PORT' per name")
        try:
            PeerAddress(0, parts[1], parts[0])
        except ValueError as e:
            raise CeremonyError(f"{where} line {n}: {e}") from e
        out[parts[0]] = parts[1]
    return out


@dataclass(frozen=True, slots=True)
class ConfigPaths:
    """Where the node finds its files; relative paths are from the config's directory."""

    genesis: Path
    tls_pinned: Path
    node_dir: Path  # validator.key, tls.key, tls.pem
    data_dir: Path


def node_config(
    a: Assembly,
    name: str,
    paths: ConfigPaths,
    *,
    listen_host: str,
    metrics_port: int,
    overrides: Mapping[str, str] = {},
) -> NodeConfig:
    """Validator ``name``'s node config: its ports from its address, every peer's
    address (or its override) and TLS name."""
    ids = [v.id for v in a.genesis.validators]
    if name not in ids:
        raise CeremonyError(f"validator {name!r} is not in genesis")
    unknown = sorted(set(overrides) - set(ids))
    if unknown:
        raise CeremonyError(f"override for {unknown[0]!r}: no such validator in genesis")
    me = ids.index(name)
    peers = tuple(
        PeerAddress(i, overrides.get(x.id, x.peer_address), x.tls_name)
        for i, x in enumerate(a.addresses)
        if i != me
    )
    try:
        return NodeConfig(
            validator=me,
            genesis=paths.genesis,
            data_dir=paths.data_dir,
            signing_key=paths.node_dir / VALIDATOR_KEY_FILE,
            tls_pinned=paths.tls_pinned,
            tls_cert=paths.node_dir / TLS_CERT_FILE,
            tls_key=paths.node_dir / TLS_KEY_FILE,
            listen_host=listen_host,
            peer_port=a.addresses[me].peer_port,
            client_port=a.addresses[me].client_port,
            metrics_port=metrics_port,
            peers=peers,
        )
    except ValueError as e:
        raise CeremonyError(f"node config of {name!r}: {e}") from e


def check_private_dir(a: Assembly, name: str, node_dir: Path) -> None:
    """The keys in ``node_dir`` are the ones genesis lists for ``name``: a config made
    for the wrong directory would only fail when the node starts."""
    v = next((v for v in a.genesis.validators if v.id == name), None)
    if v is None:
        raise CeremonyError(f"validator {name!r} is not in genesis")
    try:
        key = load_signing_key(node_dir / VALIDATOR_KEY_FILE)
        pin = cert_pin(x509.load_pem_x509_certificate(read_regular(node_dir / TLS_CERT_FILE)))
    except (KeyFileError, OSError, ValueError) as e:
        raise CeremonyError(f"{node_dir}: {e}") from e
    if key.public_key != v.public_key or pin != v.tls_cert_sha256:
        raise CeremonyError(f"{node_dir}: holds other keys than genesis lists for {name!r}")
