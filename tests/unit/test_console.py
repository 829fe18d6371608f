"""The console's model and live-stream hub without a cluster (tests/cluster/test_console.py
runs them against real validators and a real browser): state-root agreement, quorum
arithmetic, the fails and throughput charts, the transaction index's limit, and the
bounds on live subscribers."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import shutil
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer, make_mocked_request

from client._async import (
    BackedView,
    Balances,
    BlockEvent,
    BlockTiming,
    BlockTx,
    BlockView,
    Endpoint,
    EndpointDown,
    NodeStatusView,
    TxStatus,
)
from client._cli_common import EXIT_USAGE
from client._errors import NotFoundError
from client._limits import CONSOLE_FAIL_BUCKET_MS, CONSOLE_TRADES_KEPT
from client._reference import Reference
from client.cli import main as cli_main
from client.console import ConsoleServer, Hub, is_loopback
from client.console._model import (
    ConsoleModel,
    backing_view,
    network_view,
    receipt_check,
    throughput,
    tolerance,
)
from client.console._server import dumps
from node import crypto
from node.core import Phase, QuorumCert, encode_qc
from node.settlement import (
    Bill,
    CustodyAttestation,
    Instrument,
    InstrumentKind,
    Participant,
    Registry,
    ReserveAttestation,
    ResultCode,
    Role,
    SignedTx,
    decode_body,
    tx_id,
)
from tests.chain_helpers import Chain
from tests.ledger_helpers import TxFactory, shared_net
from tests.patience import HANG_S
from tests.reserve_helpers import BILL_A, backed_net

NET = shared_net()
TXF = TxFactory(NET)


def status(i: int, height: int, root: bytes, leader: int = 1) -> NodeStatusView:
    ep = Endpoint(f"127.0.0.1:{7000 + i}", f"node-0{i}")
    return NodeStatusView(ep, "chain", f"v{i}", height, 0, leader, 4, 3, 3, 0, "", 1, root)


def down(i: int) -> EndpointDown:
    return EndpointDown(Endpoint(f"127.0.0.1:{7000 + i}", f"node-0{i}"), "UNAVAILABLE: refused")


def block(height: int, txs: list[tuple[bytes, ResultCode]], time_ms: int = 0) -> BlockView:
    qc = QuorumCert(Phase.COMMIT, 0, height, b"h" * 32, ((0, b"s" * 64), (2, b"s" * 64)))
    rows = tuple(
        BlockTx(i, SignedTx.decode(raw).tx_id, code, decode_body(SignedTx.decode(raw).body), raw,
                True)
        for i, (raw, code) in enumerate(txs)
    )  # fmt: skip
    return BlockView(height, b"h" * 32, time_ms, b"r" * 32, encode_qc(qc), rows)


def dvp(quantity: int = 5) -> bytes:
    return TXF.signed(TXF.dvp("BANK01", "BANK02", quantity, 7))


# --- the network page ---------------------------------------------------------------------


def test_validators_at_one_height_with_one_root_agree() -> None:
    doc = network_view([status(i, 5, b"a") for i in range(4)], NET.genesis, head=5)
    assert doc["roots_agree"] is True and doc["up"] == 4 and doc["quorum_up"] is True
    assert all(v["root_agrees"] for v in doc["validators"])
    assert doc["leader"] == 1 and doc["head"] == 5


def test_a_validator_with_another_root_at_the_same_height_is_marked() -> None:
    """Negative control of the agreement check: one differing root is flagged; a node
    merely behind (another height) is not."""
    doc = network_view(
        [status(0, 5, b"a"), status(1, 5, b"a"), status(2, 5, b"X"), status(3, 4, b"old")],
        NET.genesis,
        head=5,
    )
    assert doc["roots_agree"] is False
    assert [v["root_agrees"] for v in doc["validators"]] == [False, False, False, True]


def test_a_down_validator_is_down_and_quorum_counts_the_rest() -> None:
    doc = network_view([status(0, 5, b"a"), down(1), down(2), status(3, 5, b"a")], NET.genesis, 5)
    rows = doc["validators"]
    assert [v["up"] for v in rows] == [True, False, False, True]
    assert rows[1]["error"].startswith("UNAVAILABLE")
    assert doc["up"] == 2 and doc["quorum_up"] is False  # quorum 3 of 4


def test_a_halted_validator_is_down_with_its_reason() -> None:
    halted = dataclasses.replace(status(2, 5, b"a"), halted="storage error: disk full")
    doc = network_view([status(0, 5, b"a"), status(1, 5, b"a"), halted, down(3)], NET.genesis, 5)
    assert doc["validators"][2]["up"] is False
    assert doc["validators"][2]["halted"] == "storage error: disk full"
    assert doc["up"] == 2 and doc["quorum_up"] is False


def test_tolerance_is_the_documented_arithmetic() -> None:
    # docs/consensus.md: 26 validators, quorum 16 -> 5 Byzantine for safety, 10 down.
    assert tolerance(26, 16) == {"byzantine_for_safety": 5, "down_for_liveness": 10}
    assert tolerance(26, 18) == {"byzantine_for_safety": 9, "down_for_liveness": 8}
    assert tolerance(4, 3) == {"byzantine_for_safety": 1, "down_for_liveness": 1}


# --- blocks, trades and fails ------------------------------------------------------------


def test_a_block_lists_its_signers_and_each_transaction_with_its_code() -> None:
    m = ConsoleModel(NET.genesis)
    ok, bad = dvp(), dvp(10**15)
    doc = m.add_block(block(1, [(ok, ResultCode.OK), (bad, ResultCode.INSUFFICIENT_SECURITIES)]))
    assert doc["signers"] == [0, 2]
    assert [(t["kind"], t["code"]) for t in doc["transactions"]] == [
        ("DVP", "OK"),
        ("DVP", "INSUFFICIENT_SECURITIES"),
    ]
    assert doc["transactions"][0]["terms"]["seller"] == "BANK01"
    assert m.fails()["by_code"] == {"INSUFFICIENT_SECURITIES": 1}
    assert m.fails()["recent"][0]["tx_id"] == SignedTx.decode(bad).tx_id.hex()


def test_pending_trades_events_count_as_recycled_or_failed() -> None:
    """A pending trade's later OK event is a settlement after recycling; its
    FAILED_DEADLINE event is a fail, marked as an event, not as the trade's own result."""
    m = ConsoleModel(NET.genesis)
    done, late = b"d" * 32, b"l" * 32
    events = (BlockEvent(0, done, ResultCode.OK), BlockEvent(1, late, ResultCode.FAILED_DEADLINE))
    m.add_block(dataclasses.replace(block(4, []), events=events))
    f = m.fails()
    assert f["settled_after_recycling"] == 1
    assert f["recycled_recent"] == [{"height": 4, "time_ms": 0, "tx_id": done.hex()}]
    assert f["by_code"] == {"FAILED_DEADLINE": 1}
    assert f["recent"][0]["tx_id"] == late.hex() and f["recent"][0]["event"] is True


