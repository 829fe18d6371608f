"""``ledger console`` against a real 4-validator cluster (quorum 3): its JSON endpoints,
its live stream, and its pages in headless Chromium (Debian's /usr/bin/chromium driven by
Playwright; skipped with the reason when either is missing, never downloaded).

The console runs as its own process (``python -m client.cli console --port 0``), as a
user starts it; trades go in through the SDK. Waits for what another process does poll
with a bound (``wait_until``, Playwright's ``wait_for_selector``): nothing here sleeps a
fixed time. Screenshots land in the test's tmp dir (``console-*.png``).
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest

from client import (
    LedgerClient,
    RejectedError,
    Transactions,
    accept_dvp,
    load_key,
    propose_dvp,
    sign,
    terms_of,
)
from client.console._model import receipt_check
from devtools.cluster import kill_node, start_node
from devtools.demo.console import keep_up
from node import crypto
from node.genesis import DEMO_DUE_BOND, DEMO_RESERVE_CASH
from node.receipt import Receipt
from node.settlement import SignedTx, decode_body
from tests.cluster.harness import Cluster, running_cluster, wait_until
from tests.patience import HANG_S

pytestmark = pytest.mark.slow

CHROMIUM = "/usr/bin/chromium"
# Debian's Chromium as root in a sandbox with a closed network (docs/console.md).
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# A committed trade or a status change is on the page by then: 15 s (6 s in the known
# mutants' runs, where a mutant that hides it waits this out: tests/patience.py).
SHOWN_WITHIN_MS = round(1_500 * HANG_S)
STOPS_WITHIN_S = 1.5 * HANG_S  # the console, its open streams ended, likewise
CONSOLE_START_S = 20.0
BOND_HELD = 10_000_000  # demo genesis: every bank holds this many units of each bond
# What ``attested`` has the custodian and the cash issuer attest, then mints against.
CUSTODY_HEADROOM, BILLS, DEPOSITS = 100, 900_000, 100_000


@dataclass
class Console:
    url: str
    proc: subprocess.Popen[str]

    def get(self, path: str) -> Any:
        with urllib.request.urlopen(self.url + path.lstrip("/"), timeout=10) as r:
            return json.load(r)

    def post(self, path: str) -> Any:
        req = urllib.request.Request(self.url + path.lstrip("/"), data=b"", method="POST")
        with urllib.request.urlopen(req, timeout=15) as r:
            return json.load(r)

    def error(self, path: str) -> tuple[int, str]:
        """Status and ``error`` message of a request that must fail."""
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(self.url + path.lstrip("/"), timeout=10)
        return e.value.code, json.load(e.value)["error"]


def start_console(run_dir: Path, *extra: str) -> Console:
    """``ledger console --port 0`` as a process; its URL from the line it prints."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "client.cli", "--run-dir", str(run_dir), "console", "--port", "0",
         *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )  # fmt: skip
    assert proc.stdout is not None
    line = proc.stdout.readline()  # blocks until it listens, or exits (then: empty)
    if not line.startswith("console: http://"):
        proc.kill()
        raise AssertionError(f"the console did not start: {line}{proc.stdout.read()}")
    return Console(line.split()[1], proc)


def stop_console(c: Console) -> None:
    c.proc.terminate()
    c.proc.wait(timeout=10)


@dataclass
class Env:
    cluster: Cluster
    run_dir: Path
    console: Console
    client: LedgerClient

    def trade(self, seller: str, buyer: str, quantity: int) -> Receipt:
        """A DvP through the SDK's two-party flow; its receipt, settled or refused. Runs
        in a thread of its own: Playwright's sync API keeps an event loop running in this
        one, where the sync SDK client refuses to run."""
        with ThreadPoolExecutor(1) as pool:
            return pool.submit(self._trade, seller, buyer, quantity).result()

    def _trade(self, seller: str, buyer: str, quantity: int) -> Receipt:
        c, run = self.client, self.run_dir
        keys = {p: load_key(run / "participants" / f"{p}.key") for p in (seller, buyer)}
        dvp = c.tx.dvp(seller, buyer, self.cluster.demo.bonds[0], quantity, "USD.CASHCO", 99)
        signed = accept_dvp(propose_dvp(dvp, keys[seller], c.genesis), keys[buyer], c.genesis)
        try:
            return c.submit(signed)
        except RejectedError as e:
            return e.receipt


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    base = tmp_path_factory.mktemp("console")
    with running_cluster(base / "run", 4, 3) as cluster:
        console = start_console(base / "run")
        try:
            with LedgerClient.from_run_dir(base / "run", identity="AUDITOR") as client:
                yield Env(cluster, base / "run", console, client)
        finally:
            stop_console(console)


