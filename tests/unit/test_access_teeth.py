"""Teeth for the client port's identity and access rules (session 22, mutation sweep D):
node/access.py, node/runtime/_access.py (the Gate) and node/runtime/_reads.py (the block
read budget). Each test here fails on a hand-made mutant that the earlier tests let
through (tests/mutation/known.py, "Session 22: sweep D"), and passes on the code as it
is; each shows the rule both ways, the case it allows beside the case it refuses.
"""

from __future__ import annotations

import dataclasses
import struct

import pytest

from node import crypto, tags
from node.access import (
    METADATA_NONCE,
    METADATA_SIGNATURE,
    METADATA_TIME,
    AccessError,
    Caller,
    may_read_account,
    may_read_attestations,
    may_read_holders,
    may_read_pending,
    may_read_reference,
    may_read_repo,
    may_read_tx,
    parse_claim,
    request_payload,
    signed_metadata,
    tx_readers,
    verify_claim,
)
from node.config import REQUEST_NONCE_BYTES_MAX
from node.runtime._access import Gate
from node.runtime._reads import ReadBudget
from node.settlement import Registry, Role
from tests.chain_helpers import Chain
from tests.gov_helpers import add_participant
from tests.gov_helpers import signed as gov_signed
from tests.ledger_helpers import TxFactory, shared_net
from tests.life_helpers import LifeTx, life_net

NET = shared_net()
G = NET.genesis
M = "/ledger.v1.Ledger/GetBalances"
NODE = "val00"  # the validator (genesis id) each call here is signed for
T0 = 1_800_000_000_000
SKEW = 1_000


def _md(
    pid: str = "BANK01", *, time_ms: int = T0, nonce: bytes = b"n" * 16, request: bytes = b"req"
) -> tuple[tuple[str, str], ...]:
    key = NET.participant_keys[pid]
    return signed_metadata(
        key, pid, G.chain_id, M, request, node=NODE, time_ms=time_ms, nonce=nonce
    )


def _with(md: tuple[tuple[str, str], ...], key: str, value: str) -> tuple[tuple[str, str], ...]:
    return tuple((k, value if k == key else v) for k, v in md)


def _verify(md: tuple[tuple[str, str], ...]) -> Caller:
    return verify_claim(parse_claim(md), Registry.at_genesis(G), NODE, M, b"req")


# --- the signed request ----------------------------------------------------------------------


def test_a_nonce_longer_than_the_limit_is_refused() -> None:
    """The nonce memory is sized for nonces of at most REQUEST_NONCE_BYTES_MAX bytes
    (node/config.py): a longer one would let a caller fill it many times faster."""
    ok = parse_claim(_md(nonce=b"x" * REQUEST_NONCE_BYTES_MAX))  # control: the limit itself
    assert len(ok.nonce) == REQUEST_NONCE_BYTES_MAX
    for size in (REQUEST_NONCE_BYTES_MAX + 1, 255):
        with pytest.raises(AccessError, match="nonce"):
            parse_claim(_md(nonce=b"x" * size))


@pytest.mark.parametrize(
    ("field", "value"),
    [(METADATA_TIME, str(T0 + 1)), (METADATA_NONCE, (b"m" * 16).hex())],
)
def test_the_signature_covers_the_time_and_the_nonce(field: str, value: str) -> None:
    """Whoever sees one signed call must not re-date it (to replay it after its nonce
    aged out of the gate's memory) nor give it a fresh nonce (to replay it at once)."""
    md = _md()
    assert _verify(md).participant == "BANK01"  # control: as signed, it verifies
    with pytest.raises(AccessError, match="does not verify"):
        _verify(_with(md, field, value))