def test_fails_are_bucketed_by_block_time() -> None:
    m = ConsoleModel(NET.genesis)
    code = ResultCode.INSUFFICIENT_CASH
    m.add_block(block(1, [(dvp(), code)], time_ms=0))
    m.add_block(block(2, [(dvp(), code), (dvp(), ResultCode.OK)], time_ms=1))
    m.add_block(block(3, [(dvp(), code)], time_ms=CONSOLE_FAIL_BUCKET_MS))
    buckets = m.fails()["buckets"]
    assert buckets == [
        {"start_ms": 0, "codes": {"INSUFFICIENT_CASH": 2}},
        {"start_ms": CONSOLE_FAIL_BUCKET_MS, "codes": {"INSUFFICIENT_CASH": 1}},
    ]


def test_throughput_counts_transactions_per_second_of_block_time() -> None:
    t = throughput([(1_000, 3), (1_500, 2), (3_200, 1)])
    assert t["points"] == [[1_000, 5], [2_000, 0], [3_000, 1]]
    assert t["tps"] == 2.0
    assert throughput([]) == {"points": [], "tps": 0.0}


def test_the_transaction_index_keeps_the_latest() -> None:
    m = ConsoleModel(NET.genesis)
    raws = [dvp() for _ in range(CONSOLE_TRADES_KEPT + 3)]
    for h in range(0, len(raws), 1000):
        m.add_block(block(h + 1, [(r, ResultCode.OK) for r in raws[h : h + 1000]]))
    assert len(m.trades) == CONSOLE_TRADES_KEPT
    assert SignedTx.decode(raws[0]).tx_id.hex() not in m.trades
    assert SignedTx.decode(raws[-1]).tx_id.hex() in m.trades