@pytest.fixture(scope="module")
def settled(env: Env) -> Receipt:
    r = env.trade("BANK01", "BANK02", 1_000)
    assert r.ok
    return r


@dataclass
class Attested:
    custody: int  # the lifecycle bond's attested custody
    cash_minted: int  # USD.RESERVED minted against its attested reserves


@pytest.fixture(scope="module")
def attested(env: Env) -> Attested:
    """Through the SDK: CSD attests the lifecycle bond's custody (its supply plus some),
    CASHCO attests bills and deposits behind USD.RESERVED and mints up to them. In a
    thread of its own, as ``Env.trade``."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(_attest, env.client, env.run_dir).result()


def _attest(c: LedgerClient, run: Path) -> Attested:
    as_of = int(time.time() * 1000) - 1_000  # the block's time may trail this clock
    doc = crypto.sha256(b"console statement")
    maturity = (date.today() + timedelta(days=30)).isoformat()
    t, g = Transactions(c.genesis), c.genesis
    _, (bond,) = c.attestations(DEMO_DUE_BOND)
    custody = bond.supply + CUSTODY_HEADROOM
    key = load_key(run / "participants" / "CSD.key")
    c.submit(sign(t.attest_custody("CSD", DEMO_DUE_BOND, custody, as_of, doc), key, genesis=g))
    key = load_key(run / "participants" / "CASHCO.key")
    bills = [("912797GL5", maturity, BILLS)]
    att = t.attest_reserves("CASHCO", DEMO_RESERVE_CASH, as_of, doc, DEPOSITS, bills)
    c.submit(sign(att, key, genesis=g))
    minted = BILLS + DEPOSITS
    c.submit(sign(t.issue(DEMO_RESERVE_CASH, "BANK01", minted, "CASHCO"), key, genesis=g))
    return Attested(custody, minted)


@pytest.fixture(scope="module")
def refused(env: Env) -> Receipt:
    r = env.trade("BANK03", "BANK04", BOND_HELD + 1)  # more than BANK03 holds
    assert r.code.name == "INSUFFICIENT_SECURITIES"
    return r


def seen(env: Env, tx_id: bytes) -> dict[str, Any] | None:
    """The transaction in the console's block list, if it is there."""
    for b in env.console.get("/api/blocks?limit=300")["blocks"]:
        for t in b["transactions"]:
            if t["tx_id"] == tx_id.hex():
                return dict(t)
    return None


# --- JSON endpoints ------------------------------------------------------------------------


def test_network_shows_every_validator_the_quorum_and_agreement(env: Env) -> None:
    doc = env.console.get("/api/network")
    assert (doc["n"], doc["q"]) == (4, 3)
    assert doc["tolerates"] == {"byzantine_for_safety": 1, "down_for_liveness": 1}
    assert [v["name"] for v in doc["validators"]] == ["node-00", "node-01", "node-02", "node-03"]
    assert all(v["up"] for v in doc["validators"]) and doc["up"] == 4 and doc["quorum_up"]
    assert doc["roots_agree"] is True
    assert doc["identity"] == "AUDITOR" and doc["observer"] is True
    assert {v["peers"] for v in doc["validators"]} == {3}


def test_a_settled_trade_is_listed_with_its_block_and_certificate(
    env: Env, settled: Receipt
) -> None:
    wait_until(lambda: seen(env, settled.tx_id) is not None, 15, "the trade in /api/blocks")
    t = seen(env, settled.tx_id)
    assert t is not None and (t["code"], t["kind"], t["height"]) == ("OK", "DVP", settled.height)
    block = env.console.get(f"/api/block/{settled.height}")
    assert set(block["signers"]) == set(settled.signers) and len(block["signers"]) >= 3
    assert block["results_proven"] is True  # its next block is committed (ADR 0026)
    assert settled.tx_id.hex() in [x["tx_id"] for x in block["transactions"]]


def test_a_trade_page_has_both_legs_and_its_receipt_verifies(env: Env, settled: Receipt) -> None:
    page = env.console.get(f"/api/trade/{settled.tx_id.hex()}")
    assert page["code"] == "OK" and page["height"] == settled.height
    bond = env.cluster.demo.bonds[0]
    assert page["legs"] == [
        {"leg": "delivery", "instrument": bond, "amount": 1_000, "from": "BANK01", "to": "BANK02"},
        {"leg": "payment", "instrument": "USD.CASHCO", "amount": 99, "from": "BANK02",
         "to": "BANK01"},
    ]  # fmt: skip
    check = env.console.post(f"/api/trade/{settled.tx_id.hex()}/verify")
    assert check["valid"] is True, check
    assert any("certified by" in p for p in check["proven"])


