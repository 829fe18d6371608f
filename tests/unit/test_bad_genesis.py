"""Bad genesis and node config values give one line naming the field, never a traceback:
a table of bad values over every field of a real generated network, loaded through
``load_genesis``, ``python -m node --config`` and the ``ledger`` CLI."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from client.cli import main as ledger_main
from node.__main__ import main as node_main
from node.genesis import load_genesis
from node.netconfig import load_network
from node.settlement import GenesisError

# The run directory comes from netgen in a child process, and the node and CLI checks run
# `python -m node`: make test's serial run (tests/isolation.py).
pytestmark = pytest.mark.serial

# Wrong types, out of every range, text that no field takes, and structure where a scalar
# belongs. Each replaces one field at a time.
BAD_VALUES: list[Any] = [None, True, -1, 2**64, 2**70, "", "\x00", "x" * 300, "zz", [], {}]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("badgen") / "run"
    subprocess.run(
        [sys.executable, "-m", "devtools.netgen", "--out", str(out), "--n", "1", "--q", "1"],
        check=True,
        capture_output=True,
    )
    return out


def _leaves(doc: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every field of the document (the first entry of each list stands for the rest)."""
    if isinstance(doc, dict):
        for k, v in doc.items():
            yield (*path, k)
            yield from _leaves(v, (*path, k))
    elif isinstance(doc, list) and doc:
        yield from _leaves(doc[0], (*path, 0))


def _with(doc: Any, path: tuple[Any, ...], value: Any) -> Any:
    out = copy.deepcopy(doc)
    parent = out
    for k in path[:-1]:
        parent = parent[k]
    parent[path[-1]] = value
    return out


def _names_the_field(message: str, doc: Any, path: tuple[Any, ...]) -> bool:
    """The message names the field, or the entry holding it (by its id) or its list; an
    emptied list may break the entries of another list first (holdings of an instrument)."""
    top = doc[path[0]]
    entry = top[0] if len(path) > 2 and isinstance(top, list) else {}  # compliance: a dict
    names = {str(k) for k in path if isinstance(k, str)}
    names |= set(doc) if len(path) == 1 else set()
    names |= {str(entry.get(k)) for k in ("id", "account") if isinstance(entry, dict)}
    return any(n and n in message for n in names)


def test_every_bad_field_value_is_one_genesis_error_naming_it(
    run_dir: Path, tmp_path: Path
) -> None:
    good = json.loads((run_dir / "genesis.json").read_text())
    target = tmp_path / "genesis.json"
    refused = set()
    for path in _leaves(good):
        for value in BAD_VALUES:
            target.write_text(json.dumps(_with(good, path, value)))
            try:
                load_genesis(target).chain_id  # noqa: B018 - the chain id encodes every field
            except GenesisError as e:
                refused.add(path)
                assert "\n" not in str(e), (path, value)
                assert _names_the_field(str(e), good, path), (path, value, str(e))
    assert refused == set(_leaves(good))  # some bad value reached every field


# (file content that is no JSON object, what the one-line error says): for any file a
# node or the CLI loads (genesis here, a node's config in test_netconfig_teeth.py)
NOT_A_DOCUMENT = [
    (b"\xff\xfe not text", "not UTF-8"),
    (b"[" * 100_000, "nested too deeply"),
    (b"{", "not valid JSON"),
    (b"[]", "expected an object"),
]


@pytest.mark.parametrize(("content", "words"), NOT_A_DOCUMENT)
def test_a_genesis_file_that_is_no_document_is_one_genesis_error(
    tmp_path: Path, content: bytes, words: str
) -> None:
    path = tmp_path / "genesis.json"
    path.write_bytes(content)
    with pytest.raises(GenesisError, match=words):
        load_genesis(path)