def test_finality_percentiles_over_the_window() -> None:
    m = ConsoleModel(NET.genesis)
    m.add_finality({h: h for h in range(1, 101)})
    f = m.charts()["finality"]
    assert (f["p50"], f["p99"]) == (50, 99)


def test_integers_javascript_would_round_are_sent_as_strings() -> None:
    doc = {"nonce": 2**63 - 1, "legs": [2**53, 2**53 - 1, -(2**53)], "ok": True, "n": 4}
    assert dumps(doc) == (
        '{"nonce":"9223372036854775807","legs":["9007199254740992",9007199254740991,'
        '"-9007199254740992"],"ok":true,"n":4}'
    )


# --- custody and reserves on the Positions page -------------------------------------------

BACKED = backed_net()
T0 = BACKED.genesis.genesis_time_ms


def _custody(supply: int, custody: int) -> BackedView:
    att = CustodyAttestation(BACKED.bonds[0], custody, T0 + 1, b"d" * 32, 1, "CSD")
    return BackedView(BACKED.bonds[0], True, supply, (att,))


def _reserves(supply: int) -> BackedView:
    bill = Bill(BILL_A, "2026-03-01", 900)
    att = ReserveAttestation(BACKED.cash, T0 + 1, b"d" * 32, 1, "CASHCO", 100, (bill,))
    return BackedView(BACKED.cash, False, supply, (att,))


def test_positions_flag_a_custody_break_and_judge_reserves_by_the_report_rules() -> None:
    doc = backing_view(BACKED.genesis, 9, [_custody(2**60 + 1, 2**60), _reserves(1_000)], T0 + 2)
    (bond,) = doc["custody"]
    assert (bond["status"], bond["attested_by"], doc["breaks"]) == ("BREAK", "CSD", 1)
    assert bond["breaks"] == ["supply exceeds custody by 1"]
    (cash,) = doc["reserves"]
    assert (cash["coverage_bp"], cash["bills"], cash["deposits"]) == (10_000, 900, 100)
    assert all(r["pass"] for r in cash["rules"]) and doc["fails"] == 0
    assert doc["hidden"] == []
    assert f'"supply":"{2**60 + 1}"' in dumps(doc)  # past 2**53: a string, never rounded


def test_positions_flag_no_break_when_custody_covers_the_supply() -> None:
    """Negative control: the same bond with its supply within custody."""
    doc = backing_view(BACKED.genesis, 9, [_custody(2**60, 2**60), _reserves(1_001)], T0 + 2)
    (bond,) = doc["custody"]
    assert (bond["status"], bond["breaks"], doc["breaks"]) == ("OK", [], 0)
    (cash,) = doc["reserves"]  # and reserves one unit short fail their coverage rule
    assert [r["rule"] for r in cash["rules"] if not r["pass"]] == ["coverage >= 100%"]
    assert doc["fails"] == 1


def test_backed_instruments_the_node_left_out_are_listed_hidden() -> None:
    doc = backing_view(BACKED.genesis, 9, [], T0)
    assert doc["hidden"] == sorted([BACKED.bonds[0], BACKED.cash])
    assert (doc["custody"], doc["reserves"], doc["breaks"]) == ([], [], 0)


# --- the live stream's limits ------------------------------------------------------------


async def test_the_hub_refuses_subscribers_past_its_limit() -> None:
    hub = Hub(subscribers_max=2, queue_max=4)
    a, b = hub.subscribe(), hub.subscribe()
    assert a is not None and b is not None
    assert hub.subscribe() is None
    hub.unsubscribe(a)
    assert hub.subscribe() is not None


async def test_a_lagging_subscriber_is_closed_and_the_others_keep_receiving() -> None:
    hub = Hub(subscribers_max=4, queue_max=3)
    slow, fast = hub.subscribe(), hub.subscribe()
    assert slow is not None and fast is not None
    for i in range(3):
        hub.publish("block", {"height": i})
        await fast.get()
    hub.publish("block", {"height": 3})  # slow holds 3 already: closed
    assert hub.dropped == 1 and len(hub) == 1
    frames = [slow.get_nowait() for _ in range(4)]
    assert frames[-1] is None and all(f is not None for f in frames[:3])
    assert slow.qsize() == 0
    frame = await asyncio.wait_for(fast.get(), 1)
    assert frame == 'event: block\ndata: {"height":3}\n\n'