def test_the_offline_check_refuses_a_tampered_receipt(env: Env, settled: Receipt) -> None:
    """Negative control of the console's verify: a receipt whose result was changed, or
    whose certificate lost a signature, is reported invalid with the failed check."""
    genesis = env.client.genesis
    full = env.client.receipt(settled.tx_id)
    assert receipt_check(full, genesis)["valid"] is True
    doc = full.to_json()
    doc["code"] = "INSUFFICIENT_CASH"
    forged = receipt_check(Receipt.from_json(doc), genesis)
    assert forged["valid"] is False and forged["error"]
    cut = bytearray(full.certificate)
    cut[-1] ^= 1
    broken = receipt_check(Receipt.from_json({**full.to_json(), "certificate": _b64(cut)}), genesis)
    assert broken["valid"] is False


def _b64(data: bytes | bytearray) -> str:
    return base64.b64encode(bytes(data)).decode()


def test_a_refused_trade_shows_its_code_on_fails(env: Env, refused: Receipt) -> None:
    def listed() -> bool:
        return refused.tx_id.hex() in [r["tx_id"] for r in env.console.get("/api/fails")["recent"]]

    wait_until(listed, 15, "the refusal in /api/fails")
    doc = env.console.get("/api/fails")
    row = next(r for r in doc["recent"] if r["tx_id"] == refused.tx_id.hex())
    assert (row["code"], row["fail"], row["height"]) == ("INSUFFICIENT_SECURITIES", True,
                                                         refused.height)  # fmt: skip
    assert doc["by_code"]["INSUFFICIENT_SECURITIES"] >= 1
    assert any("INSUFFICIENT_SECURITIES" in b["codes"] for b in doc["buckets"])
    assert doc["pending"] == []


def test_positions_and_supply_follow_the_ledger(env: Env, settled: Receipt) -> None:
    doc = env.console.get("/api/positions")
    bond = env.cluster.demo.bonds[0]
    rows = {r["account"]: r["amounts"] for r in doc["positions"]}
    for bank in ("BANK01", "BANK02"):
        assert rows[bank] == env.client.balances(bank).amounts
    assert doc["supply_complete"] is True and doc["hidden"] == []
    assert doc["supply"][bond] == sum(r.get(bond, 0) for r in rows.values())
    assert doc["supply"][bond] == BOND_HELD * len(
        env.cluster.demo.banks
    )  # a DvP moves, never mints


def test_positions_show_custody_and_reserves_after_attestations(
    env: Env, attested: Attested
) -> None:
    doc = env.console.get("/api/attestations")
    assert doc["hidden"] == []
    due = next(c for c in doc["custody"] if c["bond"] == DEMO_DUE_BOND)
    assert (due["custody"], due["attested_by"], due["status"], due["breaks"]) == (
        attested.custody, "CSD", "OK", [])  # fmt: skip
    assert due["supply"] == attested.custody - CUSTODY_HEADROOM
    (cash,) = doc["reserves"]
    assert (cash["cash"], cash["supply"], cash["reserves"]) == (
        DEMO_RESERVE_CASH, attested.cash_minted, BILLS + DEPOSITS)  # fmt: skip
    assert (cash["bills"], cash["deposits"], cash["coverage_bp"]) == (BILLS, DEPOSITS, 10_000)
    assert cash["attested_by"] == "CASHCO" and all(r["pass"] for r in cash["rules"]), cash


def test_bad_requests_get_a_clear_error(env: Env) -> None:
    code, msg = env.console.error("/api/trade/xyz")
    assert code == 400 and "not a transaction id" in msg
    code, msg = env.console.error(f"/api/trade/{'00' * 32}")
    assert code == 404
    code, msg = env.console.error("/api/block/999999")
    assert code == 404
    code, msg = env.console.error("/static/..%2F__init__.py")
    assert code == 404 and "no such file" in msg


def test_a_port_in_use_is_one_clear_error(env: Env) -> None:
    port = env.console.url.rstrip("/").rsplit(":", 1)[1]
    r = subprocess.run(
        [sys.executable, "-m", "client.cli", "--run-dir", str(env.run_dir), "console", "--port",
         port],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )  # fmt: skip
    assert r.returncode == 1
    [line] = r.stderr.strip().splitlines()  # one line, as every ledger failure
    assert line.startswith(f"ledger: error: cannot listen on 127.0.0.1:{port}")