def test_a_captured_call_with_a_fresh_nonce_is_not_taken_by_the_gate() -> None:
    now = [T0]
    gate = Gate(lambda: Registry.at_genesis(G), lambda: now[0], NODE, skew_ms=SKEW)
    md = _md()
    gate.admit(M, b"req", md)
    with pytest.raises(AccessError, match="does not verify"):
        gate.admit(M, b"req", _with(md, METADATA_NONCE, (b"m" * 16).hex()))
    gate.admit(M, b"req", _md(nonce=b"m" * 16))  # control: the signer's own fresh call


def test_a_request_signature_is_bound_to_its_purpose_tag() -> None:
    """A signature by the participant's key over the same fields without tags.REQUEST
    (bytes it may sign for another purpose) is not a request signature."""
    chain, to, who, name = G.chain_id.encode(), NODE.encode(), b"BANK01", M.encode()
    nonce = b"n" * 16
    untagged = b"".join(
        (
            struct.pack(">H", len(chain)),
            chain,
            struct.pack(">H", len(to)),
            to,
            struct.pack(">H", len(who)),
            who,
            struct.pack(">H", len(name)),
            name,
            crypto.sha256(b"req"),
            struct.pack(">QB", T0, len(nonce)),
            nonce,
        )
    )
    payload = request_payload(
        G.chain_id, M, b"req", node=NODE, participant="BANK01", time_ms=T0, nonce=nonce
    )
    assert payload == tags.REQUEST + untagged
    md = _md()
    _verify(md)  # control
    forged = NET.participant_keys["BANK01"].sign(untagged).hex()
    with pytest.raises(AccessError, match="does not verify"):
        _verify(_with(md, METADATA_SIGNATURE, forged))


def _payload(chain: str, node: str, method: str, participant: str = "P") -> bytes:
    return request_payload(
        chain, method, b"req", node=node, participant=participant, time_ms=T0, nonce=b"n"
    )


def test_the_chain_id_node_participant_and_method_are_length_prefixed() -> None:
    """Without its length each name runs into the next: chain "c" with a node beginning
    "\\x00\\x02" would sign what chain "c\\x00\\x04" signs for node "nX"; node "n" with a
    participant beginning "\\x00\\x02" what node "n\\x00\\x04" signs for "PX"; participant
    "P" with a method beginning "\\x00\\x02" what "P\\x00\\x04" calling "/q" signs."""
    assert _payload("c", "\x00\x02nX", "/q") != _payload("c\x00\x04", "nX", "/q")
    assert _payload("c", "n", "/q", "\x00\x02PX") != _payload("c", "n\x00\x04", "/q", "PX")
    assert _payload("c", "n", "\x00\x02/q", "P") != _payload("c", "n", "/q", "P\x00\x04")
    assert _payload("c", "n", "/q") == _payload("c", "n", "/q")  # control: deterministic


def test_metadata_without_a_participant_is_no_identity() -> None:
    """Time, nonce and signature without the participant: refused as no identity
    (UNAUTHENTICATED), not a KeyError that the handler does not turn into a refusal."""
    md = tuple((k, v) for k, v in _md() if k != "ledger-participant")
    with pytest.raises(AccessError, match="no identity"):
        parse_claim(md)
    assert parse_claim(_md()).participant == "BANK01"  # control


# --- the gate's nonce memory -----------------------------------------------------------------


def test_a_future_dated_call_is_remembered_until_its_own_time_leaves_the_window() -> None:
    """A call dated SKEW ahead is taken until T0 + 2 * SKEW: its nonce must be kept that
    long, not only SKEW past the moment it came."""
    now = [T0]
    gate = Gate(lambda: Registry.at_genesis(G), lambda: now[0], NODE, skew_ms=SKEW)
    md = _md(time_ms=T0 + SKEW)
    gate.admit(M, b"req", md)
    for at in (T0 + SKEW + 1, T0 + 2 * SKEW):
        now[0] = at
        with pytest.raises(AccessError, match="replayed"):
            gate.admit(M, b"req", md)
    now[0] = T0 + 2 * SKEW + 1  # control: now refused by time, and forgotten
    with pytest.raises(AccessError, match="window"):
        gate.admit(M, b"req", md)
    gate.admit(M, b"req", _md(time_ms=now[0], nonce=b"m" * 16))
    assert len(gate) == 1  # the first aged out