async def test_closing_the_hub_ends_every_stream() -> None:
    hub = Hub(subscribers_max=4, queue_max=2)
    full, idle = hub.subscribe(), hub.subscribe()
    assert full is not None and idle is not None
    hub.publish("block", {"height": 1})
    await idle.get()
    hub.publish("block", {"height": 2})  # full: 2 queued, at its limit but not dropped
    hub.close()
    assert len(hub) == 0
    assert [full.get_nowait() for _ in range(3)][-1] is None
    assert idle.get_nowait() is not None and idle.get_nowait() is None


@pytest.mark.parametrize(
    ("host", "loop"),
    [("127.0.0.1", True), ("::1", True), ("localhost", True), ("0.0.0.0", False),
     ("10.1.2.3", False), ("example.org", False)],
)  # fmt: skip
def test_loopback_hosts(host: str, loop: bool) -> None:
    assert is_loopback(host) is loop


# --- the server without a cluster -----------------------------------------------------------


class FakeClient:
    """What ConsoleServer uses of AsyncLedgerClient; ``status`` raises ``failure`` if set."""

    genesis = NET.genesis
    identity = "AUDITOR"

    def __init__(self, failure: Exception | None) -> None:
        self.failure = failure

    async def status(self) -> list[NodeStatusView | EndpointDown]:
        if self.failure is not None:
            raise self.failure
        return [status(i, 0, b"a") for i in range(4)]

    async def head(self) -> int:
        raise NotFoundError("no node in this test")  # the block stream retries each poll

    async def attestations(self) -> tuple[int, tuple[BackedView, ...]]:
        return 0, ()  # as for a bank: the node leaves out what it may not read

    async def timelines(
        self, first_height: int, last_height: int
    ) -> list[list[BlockTiming] | EndpointDown]:
        return [[] for _ in range(4)]  # no step times: no finality points

    async def aclose(self) -> None:
        pass


async def network_of(client: FakeClient) -> dict[str, object]:
    server = ConsoleServer(client, poll_s=0.01)  # type: ignore[arg-type]
    async with TestClient(TestServer(server.app())) as http:
        r = await asyncio.wait_for(http.get("/api/network"), HANG_S)
        assert r.status == 200
        doc: dict[str, object] = await r.json()
        return doc


async def test_a_feeding_task_that_dies_is_reported_not_left_silent() -> None:
    doc = await network_of(FakeClient(RuntimeError("boom")))
    assert "status poll stopped" in str(doc["follow_error"])
    assert "boom" in str(doc["follow_error"])


async def test_a_healthy_poll_reports_no_error() -> None:
    """Negative control: the same server with a status that answers."""
    doc = await network_of(FakeClient(None))
    assert doc["up"] == 4
    assert "stopped" not in str(doc["follow_error"])


async def test_live_streams_past_the_limit_get_503_with_a_reason() -> None:
    server = ConsoleServer(FakeClient(None), poll_s=0.01)  # type: ignore[arg-type]
    server.hub.subscribers_max = 1
    async with TestClient(TestServer(server.app())) as http:
        first = await asyncio.wait_for(http.get("/api/events"), 10)
        assert first.status == 200 and first.headers["Content-Type"] == "text/event-stream"
        second = await asyncio.wait_for(http.get("/api/events"), 10)
        assert second.status == 503
        assert "live streams are open already" in (await second.json())["error"]
        first.close()


def test_console_without_a_network_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli_main(["--run-dir", str(tmp_path), "console", "--port", "0"]) == EXIT_USAGE
    assert "no network in run directory" in capsys.readouterr().err


@pytest.mark.parametrize("port", ["-1", "65536", "http"])
def test_console_refuses_a_bad_port(port: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["console", "--port", port]) == EXIT_USAGE
    assert "is not a port" in capsys.readouterr().err


async def test_attestations_a_bank_may_not_read_are_hidden_not_an_error() -> None:
    client = FakeClient(None)
    client.genesis = BACKED.genesis  # type: ignore[misc]
    server = ConsoleServer(client, poll_s=0.01)  # type: ignore[arg-type]
    async with TestClient(TestServer(server.app())) as http:
        r = await asyncio.wait_for(http.get("/api/attestations"), 10)
        assert r.status == 200
        doc = await r.json()
    assert doc["hidden"] == sorted([BACKED.bonds[0], BACKED.cash])
    assert doc["now_ms"] == T0  # height 0: judged at genesis time, not the console's clock


