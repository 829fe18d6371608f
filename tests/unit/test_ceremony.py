"""The genesis ceremony (node/ceremony.py, ADR 0019): keygen, bundles, assemble, verify,
node configs, and the `ledger-node` commands. Every refusal has its control: the same
input, unaltered, passes."""

from __future__ import annotations

import json
import stat
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from node import ceremony, crypto
from node.__main__ import main as node_main
from node.ceremony import Bundle, CeremonyError
from node.genesis import demo_genesis, load_genesis
from node.keyfiles import load_signing_key
from node.netconfig import load_node_config

NAMES = ("val00", "val01", "val02", "val03")


def _template() -> dict[str, Any]:
    """The demo's participants with their keys, except BANK01's, which a bundle brings."""
    g = demo_genesis(4, 3, banks=2).genesis
    doc = ceremony.template_from_genesis(g, name="test-chain")
    for p, item in zip(g.participants, doc["participants"], strict=True):
        if p.id != "BANK01":
            item["public_key"] = p.public_key.hex()
    return doc


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Four operators' private directories and a bank's, as keygen leaves them."""
    root = tmp_path_factory.mktemp("ceremony")
    for i, name in enumerate(NAMES):
        ceremony.keygen_validator(root / name, name, "127.0.0.1", 7000 + i, 8000 + i)
    ceremony.keygen_participant(root / "bank01", "BANK01")
    return root


def _bundle_paths(keys: Path) -> list[Path]:
    return [keys / n / f"{n}.bundle.json" for n in NAMES] + [keys / "bank01/BANK01.bundle.json"]


@pytest.fixture(scope="module")
def bundles(keys: Path) -> list[Bundle]:
    return [ceremony.read_bundle(p) for p in _bundle_paths(keys)]


@pytest.fixture(scope="module")
def assembled(bundles: list[Bundle], tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("public")
    ceremony.write_assembly(out, ceremony.assemble(bundles, _template(), 3))
    return out / "genesis.json"


def _mode(p: Path) -> int:
    return stat.S_IMODE(p.stat().st_mode)


# --- keygen and bundles ------------------------------------------------------------------


def test_keygen_keeps_private_keys_0600_and_the_bundle_carries_only_public_parts(
    keys: Path, bundles: list[Bundle]
) -> None:
    d = keys / "val01"
    assert _mode(d) == 0o700
    assert _mode(d / "validator.key") == _mode(d / "tls.key") == 0o600
    b = bundles[1]
    assert load_signing_key(d / "validator.key").public_key == b.public_key
    assert b.tls_cert == (d / "tls.pem").read_bytes()
    text = (d / "val01.bundle.json").read_text()
    assert "PRIVATE" not in text
    assert (b.host, b.peer_port, b.client_port, b.tls_name) == ("127.0.0.1", 7001, 8001, "val01")
    assert _mode(keys / "bank01" / "BANK01.key") == 0o600


def test_keygen_never_overwrites_and_refuses_a_bad_name_writing_nothing(
    keys: Path, tmp_path: Path
) -> None:
    with pytest.raises(CeremonyError, match="never overwrites"):
        ceremony.keygen_validator(keys / "val00", "val00", "127.0.0.1", 7000, 8000)
    with pytest.raises(CeremonyError, match="DNS label"):
        ceremony.keygen_validator(tmp_path / "x", "Val_00", "127.0.0.1", 7000, 8000)
    with pytest.raises(CeremonyError, match="host"):
        ceremony.keygen_validator(tmp_path / "x", "val09", "0.0.0.0", 7000, 8000)
    assert not (tmp_path / "x").exists()


def _doc(keys: Path, name: str = "val02") -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((keys / name / f"{name}.bundle.json").read_text())
    return doc


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("host", "10.9.9.9"),  # traffic for this validator sent elsewhere
        ("peer_port", 7999),
        ("client_port", 8999),
        ("name", "val09"),
        # A fixed id: the key is drawn at import, and xdist's workers must collect one name.
        pytest.param("public_key", crypto.SigningKey.generate().public_key.hex(), id="public_key"),
    ],
)
def test_a_tampered_bundle_is_refused(keys: Path, field: str, value: object) -> None:
    doc = _doc(keys)
    ceremony.check_bundle(ceremony.parse_bundle(doc))  # control: as keygen wrote it
    doc[field] = value
    with pytest.raises(CeremonyError, match="signature"):
        ceremony.check_bundle(ceremony.parse_bundle(doc))


def test_a_certificate_without_the_validators_names_is_refused(
    keys: Path, bundles: list[Bundle]
) -> None:
    # Signed by val02's own key, so only the names can refuse it: val03's certificate
    # proves neither the name val02 nor its TLS name.
    key = load_signing_key(keys / "val02" / "validator.key")
    odd = replace(bundles[2], tls_cert=bundles[3].tls_cert).signed(key)
    with pytest.raises(CeremonyError, match="must include the validator's name 'val02'"):
        ceremony.check_bundle(odd)
    ceremony.check_bundle(replace(odd, tls_cert=bundles[2].tls_cert).signed(key))  # control


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d.pop("host"), r"missing fields \['host'\]"),
        (lambda d: d.update(colour="blue"), r"unknown fields \['colour'\]"),
        (lambda d: d.update(peer_port="7002"), "peer_port: expected int"),
        (lambda d: d.update(peer_port=True), "peer_port: expected int"),
        (lambda d: d.update(kind="observer"), "kind: must be"),
        (lambda d: d.update(bundle=2), "format 2"),
        (lambda d: d.update(signature="zz"), "signature: not hex"),
    ],
)
def test_a_malformed_bundle_names_its_field(keys: Path, edit: Any, message: str) -> None:
    doc = _doc(keys)
    edit(doc)
    with pytest.raises(CeremonyError, match=message):
        ceremony.parse_bundle(doc)


def test_read_bundle_refuses_an_oversized_file_before_parsing(tmp_path: Path) -> None:
    big = tmp_path / "big.bundle.json"
    big.write_text(" " * (64 * 1024 + 1))
    with pytest.raises(CeremonyError, match="no bundle is"):
        ceremony.read_bundle(big)


# --- assemble ----------------------------------------------------------------------------


def test_assemble_orders_validators_by_name_whatever_the_bundle_order(
    bundles: list[Bundle], assembled: Path
) -> None:
    a = ceremony.assemble(list(reversed(bundles)), _template(), 3)
    g = load_genesis(assembled)
    assert a.genesis.chain_id == g.chain_id
    assert [v.id for v in g.validators] == list(NAMES)
    assert [v.tls_cert_sha256 for v in g.validators] == [b.tls_pin for b in bundles[:4]]
    assert g.participant_by_id["BANK01"].public_key == bundles[4].public_key
    assert g.quorum == 3


def _refused(bundles: list[Bundle], message: str, q: int = 3, template: Any = None) -> None:
    with pytest.raises(CeremonyError, match=message):
        ceremony.assemble(bundles, template if template is not None else _template(), q)


def test_assemble_refuses_duplicates(bundles: list[Bundle], keys: Path) -> None:
    ceremony.assemble(bundles, _template(), 3)  # control
    _refused([*bundles, bundles[1]], "same name")
    # A bank that registers a validator's key as its own (signed by it: it holds it).
    stolen = replace(bundles[4], public_key=bundles[2].public_key)
    stolen = stolen.signed(load_signing_key(keys / "val02" / "validator.key"))
    _refused([*bundles[:4], stolen], "same public key")
    # Another validator at val01's host and peer port (its own keys, validly signed).
    twin = ceremony.keygen_validator(keys / "twin", "val09", "127.0.0.1", 7001, 8009)
    _refused([*bundles, twin], r"same address \(host and port\)")


def test_assemble_refuses_an_unsound_quorum(bundles: list[Bundle]) -> None:
    for q in (0, 2, 5):  # 2 of 4 is no majority; 5 of 4 can never be reached
        _refused(bundles, f"--q {q}", q=q)


def test_assemble_refuses_a_bundle_altered_after_reading(bundles: list[Bundle]) -> None:
    moved = replace(bundles[0], host="10.0.0.9")
    _refused([moved, *bundles[1:]], "signature")


def test_assemble_refuses_template_inconsistencies(bundles: list[Bundle]) -> None:
    t = _template()
    t["validators"] = []
    _refused(bundles, "template.validators", template=t)
    _refused(bundles[:4], "'BANK01': no bundle and no key")
    t = _template()
    t["participants"] = [p for p in t["participants"] if p["id"] != "BANK01"]
    _refused(bundles, "'BANK01': the template has no such participant", template=t)
    _refused(bundles[4:], "no validator bundle")


def test_the_cli_writes_nothing_on_bad_input(
    keys: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    template = tmp_path / "template.json"
    template.write_text(json.dumps(_template()))
    out = tmp_path / "out"
    argv = ["genesis", "assemble", "--template", str(template), "--out", str(out), "--bundles"]
    paths = [str(p) for p in _bundle_paths(keys)]
    assert node_main([*argv, *paths, "--q", "5"]) == 2
    assert "--q 5" in capsys.readouterr().err
    assert not out.exists()
    assert node_main([*argv, *paths, "--q", "3"]) == 0  # control
    assert sorted(p.name for p in out.iterdir()) == [
        "addresses.json",
        "genesis.json",
        "validators.pem",
    ]


# --- verify ------------------------------------------------------------------------------


def test_verify_prints_the_chain_id_and_fingerprint(
    assembled: Path, keys: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a = ceremony.load_assembly(assembled)
    mine = str(keys / "val02" / "val02.bundle.json")
    assert node_main(["genesis", "verify", str(assembled), "--bundle", mine]) == 0
    out = capsys.readouterr().out
    assert f"chain id    {a.genesis.chain_id}" in out
    assert f"fingerprint {a.fingerprint}" in out
    assert "3 of 4: safe with up to 1 Byzantine" in out
    bank = str(keys / "bank01" / "BANK01.bundle.json")
    fp = a.fingerprint.replace(" ", "").upper()  # read aloud: spacing and case do not matter
    assert (
        node_main(["genesis", "verify", str(assembled), "--bundle", bank, "--fingerprint", fp]) == 0
    )


def test_verify_refuses_a_wrong_fingerprint(
    assembled: Path, keys: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    mine = str(keys / "val02" / "val02.bundle.json")
    wrong = "0000 " * 8
    argv = ["genesis", "verify", str(assembled), "--bundle", mine, "--fingerprint", wrong]
    assert node_main(argv) == 1
    assert "MISMATCH" in capsys.readouterr().err


def test_verify_catches_a_coordinator_that_swapped_a_bundle(
    bundles: list[Bundle], keys: Path
) -> None:
    # The coordinator replaced val02's bundle by one of its own (validly self-signed).
    swap = ceremony.keygen_validator(keys / "swap", "val02", "127.0.0.1", 7002, 8002)
    a = ceremony.assemble([*bundles[:2], swap, *bundles[3:]], _template(), 3)
    ceremony.verify(a, bundles[1])  # control: val01 is in it as it handed itself over
    with pytest.raises(CeremonyError, match="validator key of 'val02'"):
        ceremony.verify(a, bundles[2])
    honest = ceremony.assemble(bundles, _template(), 3)
    assert honest.fingerprint != a.fingerprint  # the other operators see it too


def test_the_fingerprint_covers_the_addresses(bundles: list[Bundle]) -> None:
    a = ceremony.assemble(bundles, _template(), 3)
    moved = replace(a, addresses=(replace(a.addresses[0], host="10.0.0.1"), *a.addresses[1:]))
    assert moved.genesis.chain_id == a.genesis.chain_id
    assert moved.fingerprint != a.fingerprint


def test_load_assembly_refuses_files_of_another_chain(
    assembled: Path, tmp_path: Path, bundles: list[Bundle]
) -> None:
    other = ceremony.assemble(bundles, _template(), 4)  # another quorum: another chain
    ceremony.write_assembly(tmp_path, other)
    (tmp_path / "addresses.json").write_text((assembled.parent / "addresses.json").read_text())
    with pytest.raises(CeremonyError, match="for chain"):
        ceremony.load_assembly(tmp_path / "genesis.json")


# --- node config -------------------------------------------------------------------------


def test_config_from_the_public_files_and_the_private_dir(
    assembled: Path, keys: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    hosts = tmp_path / "hosts"
    hosts.write_text("# peers over the private network\nval03 10.1.0.3:7003\n")
    out = tmp_path / "config.json"
    argv = ["config", "--genesis", str(assembled), "--name", "val01", "--key-dir"]
    argv += [str(keys / "val01"), "--hosts", str(hosts), "--peer", "val00=10.1.0.1:17000"]
    assert node_main([*argv, "--out", str(out)]) == 0
    cfg = load_node_config(out)
    assert (cfg.validator, cfg.peer_port, cfg.client_port, cfg.metrics_port) == (
        1,
        7001,
        8001,
        9001,
    )
    assert {p.validator: (p.address, p.tls_name) for p in cfg.peers} == {
        0: ("10.1.0.1:17000", "val00"),
        2: ("127.0.0.1:7002", "val02"),
        3: ("10.1.0.3:7003", "val03"),
    }
    assert cfg.signing_key == keys / "val01" / "validator.key"
    assert cfg.tls_pinned == assembled.parent / "validators.pem"
    # The wrong private directory, or an override for no validator: refused, not written.
    capsys.readouterr()
    bad = tmp_path / "bad.json"
    wrong = ["config", "--genesis", str(assembled), "--name", "val01", "--out", str(bad)]
    assert node_main([*wrong, "--key-dir", str(keys / "val02")]) == 2
    assert "other keys" in capsys.readouterr().err
    assert node_main([*wrong, "--key-dir", str(keys / "val01"), "--peer", "val77=h:1"]) == 2
    assert "'val77'" in capsys.readouterr().err
    assert not bad.exists()


def test_parse_overrides_refuses_garbage() -> None:
    assert ceremony.parse_overrides(["val01 host.example:7001  # comment", ""], "f") == {
        "val01": "host.example:7001"
    }
    for line in ("val01", "val01 host", "val01 a:1 b:2"):
        with pytest.raises(CeremonyError, match="f line 1"):
            ceremony.parse_overrides([line], "f")


def test_keygen_cli_for_a_validator_and_a_participant(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["keygen", "--name", "bank-a", "--host", "val.bank-a.example", "--port", "7000"]
    assert node_main([*argv, "--out", str(tmp_path / "v")]) == 0
    b = ceremony.read_bundle(tmp_path / "v" / "bank-a.bundle.json")
    assert (b.tls_name, b.client_port) == ("val.bank-a.example", 8000)  # TLS name is the host
    assert node_main(["keygen", "--participant", "--name", "BANKA", "--out", str(tmp_path)]) == 0
    assert ceremony.read_bundle(tmp_path / "BANKA.bundle.json").kind == ceremony.PARTICIPANT
    assert node_main(["keygen", "--name", "bank-b", "--out", str(tmp_path / "w")]) == 2
    assert "--host and --port" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("name", "host", "san"),
    [
        ("val00", "é.example", "val.example"),  # not an A-label: the certificate refused it
        ("v" * 300, "127.0.0.1", "val.example"),  # over X.509's 64 for a common name
        ("val00", "127.0.0.1", "é"),
        ("val00", "127.0.0.1", "a" * 300),
    ],
)
def test_keygen_refuses_names_no_certificate_can_carry_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str, host: str, san: str
) -> None:
    """Checked before the certificate is made: one error line and exit 2, nothing
    written (a non-ASCII host or --san, or a 300-character name, ended keygen with the
    certificate library's traceback)."""
    argv = ["keygen", "--name", name, "--host", host, "--port", "7000", "--san", san]
    assert node_main([*argv, "--out", str(tmp_path / "k")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert not (tmp_path / "k").exists()