def test_cash_tokens_refuse_bond_fields(run_dir: Path, tmp_path: Path) -> None:
    """Negative control for the table: values only bonds are checked for once reached the
    canonical encoding of a cash token unchecked (struct.error, ValueError)."""
    good = json.loads((run_dir / "genesis.json").read_text())
    cash = next(i for i, x in enumerate(good["instruments"]) if x["kind"] == "cash")
    path = tmp_path / "genesis.json"
    for field, value in [("coupon_bp", 2**40), ("coupon_freq", 300), ("maturity_date", "soon")]:
        path.write_text(json.dumps(_with(good, ("instruments", cash, field), value)))
        with pytest.raises(GenesisError, match=f"{field} is a bond field"):
            load_genesis(path)


def _node_config(run_dir: Path) -> Path:
    return load_network(run_dir).nodes[0].config


def test_the_node_refuses_a_bad_genesis_in_one_line(
    run_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = json.loads(_node_config(run_dir).read_text())
    good = json.loads((run_dir / "genesis.json").read_text())
    cash = next(i for i, x in enumerate(good["instruments"]) if x["kind"] == "cash")
    bad = _with(good, ("instruments", cash, "coupon_bp"), 2**40)
    (tmp_path / "genesis.json").write_text(json.dumps(bad))
    config["genesis"] = str(tmp_path / "genesis.json")
    for k in ("data_dir", "signing_key", "tls_pinned", "tls_cert", "tls_key"):
        config[k] = str(_node_config(run_dir).parent / config[k])
    cfg = tmp_path / "config.json"
    cfg.write_text(json.dumps(config))

    assert node_main(["--config", str(cfg)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("node: cannot start: ") and "coupon_bp" in err and "\n" not in err

    # the same through the real entry point: one line, no traceback
    cmd = [sys.executable, "-m", "node", "--config", str(cfg)]
    proc = subprocess.run(cmd, check=False, capture_output=True, text=True)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "coupon_bp" in proc.stderr


_BAD_CONFIG = [
    ("client_port", 70_000, "client_port"),
    ("tls_pinned", "a\x00b", "tls_pinned"),
    ("peers", {}, "peers"),
    ("log_level", "loud", "log_level"),
]


def test_the_node_refuses_a_bad_config_in_one_line(
    run_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for field, value, words in _BAD_CONFIG:
        config = json.loads(_node_config(run_dir).read_text())
        config[field] = value
        cfg = tmp_path / "config.json"
        cfg.write_text(json.dumps(config))
        assert node_main(["--config", str(cfg)]) == 2, field
        err = capsys.readouterr().err.strip()
        assert err.startswith("node: cannot start: ") and words in err and "\n" not in err


def test_the_node_refuses_unreadable_key_material_in_one_line(
    run_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = _node_config(run_dir).parent
    for field in ("signing_key", "tls_cert"):
        config = json.loads(_node_config(run_dir).read_text())
        for k in ("genesis", "data_dir", "signing_key", "tls_pinned", "tls_cert", "tls_key"):
            config[k] = str(base / config[k])
        garbage = tmp_path / f"{field}.pem"
        garbage.write_text("-----BEGIN NOTHING-----\n")
        garbage.chmod(0o600)
        config[field] = str(garbage)
        cfg = tmp_path / "config.json"
        cfg.write_text(json.dumps(config))
        assert node_main(["--config", str(cfg)]) == 2, field
        err = capsys.readouterr().err.strip()
        assert err.startswith("node: cannot start: ") and str(garbage) in err, field


def test_the_ledger_cli_refuses_a_bad_genesis_in_one_line(
    run_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = json.loads((run_dir / "genesis.json").read_text())
    cash = next(i for i, x in enumerate(good["instruments"]) if x["kind"] == "cash")
    bad = tmp_path / "genesis.json"
    bad.write_text(json.dumps(_with(good, ("instruments", cash, "coupon_freq"), 300)))
    receipt = tmp_path / "receipt.json"
    receipt.write_text("{}")
    code = ledger_main(["verify-receipt", "--genesis", str(bad), str(receipt)])
    err = capsys.readouterr().err
    assert code == 2 and "coupon_freq" in err and "Traceback" not in err