class BlockClient(FakeClient):
    """A node that has no block at any height asked (a well-formed request reaches it)."""

    async def block(self, height: int) -> object:
        raise NotFoundError(f"no block {height}")


@pytest.mark.parametrize(
    ("path", "status", "said"),
    [
        ("/api/block/xyz", 400, "'xyz' is not a block height"),
        ("/api/block/-1", 400, "'-1' is not a block height"),
        ("/api/block/1_000", 400, "'1_000' is not a block height"),
        ("/api/block/18446744073709551616", 400, "is not a block height"),  # 2^64
        ("/api/blocks?limit=abc", 400, "'abc' is not a number of blocks"),
        ("/api/blocks?limit=-5", 400, "'-5' is not a number of blocks"),
        ("/api/block/7", 404, "no block 7"),  # the controls: well-formed, answered
        ("/api/block/18446744073709551615", 404, "no block 18446744073709551615"),
        ("/api/blocks?limit=2", 200, ""),
    ],
)
async def test_a_malformed_height_or_limit_is_400_saying_what_was_expected(
    path: str, status: int, said: str
) -> None:
    """Review 31: a height or limit that is no whole number answered 400 with Python's own
    words ("invalid literal for int() with base 10: 'xyz'"), one past 2^64 with
    protobuf's ("Value out of range"), and a negative height went to the node."""
    server = ConsoleServer(BlockClient(None), poll_s=0.01)  # type: ignore[arg-type]
    async with TestClient(TestServer(server.app())) as http:
        r = await asyncio.wait_for(http.get(path), 10)
        doc = await r.json()
    assert r.status == status, doc
    assert said in str(doc.get("error", "")), doc


# --- who may reach the console (DNS rebinding, cross-site requests) -------------------------

_TX = "ab" * 32


async def _get(server: ConsoleServer, path: str, **headers: str) -> tuple[int, dict[str, str]]:
    async with TestClient(TestServer(server.app())) as http:
        r = await asyncio.wait_for(http.get(path, headers=headers), 10)
        return r.status, dict(r.headers)


@pytest.mark.parametrize(
    ("host", "allowed", "status"),
    [
        ("evil.example:8080", (), 403),  # a name pointed at 127.0.0.1 by another site
        ("127.0.0.1.nip.example", (), 403),
        ("console.bank.example:8080", ("console.bank.example",), 200),  # --allow-host
        ("CONSOLE.bank.example", ("console.bank.example",), 200),
        ("127.0.0.1:8080", (), 200),
        ("[::1]:8080", (), 200),
        ("10.1.2.3", (), 200),
        ("localhost:8080", (), 200),
    ],
)
async def test_the_console_answers_only_to_its_address_not_a_name_another_site_chose(
    host: str, allowed: tuple[str, ...], status: int
) -> None:
    """DNS rebinding: a page of evil.example, open in the operator's browser, points its
    name at 127.0.0.1 and would read the auditor's console as its own origin. Its requests
    carry its name in Host, and get 403 with why; an IP address, localhost and the names
    given with --allow-host are answered (the controls)."""
    server = ConsoleServer(FakeClient(None), poll_s=0.01, allowed_hosts=frozenset(allowed))  # type: ignore[arg-type]
    for path in ("/", "/api/network", "/api/events"):
        got, _ = await _get(server, path, Host=host)
        assert got == status, path


