"""The genesis ceremony against one hostile participant (node/ceremony.py, ADR 0019): a
validator operator whose bundle is validly self-signed, by its own key, and lies in every
field it can. What `genesis assemble` accepts, every honest operator's `verify` passes
(each checks only its own entry), so assemble is the one place to refuse it. Every
refusal has its control: the same bundle made honestly passes."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from client._async import Endpoint, pinned_credentials
from node import ceremony, crypto
from node.__main__ import main as node_main
from node.ceremony import VALIDATOR, Bundle, CeremonyError
from node.genesis import demo_genesis
from node.keyfiles import pem_cert

# (name, host): one validator reached at an IP (its TLS name is its name), one at a DNS name.
HONEST = (("val00", "127.0.0.1"), ("val01", "val01.example"), ("val02", "127.0.0.2"))


def _template() -> dict[str, Any]:
    g = demo_genesis(4, 3, banks=2).genesis
    doc = ceremony.template_from_genesis(g, name="hostile-chain")
    for p, item in zip(g.participants, doc["participants"], strict=True):
        item["public_key"] = p.public_key.hex()
    return doc


@pytest.fixture(scope="module")
def honest(tmp_path_factory: pytest.TempPathFactory) -> list[Bundle]:
    root = tmp_path_factory.mktemp("honest")
    return [
        ceremony.keygen_validator(root / n, n, h, 7000 + i, 8000 + i)
        for i, (n, h) in enumerate(HONEST)
    ]


def _cert(names: list[str]) -> bytes:
    """A certificate of the hostile operator's own TLS key, as keygen makes it, but for
    whatever names it likes."""
    return pem_cert(ceremony._self_signed(ec.generate_private_key(ec.SECP256R1()), names, _now()))


def _now() -> datetime:
    return datetime.now(UTC)


def _hostile(
    cert: bytes, *, name: str = "val09", host: str = "127.0.0.9", port: int = 7009
) -> Bundle:
    """A bundle its operator signed with its own fresh key: the signature proves nothing
    about what the fields say."""
    key = crypto.SigningKey.generate()
    b = Bundle(
        VALIDATOR, name, key.public_key, tls_cert=cert, host=host, peer_port=port,
        client_port=port + 1000,
    )  # fmt: skip
    return b.signed(key)


def _assemble(bundles: list[Bundle]) -> ceremony.Assembly:
    return ceremony.assemble(bundles, _template(), len(bundles) // 2 + 1)


def _verified_files(tmp_path: Path, honest: list[Bundle]) -> list[str]:
    """The public files of an honest ceremony in ``tmp_path`` and the first validator's
    bundle; the ``genesis verify`` command line, checked to pass (the control)."""
    ceremony.write_assembly(tmp_path, _assemble(honest))
    mine = tmp_path / "val00.bundle.json"
    ceremony.write_bundle(mine, honest[0])
    argv = ["genesis", "verify", str(tmp_path / "genesis.json"), "--bundle", str(mine)]
    assert node_main(argv) == 0  # control
    return argv


# --- a certificate that names another validator -------------------------------------------


def test_the_sdk_trusts_one_pinned_certificate_per_name(honest: list[Bundle]) -> None:
    """Why a certificate must name its own validator only: the SDK picks, for each
    endpoint, the one pinned certificate carrying the endpoint's TLS name, and refuses an
    endpoint two carry (client/_async.py ``pinned_credentials``)."""
    a = _assemble([*honest, _hostile(_cert(["val09"]))])
    endpoints = [Endpoint(x.client_address, x.tls_name) for x in a.addresses]
    creds, validators = pinned_credentials(endpoints, b"".join(a.certificates), a.genesis)
    assert len(creds) == 4
    # and each endpoint's validator, whose genesis id its calls are signed for (ADR 0015)
    assert validators == [v.id for v in a.genesis.validators]


@pytest.mark.parametrize(
    "claimed",
    [
        "val00",  # another validator's name (and TLS name: its host is an IP)
        "val01.example",  # another validator's TLS name (its host)
        "VAL01.Example",  # the same, as TLS compares names: ignoring case
        "val01",  # another validator's name, where its TLS name is its host
    ],
)
def test_a_certificate_naming_another_validator_is_refused(
    honest: list[Bundle], claimed: str
) -> None:
    """One hostile bundle whose certificate also carries another validator's name made
    every bank's SDK refuse to connect to that validator (two pinned certificates carry
    its name), and every operator's verify passed."""
    _assemble([*honest, _hostile(_cert(["val09", "localhost"]))])  # control: shared extras pass
    with pytest.raises(CeremonyError, match="certificate of 'val09' carries the name"):
        _assemble([*honest, _hostile(_cert(["val09", claimed]))])


