"""The ceremony's checks at their edges (review 34c, target `ceremony` of `make mutate`):
each test holds a rule the older tests left to one side of a comparison, or to one
path. Files a coordinator forges are written with `write_assembly`, which checks
nothing, so that what refuses them is verify's own reading (`load_assembly`)."""

from __future__ import annotations

import dataclasses
import json
import shutil
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from node import ceremony, crypto
from node.__main__ import main as node_main
from node.ceremony import VALIDATOR, Address, Assembly, Bundle, CeremonyError
from node.config import BUNDLE_CERT_PEM_BYTES_MAX, BUNDLES_MAX
from node.genesis import parse_genesis
from node.keyfiles import cert_pin_from_pem, pem_cert, write_signing_key
from tests.unit.test_review34c_ceremony import _template

NAMES = ("val00", "val01", "val02")


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("keys")
    for i, name in enumerate(NAMES):
        ceremony.keygen_validator(root / name, name, f"127.0.0.{i + 1}", 7000, 8000)
    ceremony.keygen_validator(root / "other", "val00", "127.0.0.1", 7000, 8000)
    return root


@pytest.fixture(scope="module")
def honest(keys: Path) -> list[Bundle]:
    return [ceremony.read_bundle(keys / n / f"{n}.bundle.json") for n in NAMES]


def _cert(names: list[str]) -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    return pem_cert(ceremony._self_signed(key, names, datetime.now(UTC)))


def _forge(out: Path, entries: list[Bundle], q: int = 2) -> Path:
    """The three public files of ``entries`` as a coordinator that skips assemble's
    checks writes them (the validators in the order given)."""
    doc = _template()
    doc["validators"] = [
        {"id": b.name, "public_key": b.public_key.hex(), "tls_cert_sha256": b.tls_pin.hex()}
        for b in entries
    ]
    doc["quorum"] = q
    addresses = tuple(
        Address(b.name, b.host, b.peer_port, b.client_port, b.tls_name) for b in entries
    )
    certificates = tuple(b.tls_cert for b in entries)
    ceremony.write_assembly(out, Assembly(parse_genesis(doc), addresses, certificates))
    return out / ceremony.GENESIS_FILE


def _verify(genesis: Path, keys: Path, name: str = "val00") -> int:
    mine = keys / name / f"{name}.bundle.json"
    return node_main(["genesis", "verify", str(genesis), "--bundle", str(mine)])


# --- what verify refuses of the files ------------------------------------------------------


def test_verify_refuses_a_pinned_certificate_over_the_bundle_bound(
    honest: list[Bundle], tmp_path: Path
) -> None:
    """No bundle carries a certificate over BUNDLE_CERT_PEM_BYTES_MAX (its signature's
    encoding bounds it), so files that pin one come from no assemble."""
    filler = [f"n{i:04d}.example" for i in range(900)]
    big = _cert(["val02", "127.0.0.3", *filler])
    assert len(big) > BUNDLE_CERT_PEM_BYTES_MAX == 16384
    _forge(tmp_path / "control", honest)
    ceremony.load_assembly(tmp_path / "control" / "genesis.json")
    forged = [*honest[:2], dataclasses.replace(honest[2], tls_cert=big)]
    with pytest.raises(CeremonyError, match="tls_cert: over 16384 bytes"):
        ceremony.load_assembly(_forge(tmp_path / "forged", forged))


@pytest.mark.parametrize(("port", "refused"), [(0, True), (-1, True), (65536, True), (1, False)])
def test_verify_refuses_a_port_no_bundle_could_carry(
    honest: list[Bundle], tmp_path: Path, port: int, refused: bool
) -> None:
    entries = [honest[0], dataclasses.replace(honest[1], peer_port=port), honest[2]]
    genesis = _forge(tmp_path, entries)
    if refused:
        with pytest.raises(CeremonyError, match=r"peer_port: must be 1\.\.65535"):
            ceremony.load_assembly(genesis)
    else:
        ceremony.load_assembly(genesis)