async def test_a_request_from_another_site_may_not_post() -> None:
    """Cross-site request forgery: a form or fetch of another origin posting to the
    console is refused before the handler runs; the console's own page (the same origin)
    reaches it (here refused 400 for its bad id, by the handler)."""
    server = ConsoleServer(FakeClient(None), poll_s=0.01)  # type: ignore[arg-type]
    async with TestClient(TestServer(server.app())) as http:
        own = f"http://{http.host}:{http.port}"
        for origin, status, said in (
            ("http://evil.example", 403, "another site"),
            ("null", 403, "another site"),
            (own, 400, "not a transaction id"),
        ):
            r = await asyncio.wait_for(
                http.post("/api/trade/zz/verify", headers={"Origin": origin}), 10
            )
            assert (r.status, said in (await r.json())["error"]) == (status, True), origin


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({"Sec-Fetch-Site": "cross-site"}, 403),  # an <img> or no-cors fetch: no Origin sent
        ({"Sec-Fetch-Site": "same-site"}, 403),  # a page on another port of this machine
        ({"Origin": "http://evil.example"}, 403),  # an EventSource or fetch of another site
        ({"Origin": "null"}, 403),  # a sandboxed frame, a file: page
        ({"Sec-Fetch-Site": "same-origin"}, 200),  # the console's own pages (the controls)
        ({"Sec-Fetch-Site": "none"}, 200),  # the address bar, a bookmark
        ({}, 200),  # curl, a script: no page behind the request
    ],
    ids=["cross-site", "same-site", "other-origin", "null-origin", "same-origin", "typed",
         "no-page"],
)  # fmt: skip
async def test_a_page_of_another_site_may_not_get_anything_either(
    headers: dict[str, str], status: int
) -> None:
    """Only a POST was refused from another site: a page of any site open in the operator's
    browser could GET /api/events until every live-stream slot was its own (the console's
    own tabs then got 503), or have the console read every participant's balances per GET
    of /api/positions. Every method is refused when the browser says the request comes
    from another site, by Sec-Fetch-Site or an Origin; the console's own pages, the
    address bar and a request from no page (curl) are answered."""
    server = ConsoleServer(FakeClient(None), poll_s=0.01)  # type: ignore[arg-type]
    async with TestClient(TestServer(server.app())) as http:
        own = {"Origin": f"http://{http.host}:{http.port}"}  # control: the same origin
        for path in ("/api/events", "/api/network", "/"):
            for sent in (headers, own) if status == 200 else (headers,):
                r = await asyncio.wait_for(http.get(path, headers=sent), HANG_S)
                assert r.status == status, (path, sent)
                if status == 403:
                    assert "another site" in (await r.json())["error"]
                r.close()


async def test_every_answer_forbids_framing_sniffing_and_foreign_scripts() -> None:
    server = ConsoleServer(FakeClient(None), poll_s=0.01)  # type: ignore[arg-type]
    for path, host in (("/", "127.0.0.1"), ("/api/blocks", "127.0.0.1"), ("/", "evil.example")):
        _, headers = await _get(server, path, Host=host)
        assert headers["X-Frame-Options"] == "DENY"
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert "frame-ancestors 'none'" in headers["Content-Security-Policy"]
        assert "default-src 'self'" in headers["Content-Security-Policy"]


async def test_positions_list_the_participants_and_instruments_governance_added() -> None:
    """The Positions page lists participants and instruments as the ledger's reference data
    has them, not genesis's alone: a bank and a cash token k admins added show, with the
    token's supply. (The page listed genesis's and left both out.)"""
    g = NET.genesis
    bank = Participant("BANK99", crypto.SigningKey(b"\x07" * 32).public_key,
                       frozenset({Role.TRADER}), 2)  # fmt: skip
    eur = Instrument("EUR.GOVCASH", InstrumentKind.CASH, "CASHCO", "EUR")
    registry = Registry.from_values(g, (*g.participants, bank), (*g.instruments, eur))
    ref = Reference(3, registry, {}, g.admins, g.admin_threshold)

    class Governed(FakeClient):
        async def reference(self) -> Reference:
            return ref

        async def balances(self, account: str) -> Balances:
            return Balances(account, 3, {eur.id: 5} if account == bank.id else {})

    server = ConsoleServer(Governed(None), poll_s=0.01)  # type: ignore[arg-type]
    async with TestClient(TestServer(server.app())) as http:
        r = await asyncio.wait_for(http.get("/api/positions"), 10)
        assert r.status == 200
        doc = await r.json()
    assert doc["positions"] == [{"account": bank.id, "amounts": {eur.id: 5}}]
    assert eur.id in {i["id"] for i in doc["instruments"]} and doc["supply"][eur.id] == 5


class Gated(FakeClient):
    """A FakeClient whose reads of the positions wait for ``gate``, counted."""

    def __init__(self) -> None:
        super().__init__(None)
        self.gate, self.asked = asyncio.Event(), asyncio.Event()
        self.references = self.balance_reads = 0

    async def reference(self) -> Reference:
        self.references += 1
        self.asked.set()
        await self.gate.wait()
        g = NET.genesis
        return Reference(3, Registry.from_values(g, g.participants, g.instruments), {},
                         g.admins, g.admin_threshold)  # fmt: skip

    async def balances(self, account: str) -> Balances:
        self.balance_reads += 1
        return Balances(account, 3, {})