# --- the block read budget -------------------------------------------------------------------


def test_a_read_too_quick_for_the_cpu_clock_still_costs() -> None:
    """A read the thread clock cannot see (0 ns between its samples) costs 1 us: a coarse
    clock must not make reads free."""
    reads = ReadBudget(lambda: 0, cpu_ns=lambda: 7, rate_per_s=1, burst=3)
    for _ in range(3):
        assert reads.wait_ms("BANK05") == 0
        with reads.charged("BANK05"):
            pass
    assert reads.wait_ms("BANK05") > 0
    assert reads.wait_ms("BANK02") == 0  # control: another participant


def test_a_read_that_raises_is_charged_what_it_cost() -> None:
    ns = [0]

    def cpu_ns() -> int:
        ns[0] += 50_000_000  # 50 ms between samples
        return ns[0]

    reads = ReadBudget(lambda: 0, cpu_ns=cpu_ns, rate_per_s=1_000, burst=10_000)
    with pytest.raises(ValueError, match="boom"), reads.charged("BANK05"):
        raise ValueError("boom")
    assert reads.wait_ms("BANK05") > 0
    with reads.charged("BANK05", when=lambda: False):  # control: not charged when told
        pass
    assert reads.wait_ms("BANK02") == 0


# --- who may read what -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def later() -> tuple[Registry, LifeTx, TxFactory]:
    """A registry where block 2 added BANK99 (a trader) and AUDIT99 (an auditor)."""
    net = life_net()
    chain, txf = Chain(net), TxFactory(net)
    chain.commit([])
    auditor = add_participant(txf, "AUDIT99", roles=frozenset({Role.AUDITOR}))
    chain.commit([gov_signed(net, add_participant(txf, "BANK99")), gov_signed(net, auditor)])
    reg = chain.node().registry()
    assert "BANK99" not in reg.participants_at(1) and "AUDIT99" in reg.participants_at(2)
    return reg, LifeTx(net), txf


def test_an_observer_added_later_reads_every_earlier_transaction(
    later: tuple[Registry, LifeTx, TxFactory],
) -> None:
    """Observers read everything (GetBlock gives a current observer every whole block),
    also the transactions of blocks before they were added."""
    reg, _, txf = later
    dvp = txf.signed(txf.dvp("BANK01", "BANK02"))
    assert may_read_tx(Caller("AUDIT99", True), dvp, reg, height=1)
    assert not may_read_tx(Caller("BANK99", False), dvp, reg, height=1)  # control


def test_a_participant_added_later_reads_earlier_corporate_actions(
    later: tuple[Registry, LifeTx, TxFactory],
) -> None:
    """ADR 0025: a participant added later is shown, in a block before its addition,
    the public transactions; one that named it is not its to read. From the block that
    added it (block 2: participants_at(2) has it) on, it reads what names it."""
    reg, lt, txf = later
    assert may_read_tx(Caller("BANK99", False), lt.coupon(1), reg, height=1)
    to99 = txf.signed(txf.transfer("BANK01", "BANK99"))
    assert not may_read_tx(Caller("BANK99", False), to99, reg, height=1)  # control
    assert may_read_tx(Caller("BANK99", False), to99, reg, height=2)


def test_a_paying_agent_reads_holders_but_not_attestations() -> None:
    """An instrument that no custodian backs: its attestations and supply are its
    issuer's (and observers'); its paying agent, which reads the holders, does not."""
    g = life_net(paying_agent="BANK05").genesis
    bond = next(i for i in g.instruments if i.agent == "BANK05")
    reg = Registry.at_genesis(g)
    assert bond.id not in g.custody_by_bond and bond.issuer != "BANK05"
    agent = Caller("BANK05", False)
    assert may_read_holders(agent, bond.id, g)  # control
    assert may_read_attestations(Caller(bond.issuer, False), bond.id, reg)  # control
    assert not may_read_attestations(agent, bond.id, reg)