# --- a certificate field that is more than one certificate -------------------------------


@pytest.mark.parametrize(
    "extra",
    [
        pytest.param(lambda: _cert(["val77"]), id="a-second-certificate"),
        pytest.param(lambda: b"not a certificate\n", id="trailing-text"),
    ],
)
def test_a_certificate_field_is_one_certificate_in_its_canonical_pem(
    honest: list[Bundle], extra: Any, tmp_path: Path
) -> None:
    """validators.pem is the bundles' certificate fields joined: a field carrying a second
    certificate put an unpinned one there, so assemble succeeded and then every operator's
    verify and config, and every node's start, refused the files."""
    cert = _cert(["val09"])
    a = _assemble([*honest, _hostile(cert)])  # control
    ceremony.write_assembly(tmp_path / "ok", a)
    ceremony.load_assembly(tmp_path / "ok" / "genesis.json")
    with pytest.raises(CeremonyError, match="tls_cert: not one PEM certificate"):
        _assemble([*honest, _hostile(cert + extra())])


# --- a certificate that can sign certificates --------------------------------------------


def _issuer_cert(*, ca: bool, key_usage: x509.KeyUsage | None) -> bytes:
    """A self-signed certificate for val09 with the given CA flag and key usage."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "val09")])
    builder = (
        x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
        .public_key(key.public_key()).serial_number(1)
        .not_valid_before(_now()).not_valid_after(_now() + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("val09")]), critical=False)
    )  # fmt: skip
    if key_usage is not None:
        builder = builder.add_extension(key_usage, critical=True)
    return pem_cert(builder.sign(key, hashes.SHA256()))


def _usage(*, cert_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True, content_commitment=False, key_encipherment=False,
        data_encipherment=False, key_agreement=False, key_cert_sign=cert_sign, crl_sign=False,
        encipher_only=False, decipher_only=False,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("ca", "key_usage"),
    [
        pytest.param(True, lambda: _usage(cert_sign=True), id="a-ca"),
        pytest.param(False, lambda: None, id="no-key-usage"),
        pytest.param(False, lambda: _usage(cert_sign=True), id="key-cert-sign"),
    ],
)
def test_a_certificate_that_can_sign_certificates_is_refused(
    honest: list[Bundle], ca: bool, key_usage: Any
) -> None:
    """validators.pem is every node's set of client roots on its peer port: a pinned
    certificate that can issue (a CA, or, to gRPC's BoringSSL, any without a key usage
    that forbids it) let its validator mint any number of client certificates that pass
    TLS on every honest peer port (checked with real gRPC: three minted leaves, three
    handshakes accepted), each one remembered by the acceptor's certificate cache."""
    _assemble([*honest, _hostile(_issuer_cert(ca=False, key_usage=_usage(cert_sign=False)))])
    with pytest.raises(CeremonyError, match="tls_cert: can sign certificates"):
        _assemble([*honest, _hostile(_issuer_cert(ca=ca, key_usage=key_usage()))])


# --- a hostile file gets one line and exit code 2 ----------------------------------------