async def test_concurrent_positions_requests_share_one_read_per_participant() -> None:
    """Each GET /api/positions made one GetBalances call per participant, so a client
    repeating it multiplied the validators' reads. Requests that come while a read is
    under way wait for it and take its answer, and the answer stands until the console
    follows a new block: five concurrent requests and a sixth after them make one read
    per participant; after the next certified block, a request reads again (the
    control)."""
    client = Gated()
    server = ConsoleServer(client, poll_s=0.01)  # type: ignore[arg-type]
    server.model.head = 7  # what the block stream followed, certified
    request = make_mocked_request("GET", "/api/positions")
    answers = [asyncio.create_task(server._positions(request)) for _ in range(5)]
    # Set by the first request's read; the other four started in the same turn of the loop.
    await asyncio.wait_for(client.asked.wait(), HANG_S)
    client.gate.set()
    bodies = {r.text for r in await asyncio.wait_for(asyncio.gather(*answers), HANG_S)}
    await server._positions(request)
    once = len(NET.genesis.participants)
    assert (client.references, client.balance_reads, len(bodies)) == (1, once, 1)
    server.model.head = 8
    await server._positions(request)
    assert (client.references, client.balance_reads) == (2, 2 * once)


# --- a lying validator's status -------------------------------------------------------------


class Lying(FakeClient):
    """Validator 0 claims height 2**63 in its status; the certified chain, followed
    through ``blocks``, is ``height`` blocks long (``grow`` adds more). The timelines
    asked for are recorded."""

    def __init__(self, height: int) -> None:
        super().__init__(None)
        self.height, self.grown = height, asyncio.Event()
        self.timed: list[tuple[int, int]] = []
        self.timed_more = asyncio.Event()

    def grow(self, height: int) -> None:
        self.height = height
        self.grown.set()

    async def status(self) -> list[NodeStatusView | EndpointDown]:
        return [status(0, 2**63, b"a"), *(status(i, self.height, b"a") for i in range(1, 4))]

    async def head(self) -> int:
        return self.height

    async def blocks(self, start: int) -> AsyncIterator[BlockView]:
        h = start
        while True:
            while h <= self.height:
                yield block(h, [])
                h += 1
            self.grown.clear()
            await self.grown.wait()

    async def timelines(
        self, first_height: int, last_height: int
    ) -> list[list[BlockTiming] | EndpointDown]:
        self.timed.append((first_height, last_height))
        self.timed_more.set()
        return [[] for _ in range(4)]

    async def timed_to(self, height: int) -> list[int]:
        """Every height whose timelines were asked for, once the poll asked up to ``height``."""
        while not any(last >= height for _, last in self.timed):
            self.timed_more.clear()
            await self.timed_more.wait()
        return sorted(h for first, last in self.timed for h in range(first, last + 1))


async def test_a_validator_claiming_height_2_63_does_not_freeze_the_finality_chart() -> None:
    """The status poll asked timelines up to the highest height any validator reported:
    one validator claiming 2**63 made it ask for heights 2**63 - 199 to 2**63 once, then
    never again for a real block, and the Network page's head said 2**63. The poll now
    goes as far as the certified head the block stream followed, each height once, and
    the claim shows only in that validator's own row."""
    client = Lying(3)
    server = ConsoleServer(client, poll_s=0.01)  # type: ignore[arg-type]
    async with TestClient(TestServer(server.app())) as http:
        assert await asyncio.wait_for(client.timed_to(3), HANG_S) == [1, 2, 3]
        client.grow(5)
        assert await asyncio.wait_for(client.timed_to(5), HANG_S) == [1, 2, 3, 4, 5]
        doc = await (await asyncio.wait_for(http.get("/api/network"), HANG_S)).json()
    assert doc["head"] == 5
    assert [v["height"] for v in doc["validators"]] == [str(2**63), 5, 5, 5]


# --- a receipt without its result proof (ADR 0024) -------------------------------------------