def test_the_live_stream_sends_each_new_block(env: Env) -> None:
    """Read /api/events until the block of a trade submitted after subscribing."""
    with urllib.request.urlopen(env.console.url + "api/events", timeout=15) as stream:
        assert stream.headers["Content-Type"] == "text/event-stream"
        r = env.trade("BANK05", "BANK06", 10)
        event = ""
        for raw in stream:
            line = raw.decode().rstrip("\n")
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: ") and event == "block":
                block = json.loads(line[6:])
                if r.tx_id.hex() in [t["tx_id"] for t in block["transactions"]]:
                    assert block["height"] == r.height
                    return
    raise AssertionError("the stream ended without the trade's block")


def test_a_console_as_a_bank_shows_only_what_the_bank_may_read(env: Env, settled: Receipt) -> None:
    """BANK05 is no party to ``settled``: its console lists no such transaction, and
    every other participant's balances are hidden (the API refuses them)."""
    mine = env.trade("BANK05", "BANK06", 7)
    bank = start_console(env.run_dir, "--as", "BANK05")
    try:
        wait_until(
            lambda: bank.get("/api/network").get("followed_height", 0) >= mine.height,
            15,
            "the bank's console to follow the chain",
        )
        assert bank.get("/api/network")["observer"] is False
        listed = {t["tx_id"] for b in bank.get("/api/blocks?limit=300")["blocks"]
                  for t in b["transactions"]}  # fmt: skip
        assert mine.tx_id.hex() in listed and settled.tx_id.hex() not in listed
        pos = bank.get("/api/positions")
        assert [r["account"] for r in pos["positions"]] == ["BANK05"]
        assert "BANK01" in pos["hidden"] and pos["supply_complete"] is False
        code, _ = bank.error(f"/api/trade/{settled.tx_id.hex()}")
        assert code == 403
        att = bank.get("/api/attestations")  # hidden, not an error
        assert {DEMO_DUE_BOND, DEMO_RESERVE_CASH} <= set(att["hidden"])
        assert (att["custody"], att["reserves"]) == ([], [])
    finally:
        stop_console(bank)


def test_demo_console_mode_serves_and_keeps_settling_until_stopped(env: Env) -> None:
    """``make demo CONSOLE=1``'s keep-up (devtools/demo/console.py) on this cluster: the
    console listens, trickled trades settle and show, and setting stop ends it."""
    started: dict[str, Any] = {}
    up = threading.Event()

    async def run() -> int:
        started["loop"], started["stop"] = asyncio.get_running_loop(), asyncio.Event()

        def ready(url: str) -> None:
            started["url"] = url
            up.set()

        return await keep_up(env.run_dir, env.cluster.demo, 0, stop=started["stop"], ready=ready)

    with ThreadPoolExecutor(1) as pool:
        done = pool.submit(asyncio.run, run())
        assert up.wait(CONSOLE_START_S), "the demo's console did not start"
        demo = Console(started["url"], env.console.proc)

        def trickled() -> int:
            return sum(
                1
                for b in demo.get("/api/blocks?limit=300")["blocks"]
                for t in b["transactions"]
                if t["kind"] == "DVP" and t["terms"]["quantity"] == 100_00 and t["code"] == "OK"
            )

        # A browser tab left open: stopping must end its stream, not wait for it.
        with urllib.request.urlopen(started["url"] + "api/events", timeout=STOPS_WITHIN_S) as tab:
            try:
                wait_until(lambda: trickled() >= 2, 15, "two trickled trades on its console")
            finally:  # stop it even when the wait failed, or the pool's exit waits forever
                started["loop"].call_soon_threadsafe(started["stop"].set)
            assert done.result(timeout=STOPS_WITHIN_S) >= 2
            assert tab.read() is not None  # the stream ended (EOF), it did not hang
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(started["url"], timeout=2)  # it stopped listening


# --- in the browser ------------------------------------------------------------------------


def _browser_missing() -> str | None:
    if not os.path.exists(CHROMIUM):
        return f"no browser: {CHROMIUM} is missing (apt-get install -y chromium; .ci/run does)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright package is missing (pip install -e '.[dev]')"
    return None


