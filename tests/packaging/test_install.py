"""The packages as a bank's developer and an operator get them (issue 16 item 1).

From a copy of the checkout as a fresh clone has it (no generated code): ``python -m
build`` makes the sdist and, from it, the wheel; the wheel goes into a clean virtualenv
under the test's tmp dir, outside the checkout, without the validator extra; that
virtualenv's SDK and ``ledger`` command then settle a DvP on a real 4-validator cluster
(which the harness starts from this checkout). ``pip install '<clone>[validator]'``, the
from-source path with the build hook in an isolated build, gives a validator that starts
from that virtualenv and exports its version.
Installs are offline, from the wheelhouse ``make setup`` fills.
"""

from __future__ import annotations

import json
import subprocess
import tarfile
import textwrap
import urllib.request
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from node import __version__
from tests.cluster.harness import generate, running_cluster, wait_until
from tests.packaging.dist import (
    ROOT,
    VALIDATOR_MODULES,
    WIRE_MODULES,
    build_dists,
    clean_env,
    copy_checkout,
    dev_tool_files,
    install,
    make_venv,
    missing_wire_modules,
    run,
    sdist_files,
    wheel_files,
)

pytestmark = pytest.mark.slow


@dataclass
class Installed:
    base: Path
    src: Path
    sdist: Path
    wheel: Path
    bin: Path  # the SDK-only virtualenv's bin/

    def ledger(self, *argv: str | Path) -> str:
        return run([self.bin / "ledger", *argv], cwd=self.base)

    def python(self, code: str) -> str:
        return run([self.bin / "python", "-c", textwrap.dedent(code)], cwd=self.base)


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Installed]:
    base = tmp_path_factory.mktemp("install")
    src = copy_checkout(base / "clone")
    assert not list((src / "node" / "wire").glob("*_pb2*")), "the copy must be as cloned"
    sdist, wheel = build_dists(src, base / "dist")
    bin_dir = make_venv(base / "venv")
    install(bin_dir, wheel)
    yield Installed(base, src, sdist, wheel, bin_dir)


def test_the_build_generates_the_wire_code_and_the_sdist_carries_the_proto(
    installed: Installed,
) -> None:
    assert missing_wire_modules(installed.wheel) == []
    with zipfile.ZipFile(installed.wheel) as z:
        built = z.read("node/wire/ledger_pb2.py")
    # `make setup` generated the checkout's copy from the same proto with the same protoc.
    assert built == (ROOT / WIRE_MODULES[0]).read_bytes(), "stale node/wire: run make setup"
    with tarfile.open(installed.sdist) as t:
        names = {n.split("/", 1)[1] for n in t.getnames() if "/" in n}
    protos = {"proto/ledger/v1/ledger.proto", "proto/ledger/v1/peer.proto"}
    assert {*protos, "proto/generate.py", "setup.py"} <= names
    assert not [n for n in names if "_pb2" in n]


def test_missing_wire_modules_fires_on_a_wheel_without_them(
    installed: Installed, tmp_path: Path
) -> None:
    """Negative control: the same wheel with ledger_pb2.py left out."""
    crippled = tmp_path / installed.wheel.name
    with zipfile.ZipFile(installed.wheel) as z, zipfile.ZipFile(crippled, "w") as out:
        for item in z.infolist():
            if item.filename != WIRE_MODULES[0]:
                out.writestr(item, z.read(item))
    assert missing_wire_modules(crippled) == [WIRE_MODULES[0]]


def test_neither_the_wheel_nor_the_sdist_carries_a_dev_tool(installed: Installed) -> None:
    wheel, sdist = wheel_files(installed.wheel), sdist_files(installed.sdist)
    assert dev_tool_files(wheel) == []
    assert dev_tool_files(sdist) == []
    # ... while the copy they were built from has the dev tools (so they were left out).
    assert (installed.src / "devtools" / "demo" / "run.py").is_file()
    assert "node/runtime/_server.py" in wheel and "client/cli.py" in wheel


def test_dev_tool_files_fires_on_a_wheel_with_one(installed: Installed, tmp_path: Path) -> None:
    """Negative control: the same wheel with a dev tool at its new and its old places."""
    planted = tmp_path / installed.wheel.name
    extra = ["devtools/demo/run.py", "node/demo.py", "node/bench/load.py", "node/netgen.py"]
    with zipfile.ZipFile(installed.wheel) as z, zipfile.ZipFile(planted, "w") as out:
        for item in z.infolist():
            out.writestr(item, z.read(item))
        for name in extra:
            out.writestr(name, "")
    assert dev_tool_files(wheel_files(planted)) == sorted(extra)