def _long_host(n: int) -> str:
    """A DNS name of ``n`` characters: labels of 63, then the rest (not a number)."""
    labels, left = [], n
    while left > 64:
        labels.append("a" * 63)
        left -= 64
    return ".".join([*labels, "b" * left])


@pytest.mark.parametrize(("length", "refused"), [(253, False), (254, True)])
def test_verify_takes_a_host_of_253_characters_and_not_254(
    honest: list[Bundle], tmp_path: Path, length: int, refused: bool
) -> None:
    host = _long_host(length)
    assert len(host) == length
    entry = dataclasses.replace(honest[1], host=host, tls_cert=_cert(["val01", host]))
    genesis = _forge(tmp_path, [honest[0], entry, honest[2]])
    if refused:
        with pytest.raises(CeremonyError, match="no DNS name or address peers can dial"):
            ceremony.load_assembly(genesis)
    else:
        ceremony.load_assembly(genesis)


def test_verify_refuses_a_certificate_naming_a_validator_sorting_after_its_own(
    honest: list[Bundle], tmp_path: Path
) -> None:
    """The older test's hostile validator (val09) named validators sorting before it."""
    ceremony.load_assembly(_forge(tmp_path / "control", honest))
    for claimed in ("val01", "VAL02"):
        hostile = Bundle(
            VALIDATOR, "aaa", crypto.SigningKey.generate().public_key,
            tls_cert=_cert(["aaa", "127.0.0.9", claimed]), host="127.0.0.9",
            peer_port=7000, client_port=8000,
        )  # fmt: skip
        with pytest.raises(CeremonyError, match="carries the name"):
            ceremony.load_assembly(_forge(tmp_path / claimed, [hostile, *honest]))


def _addresses(genesis: Path) -> Path:
    return genesis.parent / ceremony.ADDRESSES_FILE


def test_an_addresses_file_missing_or_not_json_is_a_ceremony_error(
    honest: list[Bundle], tmp_path: Path
) -> None:
    """The command line turns a CeremonyError into one line and exit 2; a ValueError
    from the JSON decoder would be a traceback."""
    genesis = _forge(tmp_path, honest)
    ceremony.load_assembly(genesis)  # control
    text = _addresses(genesis).read_text()
    _addresses(genesis).write_text(text[:-20])
    with pytest.raises(CeremonyError, match="not an addresses file"):
        ceremony.load_assembly(genesis)
    _addresses(genesis).unlink()
    with pytest.raises(CeremonyError, match="not an addresses file"):
        ceremony.load_assembly(genesis)


def test_an_addresses_file_lacking_a_validator_is_refused(
    honest: list[Bundle], tmp_path: Path
) -> None:
    genesis = _forge(tmp_path, honest)
    doc = json.loads(_addresses(genesis).read_text())
    for kept in (doc["validators"][:2], doc["validators"][1:]):
        _addresses(genesis).write_text(json.dumps({**doc, "validators": kept}))
        with pytest.raises(CeremonyError, match="does not list genesis's validators"):
            ceremony.load_assembly(genesis)


# --- what verify says of the operator's own entry ----------------------------------------