def test_the_reference_data_goes_to_every_participant() -> None:
    assert may_read_reference(Caller("BANK03", False))
    assert may_read_reference(Caller("AUDITOR", True))
    assert not may_read_reference(Caller("", False))  # control: no identity, no data


def test_an_id_inside_another_reads_nothing_of_it() -> None:
    """Ids are compared whole: BANK1 is not BANK10 (nor any part of a pair's names)."""
    short = Caller("BANK1", False)
    assert may_read_account(Caller("BANK10", False), "BANK10")  # control
    assert not may_read_account(short, "BANK10")
    assert may_read_pending(Caller("BANK20", False), "BANK10", "BANK20")  # control
    assert not may_read_pending(short, "BANK10", "BANK20")
    assert not may_read_pending(Caller("BANK10BANK20", False), "BANK10", "BANK20")


def test_a_repo_goes_to_its_borrower_and_its_lender() -> None:
    assert may_read_repo(Caller("BANK02", False), "BANK01", "BANK02")
    assert may_read_repo(Caller("BANK01", False), "BANK01", "BANK02")
    assert not may_read_repo(Caller("BANK03", False), "BANK01", "BANK02")  # control


# --- found by the sweep (fixed): a demoted auditor's reads of its auditor days ------------


async def test_a_demoted_auditor_reads_by_id_what_its_auditor_days_blocks_show_it() -> None:
    """ADR 0025: "a demoted auditor therefore still reads the blocks of its auditor days
    whole (what it read then)". Block 1 is a DvP of BANK01 and BANK02 while AUDITOR is an
    auditor; block 2 demotes it; block 3 certifies. GetBlock(1) gives AUDITOR the whole
    block with the DvP (control), and node/access.py says a party-filtered block and a
    transaction read agree; but GetTransaction of that DvP, by AUDITOR, is refused:
    ``may_read_tx`` took the caller's role at the head and no role history. Fixed: it asks
    ``Registry.observers_at`` of the transaction's block, as GetBlock does. Controls: a
    party reads it; a trader that never observed is refused."""
    from node.runtime._api import LedgerService
    from node.wire import ledger_pb2 as pb
    from tests.gov_helpers import set_roles
    from tests.ledger_helpers import pinned_tls
    from tests.unit.test_block_reads import _Ctx, _Refused

    pinned, _ = pinned_tls(NET)
    chain, txf = Chain(pinned), TxFactory(pinned)
    dvp = txf.signed(txf.dvp("BANK01", "BANK02"))
    chain.commit([dvp])
    chain.commit([gov_signed(pinned, set_roles(txf, "AUDITOR", frozenset({Role.TRADER})))])
    chain.commit([])
    assert not chain.node().registry().participant_by_id["AUDITOR"].observer
    svc = LedgerService(chain.node(), {})
    tid = chain.outcomes[1].results[0].tx_id

    async def read(who: str) -> str:
        Gate.enter(Caller(who, observer=False))
        try:
            await svc.GetTransaction(pb.TransactionRequest(tx_id=tid), _Ctx())  # type: ignore[arg-type]
        except _Refused as e:
            return e.code.name
        return "OK"

    Gate.enter(Caller("AUDITOR", observer=False))
    whole = await svc.GetBlock(pb.BlockRequest(height=1), _Ctx())  # type: ignore[arg-type]
    assert not whole.filtered and [r.tx_id for r in whole.results] == [tid]  # control: whole
    assert await read("BANK01") == "OK"  # control: a party
    assert await read("BANK03") == "PERMISSION_DENIED"  # control: never an observer
    assert await read("AUDITOR") == "OK"