async def test_a_trade_without_its_result_proof_is_shown_included_not_final() -> None:
    """The trade page took any receipt as COMMITTED, and the offline check said only "its
    result is not proven yet". Without its result proof a receipt shows that this copy is
    in a committed block, not that the ledger recorded the trade (a copy signed with a key
    governance rotated out is included and refused): the page says the SDK's INCLUDED and
    the check lists "NOT final yet". Control: with the proof, COMMITTED and certified."""
    chain = Chain(NET)
    raw = TXF.signed(TXF.transfer())
    chain.commit([raw])
    chain.commit([])
    tid = tx_id(SignedTx.decode(raw).body)
    proven = chain.node().receipt(tid)
    assert proven is not None and proven.final
    unproven = dataclasses.replace(proven, result_proof=None)

    class Traded(FakeClient):
        answer: TxStatus

        async def transaction(self, tx_id: bytes) -> TxStatus:
            return self.answer

    client = Traded(None)
    server = ConsoleServer(client, poll_s=0.01)  # type: ignore[arg-type]
    async with TestClient(TestServer(server.app())) as http:
        for receipt, state in ((unproven, "INCLUDED"), (proven, "COMMITTED")):
            client.answer = TxStatus(tid, state, receipt)  # type: ignore[arg-type]
            r = await asyncio.wait_for(http.get(f"/api/trade/{tid.hex()}"), 10)
            assert r.status == 200
            assert (await r.json())["state"] == state
    check = receipt_check(unproven, NET.genesis)
    assert check["valid"] is True and check["proven"][-1].startswith("NOT final yet")
    assert receipt_check(proven, NET.genesis)["proven"][-1].startswith("its result OK")


# --- the pages' JavaScript under Node.js ------------------------------------------------------

APP_JS = Path(__file__).resolve().parents[2] / "client" / "console" / "static" / "app.js"
# Runs app.js (an ES module of the browser) as a function body, its import of charts.js and
# its start() cut out and the browser's globals stubbed, and prints what time() and day()
# make of each value of argv[2] (a JavaScript array), or the error either throws.
RUN_TIME_HELPERS = r"""
const fs = require("fs");
const src = fs.readFileSync(process.argv[1], "utf8")
  .replace(/^import .* from "\/static\/charts\.js";$/m, "")
  .replace(/^start\(\);$/m, "");
const globals = { document: { getElementById: () => ({}) }, window: {}, location: { hash: "" } };
const load = new Function(...Object.keys(globals), `"use strict";${src}\nreturn { time, day };`);
const { time, day } = load(...Object.values(globals));
const out = eval(process.argv[2]).map((v) => {
  try { return [time(v), day(v)]; } catch (e) { return [`${e.name}: ${e.message}`, ""]; }
});
console.log(JSON.stringify(out));
"""


@pytest.mark.serial  # starts a child process (tests/isolation.py)
def test_times_outside_the_date_range_show_a_dash_not_an_empty_page() -> None:
    """app.js's time() and day() made a Date of any number: a pending trade's deadline of
    2**64 - 1 ms (sent as a string: past 2**53) threw RangeError from toISOString, and the
    whole Fails page showed only the error. Beyond Date's range (8.64e15 ms either side of
    1970), not finite, or not a number, they show "-"; dates within it, to the boundary,
    as before (the controls)."""
    node = shutil.which("node")
    if node is None:
        pytest.skip("no Node.js: node is missing (apt-get install -y nodejs)")
    src = APP_JS.read_text()
    assert 'from "/static/charts.js";' in src and "\nstart();" in src  # what the runner cuts
    cases = {
        "0": ["1970-01-01 00:00:00.000", "1970-01-01"],
        "1767225600123": ["2026-01-01 00:00:00.123", "2026-01-01"],
        "-8640000000000000": ["-271821-04-20 00:00:00.000", "-271821-04-20"],
        "8640000000000000": ["+275760-09-13 00:00:00.000", "+275760-09-13"],
        "8640000000000001": ["-", "-"],
        "-8640000000000001": ["-", "-"],
        '"18446744073709551615"': ["-", "-"],  # 2**64 - 1, as js_safe sends it
        "1e300": ["-", "-"],
        "NaN": ["-", "-"],
        "Infinity": ["-", "-"],
        "null": ["-", "-"],
    }
    r = subprocess.run(
        [node, "-e", RUN_TIME_HELPERS, str(APP_JS), f"[{', '.join(cases)}]"],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert dict(zip(cases, json.loads(r.stdout), strict=True)) == cases