def test_the_sdk_installs_without_the_validator_extra(installed: Installed) -> None:
    out = installed.python(
        f"""
        import importlib.util, json, sys
        import client, client.cli
        missing = [m for m in {VALIDATOR_MODULES!r} if importlib.util.find_spec(m) is None]
        print(json.dumps({{"file": client.__file__, "version": client.__version__,
                           "missing": missing, "peer": "node.wire.peer_pb2" in sys.modules}}))
        """
    )
    doc = json.loads(out)
    # Imported from the virtualenv, not from the checkout.
    assert Path(doc["file"]).is_relative_to(installed.base / "venv")
    assert doc["version"] == __version__
    assert doc["missing"] == list(VALIDATOR_MODULES)
    assert doc["peer"] is False  # the validators' Peer service is no part of the SDK (ADR 0020)
    assert installed.ledger("--version") == f"ledger {__version__}\n"
    assert installed.ledger("--help").startswith("usage: ledger")


def test_the_installed_cli_and_sdk_settle_a_dvp_on_a_cluster(installed: Installed) -> None:
    work = installed.base / "work"
    work.mkdir()
    with running_cluster(installed.base / "run", 4, 3):
        run_dir = installed.base / "run"
        status = json.loads(installed.ledger("--run-dir", run_dir, "status", "--json"))
        assert status, status
        trade, signed, receipt = work / "trade.json", work / "signed.json", work / "receipt.json"
        installed.ledger(
            "--run-dir", run_dir, "sign", "dvp", "--seller", "BANK01", "--buyer", "BANK02",
            "--bond", "US91282CJK72", "--quantity", "1000000", "--cash", "USD.CASHCO",
            "--amount", "998750", "--out", trade,
        )  # fmt: skip
        installed.ledger(
            "--run-dir", run_dir, "cosign", trade, "--expect-quantity", "1000000",
            "--expect-amount", "998750", "--out", signed,
        )  # fmt: skip
        installed.ledger("--run-dir", run_dir, "submit", "dvp", signed, "--receipt-out", receipt)
        installed.ledger("--run-dir", run_dir, "verify-receipt", receipt)
        assert json.loads(receipt.read_text())["code"] == "OK"
        out = installed.python(
            f"""
            from client import LedgerClient, accept_dvp, load_key, propose_dvp, verify_receipt
            run = {str(run_dir)!r}
            with LedgerClient.from_run_dir(run, identity="BANK04") as ledger:
                trade = ledger.tx.dvp(seller="BANK03", buyer="BANK04", bond="US912797GL51",
                                      quantity=2_500_000, cash="USD.CASHCO", amount=2_478_000)
                offer = propose_dvp(trade, load_key(run + "/participants/BANK03.key"),
                                    ledger.genesis)
                signed = accept_dvp(offer, load_key(run + "/participants/BANK04.key"),
                                    ledger.genesis)
                receipt = ledger.submit(signed)
                verify_receipt(receipt, run + "/genesis.json")
                print(receipt.code.name)
            """
        )
        assert out == "OK\n"


@pytest.fixture(scope="module")
def validator_bin(installed: Installed) -> Path:
    """`pip install '<clone>[validator]'`: the from-source path, its build hook run in an
    isolated build (setuptools and grpcio-tools from the wheelhouse)."""
    bin_dir = make_venv(installed.base / "validator-venv")
    install(bin_dir, f"{installed.src}[validator]")
    return bin_dir


def test_pip_install_from_source_with_the_validator_extra(
    installed: Installed, validator_bin: Path
) -> None:
    code = "import node.runtime, node.store; print(node.store.LmdbStore)"
    out = run([validator_bin / "python", "-c", code], cwd=installed.base)
    assert out == "<class 'node.store._lmdb.LmdbStore'>\n"
    version = run([validator_bin / "ledger-node", "--version"], cwd=installed.base)
    assert version == f"ledger-node {__version__} (code {_installed_digest(validator_bin)})\n"


def _installed_digest(validator_bin: Path) -> str:
    """The code digest of the validator installed in ``validator_bin``'s virtualenv."""
    code = "from node._code import code_digest; print(code_digest())"
    digest = run([validator_bin / "python", "-c", code], cwd=validator_bin.parent).strip()
    assert len(digest) == 16 and int(digest, 16) >= 0
    return digest


def test_the_installed_validator_runs_and_exports_its_version(
    installed: Installed, validator_bin: Path
) -> None:
    net = generate(installed.base / "solo", 4, 3)
    node = net.nodes[0]
    url = f"http://{node.host}:{node.metrics_port}/metrics"
    digest = _installed_digest(validator_bin)
    build_info = f'ledger_build_info{{code="{digest}",version="{__version__}"}} 1.0'
    log = installed.base / "solo-node.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [validator_bin / "ledger-node", "--config", node.config],
            cwd=installed.base,  # outside the checkout: only the virtualenv's node exists
            env=clean_env(),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_until(lambda: build_info in _scrape(url), 60, f"{build_info} at {url}")
        assert proc.poll() is None, log.read_text()
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def _scrape(url: str) -> list[str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return list(resp.read().decode().splitlines())
    except OSError:  # not listening yet
        return []