def _duplicate_san_cert() -> bytes:
    """A certificate with two subjectAltName extensions (the second made from an
    issuerAltName by one changed byte of its OID: nobody checks its signature)."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "val09")])
    names = [x509.DNSName("val09")]
    cert = (
        x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
        .public_key(key.public_key()).serial_number(1)
        .not_valid_before(_now()).not_valid_after(_now() + timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.IssuerAlternativeName(names), critical=False)
        .sign(key, hashes.SHA256())
    )  # fmt: skip
    der = cert.public_bytes(serialization.Encoding.DER)
    der = der.replace(bytes.fromhex("0603551d12"), bytes.fromhex("0603551d11"))  # 2.5.29.17
    body = base64.encodebytes(der)
    return b"-----BEGIN CERTIFICATE-----\n" + body + b"-----END CERTIFICATE-----\n"


def _huge_port(doc: dict[str, Any]) -> str:
    return json.dumps(doc).replace('"peer_port": 7009', '"peer_port": ' + "9" * 5000)


@pytest.mark.parametrize(
    "text",
    [
        pytest.param(lambda: json.dumps(_hostile(_duplicate_san_cert()).to_json()), id="dup-san"),
        pytest.param(lambda: _huge_port(_hostile(_cert(["val09"])).to_json()), id="huge-int"),
    ],
)
def test_a_hostile_bundle_is_one_line_and_exit_2_not_a_traceback(
    honest: list[Bundle], tmp_path: Path, capsys: pytest.CaptureFixture[str], text: Any
) -> None:
    """A certificate with a duplicated extension (cryptography's DuplicateExtension is no
    ValueError) or an integer of 5,000 digits (Python's int-size ValueError is no
    JSONDecodeError) ended assemble with a traceback, naming no file."""
    bundles = tmp_path / "bundles"
    bundles.mkdir()
    for b in honest:
        ceremony.write_bundle(bundles / f"{b.name}.bundle.json", b)
    template = tmp_path / "template.json"
    template.write_text(json.dumps(_template()))
    argv = ["genesis", "assemble", "--bundles", str(bundles), "--template", str(template)]
    argv += ["--q", "3", "--out"]
    assert node_main([*argv, str(tmp_path / "control")]) == 0  # control
    (bundles / "val09.bundle.json").write_text(text())
    capsys.readouterr()
    assert node_main([*argv, str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "val09.bundle.json" in err, err
    assert not (tmp_path / "out").exists()


def test_a_genesis_with_a_huge_integer_is_one_line_and_exit_2(
    honest: list[Bundle], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Files swapped on their way: a genesis.json with a 5,000-digit integer ended verify
    with a traceback."""
    argv = _verified_files(tmp_path, honest)
    g = tmp_path / "genesis.json"
    doc = g.read_text()
    g.write_text(doc.replace('"genesis_time_ms": ', '"genesis_time_ms": ' + "9" * 5000, 1))
    capsys.readouterr()
    assert node_main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "genesis.json" in err, err


# --- a host that is no host, or another's in another spelling ----------------------------


@pytest.mark.parametrize(
    "host",
    [
        "fe80::1%eth0",  # a zone: an interface of the bundle's own machine, no one else's
        "fe80::1%x\n\x1b[31m",  # a zone is any text but '%': newlines, escapes
        "0::0",  # the unspecified address ('::', which is refused) in another spelling
    ],
)
def test_a_host_that_no_peer_can_dial_is_refused(honest: list[Bundle], host: str) -> None:
    _assemble([*honest, _hostile(_cert(["val09"]), host="2001:db8::9")])  # control
    with pytest.raises(CeremonyError, match="host"):
        _assemble([*honest, _hostile(_cert(["val09"]), host=host)])


def test_another_validators_address_in_another_spelling_is_refused(honest: list[Bundle]) -> None:
    """The same address and port as an honest validator, spelled differently: the check
    compared strings."""
    first = _hostile(_cert(["val08"]), name="val08", host="::1", port=7008)
    _assemble([*honest, first, _hostile(_cert(["val09"]), host="::1")])  # control: other port
    for spelling in ("0:0:0:0:0:0:0:1", "0::1"):
        twin = _hostile(_cert(["val09"]), host=spelling, port=7008)
        with pytest.raises(CeremonyError, match=r"same address \(host and port\)"):
            _assemble([*honest, first, twin])


# --- addresses.json swapped on its way ----------------------------------------------------


@pytest.mark.parametrize(
    "edit",
    [
        (0, "peer_port", 7000.0),  # equal to 7000 in Python: val00's own verify said ok
        (1, "host", 5),  # config of val00 then ended in a TypeError traceback
        (1, "client_port", True),
    ],
)
def test_an_addresses_file_of_the_wrong_types_is_one_line_and_exit_2(
    honest: list[Bundle], tmp_path: Path, capsys: pytest.CaptureFixture[str], edit: Any
) -> None:
    """Each operator's verify checks its own entry, by ==; a coordinator, or whoever
    carries the files, wrote 7000.0 for its port: verify passed, and config wrote a node
    config the node refuses to start with. A host of 5 for another validator ended every
    other operator's config in a traceback."""
    verify = _verified_files(tmp_path, honest)
    path = tmp_path / "addresses.json"
    doc = json.loads(path.read_text())
    entry, field, value = edit
    doc["validators"][entry][field] = value
    path.write_text(json.dumps(doc))
    capsys.readouterr()
    assert node_main(verify) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "addresses.json" in err, err


# --- a coordinator that does not run assemble's checks ------------------------------------