@pytest.fixture
def page(env: Env) -> Iterator[Any]:
    """A fresh browser per test: Playwright's sync API runs an event loop in this thread
    while it is open, and the module's synchronous SDK client refuses to run inside one,
    so no browser may outlive its test (whatever order the tests run in)."""
    missing = _browser_missing()
    if missing:
        pytest.skip(missing)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            pg = browser.new_page(viewport={"width": 1300, "height": 860})
            errors: list[str] = []
            pg.on("pageerror", lambda e: errors.append(str(e)))
            pg.goto(env.console.url + "#/network")
            pg.wait_for_selector("#live.on", timeout=SHOWN_WITHIN_MS)
            yield pg
            assert errors == [], f"script errors on the page: {errors}"
        finally:
            browser.close()


def test_browser_shows_a_trade_live(env: Env, page: Any, tmp_path: Path) -> None:
    page.goto(env.console.url + "#/blocks")
    page.wait_for_selector("#live-txs")
    r = env.trade("BANK02", "BANK03", 321)  # submitted while the page is open
    row = page.wait_for_selector(
        f'#live-txs tr[data-tx="{r.tx_id.hex()}"]', timeout=SHOWN_WITHIN_MS
    )
    assert row is not None and "OK" in row.inner_text() and "BANK02" in row.inner_text()
    page.screenshot(path=str(tmp_path / "console-blocks.png"), full_page=True)
    page.click(f'#live-txs tr[data-tx="{r.tx_id.hex()}"] a.mono')
    page.wait_for_selector("#legs")
    nonce = terms_of(decode_body(SignedTx.decode(r.transaction).body))["nonce"]
    assert f"{nonce}" in page.inner_text("#trade")  # 63 bits, exact: never through a float
    page.click("#verify")
    verdict = page.wait_for_selector("#verify-result b", timeout=SHOWN_WITHIN_MS)
    assert verdict is not None and verdict.inner_text() == "valid"
    page.screenshot(path=str(tmp_path / "console-trade.png"), full_page=True)
    page.goto(env.console.url + f"#/block/{r.height}")
    proof = page.wait_for_selector("#results-proof", timeout=SHOWN_WITHIN_MS)
    assert proof is not None and f"proven by block {r.height + 1}" in proof.inner_text()


def test_browser_shows_a_refused_trade_with_its_code(
    env: Env, page: Any, refused: Receipt, tmp_path: Path
) -> None:
    page.goto(env.console.url + "#/fails")
    row = page.wait_for_selector(f'#refusals tr[data-tx="{refused.tx_id.hex()}"]',
                                 timeout=SHOWN_WITHIN_MS)  # fmt: skip
    assert row is not None and "INSUFFICIENT_SECURITIES" in row.inner_text()
    assert page.inner_text('#fail-codes tr[data-code="INSUFFICIENT_SECURITIES"]')
    page.screenshot(path=str(tmp_path / "console-fails.png"), full_page=True)


def test_browser_shows_reserve_coverage_on_positions(
    env: Env, page: Any, attested: Attested, tmp_path: Path
) -> None:
    page.goto(env.console.url + "#/positions")
    cov = page.wait_for_selector(f'#reserves [data-cash="{DEMO_RESERVE_CASH}"] .coverage',
                                 timeout=SHOWN_WITHIN_MS)  # fmt: skip
    assert cov is not None and cov.inner_text() == "100.00%"
    assert page.get_attribute(f'#custody tr[data-bond="{DEMO_DUE_BOND}"]', "data-status") == "OK"
    page.screenshot(path=str(tmp_path / "console-positions.png"), full_page=True)


def test_browser_shows_a_killed_validator_red_and_back(env: Env, page: Any, tmp_path: Path) -> None:
    net = env.cluster.net
    page.goto(env.console.url + "#/network")
    page.wait_for_selector('tr[data-node="node-03"].up', timeout=SHOWN_WITHIN_MS)
    assert kill_node(net, 3)
    try:
        page.wait_for_selector('tr[data-node="node-03"].down', timeout=SHOWN_WITHIN_MS)
        assert page.inner_text('tr[data-node="node-03"] .state') == "down"
        assert page.inner_text("#up-count b") == "3 of 4"
        page.screenshot(path=str(tmp_path / "console-node-down.png"), full_page=True)
    finally:
        start_node(net, 3)
    page.wait_for_selector('tr[data-node="node-03"].up', timeout=2 * SHOWN_WITHIN_MS)
    assert page.inner_text("#up-count b") == "4 of 4"
    page.screenshot(path=str(tmp_path / "console-network.png"), full_page=True)