# --- review 32: the cosmic-ray target `access` (docs/testing.md "The client port") ----------


def test_balances_are_refused_to_an_id_ordered_either_side() -> None:
    """Ids are compared for equality, not order: BANK03 reads neither BANK02's balances
    (an id below its own) nor BANK04's (above)."""
    caller = Caller("BANK03", False)
    assert may_read_account(caller, "BANK03")  # control
    assert not may_read_account(caller, "BANK02")
    assert not may_read_account(caller, "BANK04")


def test_balances_go_to_their_owner_whatever_string_object_names_it() -> None:
    """The verified caller's id comes from the registry and the account from the request
    off the wire: equal strings, never the same object."""
    from node.wire import ledger_pb2 as pb

    caller = _verify(_md("BANK01"))
    wire = pb.BalancesRequest(account="BANK01").SerializeToString()
    account = pb.BalancesRequest.FromString(wire).account
    assert account == caller.participant and account is not caller.participant
    assert may_read_account(caller, account)


@pytest.mark.parametrize("time_ms", [0, 2**64 - 1])
def test_any_u64_time_parses_and_verifies(time_ms: int) -> None:
    """The claim's time is a u64 (the signed payload packs it in 8 bytes): both ends parse,
    and a call signed at either verifies (the clock window is the Gate's, not this)."""
    claim = parse_claim(_md(time_ms=time_ms))
    assert claim.time_ms == time_ms
    assert _verify(_md(time_ms=time_ms)).participant == "BANK01"


@pytest.mark.parametrize("text", ["-1", str(2**64), str(10**30)])
def test_a_time_outside_u64_is_an_access_error_not_a_crash(text: str) -> None:
    """Outside 0..2^64 - 1 the signed payload cannot even be built (struct.error): the
    claim is refused as malformed first, with the error the port turns into
    UNAUTHENTICATED."""
    with pytest.raises(AccessError, match="time out of range"):
        parse_claim(_with(_md(), METADATA_TIME, text))


def test_the_payload_and_metadata_name_node_participant_time_and_nonce_by_keyword() -> None:
    """Two strings and an int in a row: by position, a node and a participant could be
    swapped and a call signed for the wrong one. ``may_read_tx``'s height is by keyword
    too (a position could be a block height or anything else)."""
    key = NET.participant_keys["BANK01"]
    nonce = b"n" * 16
    with pytest.raises(TypeError):
        request_payload(G.chain_id, M, b"req", NODE, "BANK01", T0, nonce)  # type: ignore[misc]
    with pytest.raises(TypeError):
        signed_metadata(key, "BANK01", G.chain_id, M, b"req", NODE, T0, nonce)  # type: ignore[misc]
    raw = TxFactory(NET).signed(TxFactory(NET).dvp("BANK01", "BANK02"))
    reg = Registry.at_genesis(G)
    with pytest.raises(TypeError):
        may_read_tx(Caller("BANK01", False), raw, reg, 0)  # type: ignore[misc]
    assert may_read_tx(Caller("BANK01", False), raw, reg, height=0)  # control


def test_an_identity_once_parsed_or_verified_cannot_be_changed() -> None:
    """A verified ``Caller`` is held for a stream's life and asked at every event; a
    ``Claim`` is checked by time, then by signature; ``TxReaders`` answers any number of
    callers. None of them can be altered in between (frozen) or grow attributes (slots)."""
    claim = parse_claim(_md())
    caller = _verify(_md())
    raw = TxFactory(NET).signed(TxFactory(NET).dvp("BANK01", "BANK02"))
    readers = tx_readers(raw, Registry.at_genesis(G))
    assert readers.admit(caller) and not readers.admit(Caller("BANK03", False))  # control
    for value, field in ((claim, "time_ms"), (caller, "observer"), (readers, "public")):
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(value, field, True)
        assert not hasattr(value, "__dict__"), type(value).__name__