def _unchecked_files(
    honest: list[Bundle], out: Path, monkeypatch: pytest.MonkeyPatch, cert: bytes
) -> Path:
    """The files a hostile coordinator writes: honest bundles, each operator's entry as
    it handed it over, plus a validator of its own that assemble would refuse."""
    with monkeypatch.context() as m:
        m.setattr(ceremony, "_check_validator_fields", lambda b, where: None)
        m.setattr(ceremony, "_check_own_names", lambda validators: None)
        ceremony.write_assembly(out, _assemble([*honest, _hostile(cert)]))
    return out / "genesis.json"


@pytest.mark.parametrize(
    ("cert", "message"),
    [
        pytest.param(lambda: _cert(["val09", "val01.example"]), "carries the name", id="names"),
        pytest.param(lambda: _issuer_cert(ca=False, key_usage=None), "can sign", id="issuer"),
        pytest.param(lambda: _cert(["val10"]), "must include", id="not-its-names"),
    ],
)
def test_verify_refuses_files_that_assemble_would_have_refused(
    honest: list[Bundle], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cert: Any, message: str
) -> None:
    """assemble's checks protect against a hostile bundle only while the coordinator runs
    them. A coordinator that does not, or whoever swaps the files, added a validator
    whose certificate names the others (or can issue certificates): every operator's
    verify passed, since each checks its own entry."""
    control = _unchecked_files(honest, tmp_path / "ok", monkeypatch, _cert(["val09"]))
    ceremony.verify(ceremony.load_assembly(control), honest[0])
    genesis = _unchecked_files(honest, tmp_path / "bad", monkeypatch, cert())
    with pytest.raises(CeremonyError, match=message):
        ceremony.verify(ceremony.load_assembly(genesis), honest[0])


@pytest.mark.parametrize("owner", ["validator", "participant"])
def test_a_template_key_that_is_a_bundles_key_is_refused(
    honest: list[Bundle], tmp_path: Path, owner: str
) -> None:
    """ADR 0019: no two keys alike across validators and participants. A key the
    template gives BANK02 was compared with no bundle's: BANK01's key (or a validator's)
    could sign as BANK02 too, and BANK01's verify said ok."""
    bank = ceremony.keygen_participant(tmp_path, "BANK01")
    template = _template()
    ceremony.assemble([*honest, bank], _drop_key(template, "BANK01"), 2)  # control
    key = bank.public_key if owner == "participant" else honest[0].public_key
    for p in template["participants"]:
        if p["id"] == "BANK02":
            p["public_key"] = key.hex()
    with pytest.raises(CeremonyError, match="same public key"):
        ceremony.assemble([*honest, bank], template, 2)


def _drop_key(template: dict[str, Any], pid: str) -> dict[str, Any]:
    for p in template["participants"]:
        if p["id"] == pid:
            del p["public_key"]
    return template


def test_verify_refuses_a_tls_name_that_is_not_its_validators(
    honest: list[Bundle], tmp_path: Path
) -> None:
    """addresses.json says, for each validator, the TLS name peers and clients check its
    certificate for; it follows from the host (ADR 0019). val00's verify passed with
    val02's entry naming val00 (every peer's config then dials val02 expecting val00)."""
    ceremony.write_assembly(tmp_path, _assemble(honest))
    ceremony.verify(ceremony.load_assembly(tmp_path / "genesis.json"), honest[0])  # control
    path = tmp_path / "addresses.json"
    doc = json.loads(path.read_text())
    doc["validators"][2]["tls_name"] = "val00"
    path.write_text(json.dumps(doc))
    with pytest.raises(CeremonyError, match="TLS name 'val00', not 'val02'"):
        ceremony.verify(ceremony.load_assembly(tmp_path / "genesis.json"), honest[0])


def test_a_bundle_with_a_field_twice_is_refused(honest: list[Bundle], tmp_path: Path) -> None:
    """A bundle that shows a reader one host and the parser another: JSON lets a key
    repeat and Python keeps the last. The signature is over the last, so only a person
    reading the file is misled; the file is still no bundle keygen wrote."""
    b = _hostile(_cert(["val09"]))
    path = tmp_path / "val09.bundle.json"
    path.write_text(json.dumps(b.to_json()))
    ceremony.read_bundle(path)  # control
    text = json.dumps(b.to_json()).replace('"host": ', '"host": "val00.example", "host": ', 1)
    path.write_text(text)
    with pytest.raises(CeremonyError, match="twice"):
        ceremony.read_bundle(path)
