"""Review 34c: the genesis ceremony against a lying coordinator, a hostile operator's host
and a private directory others may write (node/ceremony.py, docs/deploy.md). Each test
runs the real `ledger-node` command line where an operator would, and has its control:
the honest input passes."""

from __future__ import annotations

import json
import stat
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from node import ceremony, crypto
from node.__main__ import main as node_main
from node.ceremony import Bundle, CeremonyError
from node.genesis import demo_genesis, genesis_to_json, parse_genesis
from node.keyfiles import pem_cert

NAMES = ("val00", "val01", "val02")


def _template() -> dict[str, Any]:
    g = demo_genesis(4, 3, banks=2).genesis
    doc = ceremony.template_from_genesis(g, name="review-34c")
    for p, item in zip(g.participants, doc["participants"], strict=True):
        item["public_key"] = p.public_key.hex()
    return doc


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three operators' private directories, and the coordinator's own validator's."""
    root = tmp_path_factory.mktemp("keys")
    for i, name in enumerate((*NAMES, "val99")):
        ceremony.keygen_validator(root / name, name, f"127.0.0.{i + 1}", 7000, 8000)
    return root


def _bundles(keys: Path, names: tuple[str, ...]) -> list[Bundle]:
    return [ceremony.read_bundle(keys / n / f"{n}.bundle.json") for n in names]


def _val09_at(host: str) -> Bundle:
    """A fresh validator val09's bundle at ``host`` on val00's ports, validly self-signed,
    its certificate made for that name."""
    key = crypto.SigningKey.generate()
    tls_key = ec.generate_private_key(ec.SECP256R1())
    cert = pem_cert(ceremony._self_signed(tls_key, ["val09", host], datetime.now(UTC)))
    return Bundle(
        ceremony.VALIDATOR, "val09", key.public_key, tls_cert=cert, host=host,
        peer_port=7000, client_port=8000,
    ).signed(key)  # fmt: skip


def _public(keys: Path, tmp: Path, names: tuple[str, ...], q: int) -> Path:
    ceremony.write_assembly(tmp, ceremony.assemble(_bundles(keys, names), _template(), q))
    return tmp / "genesis.json"


def _verify(genesis: Path, keys: Path, *flags: str) -> int:
    mine = keys / "val00" / "val00.bundle.json"
    return node_main(["genesis", "verify", str(genesis), "--bundle", str(mine), *flags])


# --- a coordinator's own validators ------------------------------------------------------