def test_verify_refuses_its_certificate_replaced_whichever_way_the_pins_compare(
    honest: list[Bundle], keys: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The coordinator keeps val00's key and replaces its certificate by one of its own
    for val00's names: it holds that TLS key and could answer as val00."""
    assert _verify(_forge(tmp_path / "control", honest), keys) == 0
    seen = set()
    for i in range(4096):  # a pin near either end takes many draws (64 failed 1 run in 30)
        if len(seen) == 2:
            break
        cert = _cert(["val00", "127.0.0.1"])
        lower = cert_pin_from_pem(cert) < honest[0].tls_pin
        if lower in seen:
            continue
        seen.add(lower)
        forged = [dataclasses.replace(honest[0], tls_cert=cert), *honest[1:]]
        capsys.readouterr()
        assert _verify(_forge(tmp_path / str(i), forged), keys) == 1
        assert "the TLS certificate of 'val00'" in capsys.readouterr().err
    assert seen == {True, False}


@pytest.mark.parametrize("peer_port", [6999, 7001])
def test_verify_refuses_its_address_changed_either_way(
    honest: list[Bundle], keys: Path, tmp_path: Path, peer_port: int
) -> None:
    forged = [dataclasses.replace(honest[0], peer_port=peer_port), *honest[1:]]
    assert _verify(_forge(tmp_path, forged), keys) == 1


def test_verifys_agreed_numbers_are_taken_by_name_only(
    honest: list[Bundle], tmp_path: Path
) -> None:
    """Two integers side by side: by position, one could be taken for the other."""
    a = ceremony.load_assembly(_forge(tmp_path, honest))
    ceremony.verify(a, honest[0], None, expect_validators=3, expect_q=2)
    with pytest.raises(TypeError):
        ceremony.verify(a, honest[0], None, 3, 2)  # type: ignore[misc]


# --- bundles, keygen, assemble -------------------------------------------------------------


def test_a_field_twice_is_named(honest: list[Bundle], tmp_path: Path) -> None:
    path = tmp_path / "val00.bundle.json"
    text = json.dumps(honest[0].to_json())
    path.write_text(text.replace('"host": ', '"host": "val09.example", "host": ', 1))
    with pytest.raises(CeremonyError, match="the field 'host' twice"):
        ceremony.read_bundle(path)


def test_at_most_bundles_max_bundles_are_read(tmp_path: Path) -> None:
    """Counted before any is read: 10,001 empty files are refused for their number,
    10,000 for the first one's content."""
    assert BUNDLES_MAX == 10_000
    for i in range(BUNDLES_MAX):
        (tmp_path / f"{i:05d}{ceremony.BUNDLE_SUFFIX}").touch()
    with pytest.raises(CeremonyError, match="not a JSON bundle"):
        ceremony.read_bundles([tmp_path])
    (tmp_path / f"z{ceremony.BUNDLE_SUFFIX}").touch()
    with pytest.raises(CeremonyError, match="10001 bundles; at most 10000"):
        ceremony.read_bundles([tmp_path])


@pytest.mark.parametrize(("length", "refused"), [(12, False), (253, False), (254, True)])
def test_keygen_takes_san_names_up_to_253_characters(
    tmp_path: Path, length: int, refused: bool, capsys: pytest.CaptureFixture[str]
) -> None:
    san = _long_host(length)
    argv = ["keygen", "--name", "val00", "--host", "127.0.0.1", "--port", "7000"]
    code = node_main([*argv, "--san", san, "--out", str(tmp_path / "k")])
    if refused:
        assert code == 2
        assert "--san" in capsys.readouterr().err
    else:
        assert code == 0
        bundle = ceremony.read_bundle(tmp_path / "k" / "val00.bundle.json")
        assert san in ceremony.dns_names(bundle.tls_cert)


def test_a_template_genesis_refuses_is_a_ceremony_error(honest: list[Bundle]) -> None:
    ceremony.assemble(honest, _template(), 3)  # control
    t = _template()
    t["holdings"].append({"account": "BANK01", "instrument": "NO.SUCH", "amount": 1})
    with pytest.raises(CeremonyError, match="genesis from the template"):
        ceremony.assemble(honest, t, 2)


def test_config_refuses_a_private_dir_with_either_key_not_genesiss(
    keys: Path, tmp_path: Path
) -> None:
    """val00's directory, with the validator key or the certificate of another keygen
    for val00 (the older test swapped both at once)."""
    g = ceremony.load_assembly(_forge(tmp_path / "public", [
        ceremony.read_bundle(keys / n / f"{n}.bundle.json") for n in NAMES
    ]))  # fmt: skip
    ceremony.check_private_dir(g, "val00", keys / "val00")  # control
    for swapped in (ceremony.VALIDATOR_KEY_FILE, ceremony.TLS_CERT_FILE):
        mixed = tmp_path / swapped
        shutil.copytree(keys / "val00", mixed)
        (mixed / swapped).unlink()
        shutil.copy(keys / "other" / swapped, mixed / swapped)
        with pytest.raises(CeremonyError, match="holds other keys than genesis lists"):
            ceremony.check_private_dir(g, "val00", mixed)


# --- each comparison both ways (a survivor of `<` or `>` for `!=`) -----------------------


def _signed(b: Bundle) -> Bundle:
    key = crypto.SigningKey.generate()
    return dataclasses.replace(b, public_key=key.public_key).signed(key)


def _one_way_and_the_other(make: Any, base: bytes, tries: int = 4096) -> list[Any]:
    """Two values of ``make()`` whose key (the second of each pair) sorts below and above
    ``base``: a check that compared with `<` or `>` passes one of them."""
    found: dict[bool, Any] = {}
    for _ in range(tries):
        value, key = make()
        found.setdefault(key < base, value)
        if len(found) == 2:
            return list(found.values())
    raise AssertionError("no two values either side")


def test_a_certificate_field_with_text_before_it_is_refused(honest: list[Bundle]) -> None:
    """The older test appended text (which sorts after the PEM); text before it sorts
    before or after "-----BEGIN" as its first character does."""
    cert = _cert(["val09", "127.0.0.9"])
    b = Bundle(VALIDATOR, "val09", b"", tls_cert=cert, host="127.0.0.9", peer_port=7000,
               client_port=8000)  # fmt: skip
    ceremony.assemble([*honest, _signed(b)], _template(), 3)  # control
    for before in (b"# val09\n", b"val09\n"):
        hostile = _signed(dataclasses.replace(b, tls_cert=before + cert))
        with pytest.raises(CeremonyError, match="not one PEM certificate"):
            ceremony.assemble([*honest, hostile], _template(), 3)


@pytest.mark.parametrize("names", [["val09"], ["val09.example"]])
def test_a_certificate_needs_both_the_name_and_the_tls_name(
    honest: list[Bundle], names: list[str]
) -> None:
    """val09 at the host val09.example: its TLS name is the host, and its certificate
    must carry that and its name."""
    b = Bundle(VALIDATOR, "val09", b"", tls_cert=_cert(["val09", "val09.example"]),
               host="val09.example", peer_port=7000, client_port=8000)  # fmt: skip
    ceremony.assemble([*honest, _signed(b)], _template(), 3)  # control
    hostile = _signed(dataclasses.replace(b, tls_cert=_cert(names)))
    with pytest.raises(CeremonyError, match="must include the validator's name"):
        ceremony.assemble([*honest, hostile], _template(), 3)


def test_ports_in_either_order_and_a_one_character_host_are_taken(
    honest: list[Bundle], tmp_path: Path
) -> None:
    entries = [
        dataclasses.replace(honest[0], peer_port=9000, client_port=8000),
        dataclasses.replace(honest[1], peer_port=65535, client_port=1),
        dataclasses.replace(honest[2], host="h", tls_cert=_cert(["val02", "h"])),
    ]
    ceremony.load_assembly(_forge(tmp_path / "ok", entries))
    same = [dataclasses.replace(honest[0], peer_port=7000, client_port=7000), *honest[1:]]
    with pytest.raises(CeremonyError, match="peer_port and client_port must differ"):
        ceremony.load_assembly(_forge(tmp_path / "same", same))  # parsed: two int objects


def test_a_bundle_of_another_format_or_with_an_unknown_field_is_named(
    honest: list[Bundle],
) -> None:
    doc = honest[0].to_json()
    for version in (0, 2):
        with pytest.raises(CeremonyError, match=f"bundle: format {version}"):
            ceremony.parse_bundle({**doc, "bundle": version})
    with pytest.raises(CeremonyError, match=r"missing fields \[\], unknown fields \['extra'\]"):
        ceremony.parse_bundle({**doc, "extra": 1})


def test_a_participant_bundle_with_a_bad_id_is_a_ceremony_error() -> None:
    key = crypto.SigningKey.generate()
    b = Bundle(ceremony.PARTICIPANT, "BANK 01", key.public_key).signed(key)
    with pytest.raises(CeremonyError, match="name: participant id 'BANK 01'"):
        ceremony.check_bundle(b)


def test_a_bundle_that_cannot_be_read_says_so_not_that_it_is_too_big(tmp_path: Path) -> None:
    loop = tmp_path / "loop.bundle.json"
    loop.symlink_to(loop)  # ELOOP, 40: past EFBIG, 27
    for path in (tmp_path / "missing.bundle.json", loop):  # ENOENT, 2: before it
        with pytest.raises(CeremonyError, match="cannot read"):
            ceremony.read_bundle(path)


def test_keygen_takes_an_ipv6_san_and_extra_names_by_name_only(tmp_path: Path) -> None:
    b = ceremony.keygen_validator(
        tmp_path / "k", "val00", "127.0.0.1", 7000, 8000, extra_names=["::1", "x.example"]
    )
    assert "x.example" in ceremony.dns_names(b.tls_cert)
    with pytest.raises(TypeError):
        ceremony.keygen_validator(tmp_path / "j", "val00", "127.0.0.1", 7000, 8000, ["::1"])  # type: ignore[misc]


def test_a_bundle_read_from_a_file_is_compared_with_the_others(keys: Path, tmp_path: Path) -> None:
    """Bundles read from files (their kind a string of their own, not the module's
    constant) are compared like keygen's."""
    twin = ceremony.keygen_validator(tmp_path / "twin", "val09", "127.0.0.1", 7000, 8009)
    files = [keys / n / f"{n}.bundle.json" for n in NAMES]
    ceremony.assemble(ceremony.read_bundles(files), _template(), 3)  # control
    path = tmp_path / "twin" / "val09.bundle.json"
    with pytest.raises(CeremonyError, match=r"same address \(host and port\)"):
        ceremony.assemble(ceremony.read_bundles([*files, path]), _template(), 3)
    assert twin.kind == VALIDATOR


def test_a_template_participant_without_an_id_is_named(honest: list[Bundle]) -> None:
    t = _template()
    t["participants"].append({"roles": []})
    with pytest.raises(CeremonyError, match=r"participants\[\d+\]: expected an object with an id"):
        ceremony.assemble(honest, t, 2)


@pytest.mark.parametrize("chain_id", ["0" * 64, "f" * 64])
def test_addresses_of_another_chain_are_refused_whichever_way_the_ids_compare(
    honest: list[Bundle], tmp_path: Path, chain_id: str
) -> None:
    genesis = _forge(tmp_path, honest)
    doc = json.loads(_addresses(genesis).read_text())
    _addresses(genesis).write_text(json.dumps({**doc, "chain_id": chain_id}))
    with pytest.raises(CeremonyError, match="not this genesis"):
        ceremony.load_assembly(genesis)


@pytest.mark.parametrize(
    "edit",
    [
        lambda d: d.pop("chain_id"),  # KeyError
        lambda d: d["validators"][0].update(extra=1),  # TypeError
        lambda d: d.update(validators=None),  # TypeError
    ],
)
def test_an_addresses_file_of_another_shape_is_a_ceremony_error(
    honest: list[Bundle], tmp_path: Path, edit: Any
) -> None:
    genesis = _forge(tmp_path, honest)
    doc = json.loads(_addresses(genesis).read_text())
    edit(doc)
    _addresses(genesis).write_text(json.dumps(doc))
    with pytest.raises(CeremonyError, match="not an addresses file"):
        ceremony.load_assembly(genesis)
    _addresses(genesis).write_text("[" * 100_000 + "]" * 100_000)  # RecursionError
    with pytest.raises(CeremonyError, match="not an addresses file"):
        ceremony.load_assembly(genesis)


def test_a_validators_pem_with_a_stranger_or_lacking_one_is_a_ceremony_error(
    honest: list[Bundle], tmp_path: Path
) -> None:
    genesis = _forge(tmp_path, honest)
    pem = genesis.parent / "validators.pem"
    pem.write_bytes(b"".join(b.tls_cert for b in honest) + _cert(["val09"]))
    with pytest.raises(CeremonyError, match="not pinned by genesis"):
        ceremony.load_assembly(genesis)
    pem.write_bytes(b"".join(b.tls_cert for b in honest[:2]))
    with pytest.raises(CeremonyError, match="lacks a validator's pinned certificate"):
        ceremony.load_assembly(genesis)


@pytest.mark.parametrize("tls_name", ["val00", "val02"])
def test_a_tls_name_not_the_validators_is_refused_either_way(
    honest: list[Bundle], tmp_path: Path, tls_name: str
) -> None:
    genesis = _forge(tmp_path, honest)
    doc = json.loads(_addresses(genesis).read_text())
    doc["validators"][1]["tls_name"] = tls_name
    _addresses(genesis).write_text(json.dumps(doc))
    with pytest.raises(CeremonyError, match="TLS name"):
        ceremony.load_assembly(genesis)


def test_verify_says_a_validator_not_in_genesis_is_not_in_it(
    honest: list[Bundle], tmp_path: Path
) -> None:
    """val005 sorts between val00 and val01: not taken for val01."""
    a = ceremony.load_assembly(_forge(tmp_path, honest))
    stranger = dataclasses.replace(honest[1], name="val005")
    with pytest.raises(CeremonyError, match="'val005' is not in genesis"):
        ceremony.verify(a, stranger)
    with pytest.raises(CeremonyError, match="'val005' is not in genesis"):
        ceremony.check_private_dir(a, "val005", tmp_path)


def test_verify_refuses_its_validator_key_replaced_whichever_way_the_keys_compare(
    honest: list[Bundle], tmp_path: Path
) -> None:
    def make() -> tuple[bytes, bytes]:
        k = crypto.SigningKey.generate().public_key
        return k, k

    for i, key in enumerate(_one_way_and_the_other(make, honest[1].public_key)):
        a = ceremony.load_assembly(
            _forge(tmp_path / str(i), [honest[0], dataclasses.replace(honest[1], public_key=key),
                                       honest[2]])
        )  # fmt: skip
        with pytest.raises(CeremonyError, match="the validator key of 'val01'"):
            ceremony.verify(a, honest[1])


def test_verify_refuses_a_participants_key_replaced_or_missing(
    honest: list[Bundle], tmp_path: Path
) -> None:
    a = ceremony.load_assembly(_forge(tmp_path, honest))
    p = a.genesis.participant_by_id["BANK01"]
    ceremony.verify(a, Bundle(ceremony.PARTICIPANT, "BANK01", p.public_key))  # control

    def make() -> tuple[bytes, bytes]:
        k = crypto.SigningKey.generate().public_key
        return k, k

    for key in _one_way_and_the_other(make, p.public_key):
        with pytest.raises(CeremonyError, match="the participant key of 'BANK01'"):
            ceremony.verify(a, Bundle(ceremony.PARTICIPANT, "BANK01", key))
    with pytest.raises(CeremonyError, match="the participant key of 'BANK99'"):
        ceremony.verify(a, Bundle(ceremony.PARTICIPANT, "BANK99", p.public_key))


@pytest.mark.parametrize("told", ["0000 " * 8, "ffff " * 8])
def test_verify_refuses_a_fingerprint_either_side_of_its_own(
    honest: list[Bundle], tmp_path: Path, told: str
) -> None:
    a = ceremony.load_assembly(_forge(tmp_path, honest))
    ceremony.verify(a, honest[0], a.fingerprint)  # control
    with pytest.raises(CeremonyError, match="fingerprint"):
        ceremony.verify(a, honest[0], told)


def test_verify_refuses_fewer_validators_or_a_higher_quorum_than_agreed(
    honest: list[Bundle], tmp_path: Path
) -> None:
    a = ceremony.load_assembly(_forge(tmp_path, honest, q=3))
    ceremony.verify(a, honest[0], expect_validators=3, expect_q=3)  # control
    with pytest.raises(CeremonyError, match="3 validators, not the 4 agreed"):
        ceremony.verify(a, honest[0], expect_validators=4)
    with pytest.raises(CeremonyError, match="quorum 3, not the 2 agreed"):
        ceremony.verify(a, honest[0], expect_validators=3, expect_q=2)


def test_config_refuses_a_private_dir_it_cannot_read(keys: Path, tmp_path: Path) -> None:
    a = ceremony.load_assembly(_forge(tmp_path / "public", [
        ceremony.read_bundle(keys / n / f"{n}.bundle.json") for n in NAMES
    ]))  # fmt: skip
    for gone, garbage in ((ceremony.VALIDATOR_KEY_FILE, None), (ceremony.TLS_CERT_FILE, None),
                          (ceremony.TLS_CERT_FILE, b"no certificate")):  # fmt: skip
        d = tmp_path / f"{gone}-{garbage is None}"
        shutil.copytree(keys / "val00", d)
        (d / gone).unlink()
        if garbage is not None:
            (d / gone).write_bytes(garbage)
        with pytest.raises(CeremonyError, match=str(d)):
            ceremony.check_private_dir(a, "val00", d)


def test_config_refuses_either_key_replaced_whichever_way_it_compares(
    keys: Path, tmp_path: Path
) -> None:
    """Another validator key, or another certificate, for val00, sorting below and
    above the one genesis lists."""
    a = ceremony.load_assembly(_forge(tmp_path / "public", [
        ceremony.read_bundle(keys / n / f"{n}.bundle.json") for n in NAMES
    ]))  # fmt: skip
    v = a.genesis.validators[0]

    def key() -> tuple[crypto.SigningKey, bytes]:
        k = crypto.SigningKey.generate()
        return k, k.public_key

    def cert() -> tuple[bytes, bytes]:
        c = _cert(["val00", "127.0.0.1"])
        return c, cert_pin_from_pem(c)

    for i, k in enumerate(_one_way_and_the_other(key, v.public_key)):
        d = tmp_path / f"key{i}"
        shutil.copytree(keys / "val00", d)
        (d / ceremony.VALIDATOR_KEY_FILE).unlink()
        write_signing_key(d / ceremony.VALIDATOR_KEY_FILE, k)
        with pytest.raises(CeremonyError, match="holds other keys"):
            ceremony.check_private_dir(a, "val00", d)
    for i, c in enumerate(_one_way_and_the_other(cert, v.tls_cert_sha256)):
        d = tmp_path / f"cert{i}"
        shutil.copytree(keys / "val00", d)
        (d / ceremony.TLS_CERT_FILE).write_bytes(c)
        with pytest.raises(CeremonyError, match="holds other keys"):
            ceremony.check_private_dir(a, "val00", d)


def test_the_agreed_numbers_are_compared_by_value_past_256() -> None:
    """VALIDATORS_MAX is 1,000: past 256, the count of genesis's validators and the number
    typed on the command line are equal integers, never one object."""
    g: Any = SimpleNamespace(validators=[None] * 300, quorum=201)
    ceremony._check_agreed(g, int("300"), int("201"))
    with pytest.raises(CeremonyError, match="301 agreed"):
        ceremony._check_agreed(g, int("301"), None)