def test_verify_refuses_a_number_of_validators_or_a_quorum_not_agreed(
    keys: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Three operators agreed on 2 of 3. The coordinator adds a validator of its own and
    keeps q = 2: 2 of 4 is no quorum, so it says 3 of 4, which it can block (live with
    up to 1 down). Every operator's entry is as handed over and every operator holds the
    same files (one fingerprint), so without the agreed numbers verify passed."""
    honest = _public(keys, tmp_path / "honest", NAMES, 2)
    lying = _public(keys, tmp_path / "lying", (*NAMES, "val99"), 3)
    assert _verify(lying, keys) == 0  # what it checked before: val00's own entry
    assert "--validators N --q Q" in capsys.readouterr().out  # what to check, by hand
    agreed = ("--validators", "3", "--q", "2")
    assert _verify(honest, keys, *agreed) == 0  # control
    assert "--validators N --q Q" not in capsys.readouterr().out
    assert _verify(lying, keys, *agreed) == 1
    assert "4 validators, not the 3 agreed" in capsys.readouterr().err
    assert _verify(honest, keys, "--validators", "3", "--q", "3") == 1
    assert "quorum 2, not the 3 agreed" in capsys.readouterr().err


def test_the_agreed_numbers_are_checked_for_a_participant_too(keys: Path, tmp_path: Path) -> None:
    lying = _public(keys, tmp_path, (*NAMES, "val99"), 3)
    a = ceremony.load_assembly(lying)
    bank = Bundle(ceremony.PARTICIPANT, "BANK01", a.genesis.participant_by_id["BANK01"].public_key)
    ceremony.verify(a, bank, expect_validators=4, expect_q=3)  # control
    with pytest.raises(CeremonyError, match="4 validators, not the 3 agreed"):
        ceremony.verify(a, bank, expect_validators=3)
    with pytest.raises(CeremonyError, match="quorum 3, not the 4 agreed"):
        ceremony.verify(a, bank, expect_q=4)


def _reorder(genesis: Path, order: list[int]) -> None:
    """The files as a coordinator would write them with the validators in another order:
    genesis (its chain id follows), and addresses.json in the same order."""
    doc = genesis_to_json(parse_genesis(json.loads(genesis.read_text())))
    doc["validators"] = [doc["validators"][i] for i in order]
    genesis.write_text(json.dumps(doc))
    addresses = genesis.parent / ceremony.ADDRESSES_FILE
    a = json.loads(addresses.read_text())
    a["validators"] = [a["validators"][i] for i in order]
    a["chain_id"] = parse_genesis(doc).chain_id
    addresses.write_text(json.dumps(a))


@pytest.mark.parametrize("order", [[0, 1, 2], [1, 0, 2], [0, 2, 1], [2, 1, 0]])
def test_verify_refuses_validators_out_of_name_order(
    keys: Path, tmp_path: Path, order: list[int], capsys: pytest.CaptureFixture[str]
) -> None:
    """assemble orders validators by name so that anyone assembling the same bundles gets
    the same chain id; files in another order come from no assemble ([0, 1, 2]: the
    control, rewritten the same way)."""
    genesis = _public(keys, tmp_path, NAMES, 2)
    _reorder(genesis, order)
    code = _verify(genesis, keys)
    if order == sorted(order):
        assert code == 0
    else:
        assert code == 2
        assert "not in name order" in capsys.readouterr().err


# --- a host that is an IPv4 address in a legacy spelling ----------------------------------


@pytest.mark.parametrize(
    "host",
    ["0", "0.0", "00.0.0.0", "0x0", "0X0", "127.1", "010.0.0.1", "0x7f.1", "2130706433", "a.0x"],
)
def test_a_host_that_resolvers_read_as_an_ipv4_address_is_refused(
    tmp_path: Path, host: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A name whose last label is a number is an IPv4 address to glibc (inet_aton) and
    gRPC: "0" is the unspecified address the docs refuse "in any spelling", "127.1" the
    address 127.0.0.1 that the same-address check compares with, "010.0.0.1" is 8.0.0.1."""
    argv = ["keygen", "--name", "val00", "--host", host, "--port", "7000", "--out"]
    assert node_main([*argv, str(tmp_path / "k")]) == 2
    assert "no DNS name or address peers can dial" in capsys.readouterr().err
    assert not (tmp_path / "k").exists()


@pytest.mark.parametrize("host", ["10.0.0.1", "node-0", "a.b1", "1a.example", "x.0a", "0x.y"])
def test_a_host_with_a_number_in_it_but_not_last_is_a_name(tmp_path: Path, host: str) -> None:
    """The control: names with digits, and dotted-quad addresses."""
    argv = ["keygen", "--name", "val00", "--host", host, "--port", "7000", "--out"]
    assert node_main([*argv, str(tmp_path / "k")]) == 0


def test_assemble_refuses_a_bundle_whose_host_is_another_spelling_of_an_address(
    keys: Path,
) -> None:
    """A hostile operator's bundle at "127.1" (127.0.0.1, val00's host and ports), validly
    self-signed, its certificate made for that name: keygen's check is the operator's own,
    so assemble (and every verify, which runs the same check) refuses it too."""
    honest = _bundles(keys, NAMES)
    for host, refused in (("127.0.0.9", False), ("127.1", True)):
        b = _val09_at(host)
        if refused:
            with pytest.raises(CeremonyError, match=r"'127\.1' is no DNS name"):
                ceremony.assemble([*honest, b], _template(), 3)
        else:
            ceremony.assemble([*honest, b], _template(), 3)


# --- the private directory ---------------------------------------------------------------


@pytest.mark.parametrize("mode", [0o775, 0o757, 0o777, 0o1777])
def test_keygen_refuses_a_directory_others_may_write(
    tmp_path: Path, mode: int, capsys: pytest.CaptureFixture[str]
) -> None:
    """Whoever may write the directory may replace validator.key and the bundle with its
    own before the bundle is handed over: genesis would list a key someone else holds."""
    out = tmp_path / "keys"
    out.mkdir()
    out.chmod(mode)
    argv = ["keygen", "--name", "val00", "--host", "127.0.0.1", "--port", "7000"]
    assert node_main([*argv, "--out", str(out)]) == 2
    assert f"mode {mode:04o}, so others may replace the keys" in capsys.readouterr().err
    assert list(out.iterdir()) == []
    participant = ["keygen", "--participant", "--name", "BANK01", "--out", str(out)]
    assert node_main(participant) == 2
    assert list(out.iterdir()) == []


@pytest.mark.parametrize("mode", [0o700, 0o750, 0o755])
def test_keygen_takes_an_existing_directory_only_its_owner_may_write(
    tmp_path: Path, mode: int
) -> None:
    out = tmp_path / "keys"
    out.mkdir()
    out.chmod(mode)
    argv = ["keygen", "--name", "val00", "--host", "127.0.0.1", "--port", "7000"]
    assert node_main([*argv, "--out", str(out)]) == 0
    assert node_main(["keygen", "--participant", "--name", "BANK01", "--out", str(out)]) == 0
    assert stat.S_IMODE((out / "validator.key").stat().st_mode) == 0o600
    made = tmp_path / "new" / "keys"
    assert node_main([*argv, "--out", str(made)]) == 0
    assert stat.S_IMODE(made.stat().st_mode) == 0o700


def test_an_ipv4_address_spelled_as_an_ipv4_mapped_ipv6_address_is_the_same_address(
    keys: Path,
) -> None:
    """'::ffff:127.0.0.1' is 127.0.0.1 to a dual-stack socket: a second validator there on
    val00's ports claims val00's address (the check compared IPv6 and IPv4 objects)."""
    honest = _bundles(keys, NAMES)
    for host, refused in (("::ffff:127.0.0.9", False), ("::ffff:127.0.0.1", True)):
        b = _val09_at(host)
        if refused:
            with pytest.raises(CeremonyError, match=r"same address \(host and port\)"):
                ceremony.assemble([*honest, b], _template(), 3)
        else:
            ceremony.assemble([*honest, b], _template(), 3)


@pytest.mark.parametrize(
    ("field", "value"),
    [("peer_port", 70000), ("host", "h" * 254), ("name", "v" * 65), ("client_port", -1)],
)
def test_a_bundle_field_past_its_bound_names_the_file(
    keys: Path, tmp_path: Path, field: str, value: object, capsys: pytest.CaptureFixture[str]
) -> None:
    """A field no signature can cover (the signed encoding bounds it) was reported under
    the name the bundle claims ("bundle 'val01': ..."), which may be another operator's,
    not the file it came in."""
    bundles = tmp_path / "bundles"
    bundles.mkdir()
    doc = json.loads((keys / "val01" / "val01.bundle.json").read_text())
    (bundles / "val01.bundle.json").write_text(json.dumps(doc))
    argv = ["genesis", "assemble", "--bundles", str(bundles), "--template"]
    template = tmp_path / "template.json"
    template.write_text(json.dumps(_template()))
    argv += [str(template), "--q", "1", "--out"]
    assert node_main([*argv, str(tmp_path / "control")]) == 0
    capsys.readouterr()
    (bundles / "val01.bundle.json").unlink()
    (bundles / "sent-by-mallory.bundle.json").write_text(json.dumps({**doc, field: value}))
    assert node_main([*argv, str(tmp_path / "out")]) == 2
    assert "sent-by-mallory.bundle.json" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
