"""Result codes on the wire and on disk (docs/adr/0020-wire-conventions.md): no code is
0, so a code a node left out never reads as OK; every decoder of a code refuses 0 with its
own typed error; a data directory of the old numbering is refused; the SDK reports a
receipt, status or stream final without a code as an error."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import lmdb
import pytest

import client._stream as sdk_stream
from client import AsyncLedgerClient, BadResponseError, UnavailableError
from client._async import _settlement
from node.genesis import demo_genesis
from node.receipt import InvalidReceiptError, Receipt
from node.settlement import (
    DecodeError,
    Outcome,
    ResultCode,
    TxRecord,
    TxResult,
    decode_result_code,
)
from node.store import LmdbStore, StorageError
from node.store import _records as rec
from node.wire import ledger_pb2 as pb
from tests.unit.test_client_stream import _Call, _plain_signed, _raw, _stream

__all__ = ["_plain_signed"]  # the fixture: raw bytes stand for signed transactions

_TID = bytes(range(32))


# --- result codes: none is 0 ------------------------------------------------------------


def test_every_decoder_of_a_code_refuses_zero_with_its_typed_error() -> None:
    assert ResultCode.OK == 80 and 0 not in {c.value for c in ResultCode}
    with pytest.raises(DecodeError, match=r"no result code \(0\)"):
        decode_result_code(0, DecodeError)
    with pytest.raises(DecodeError, match="unknown result code 76"):
        decode_result_code(76, DecodeError)  # reserved for margin, not a code yet
    assert decode_result_code(80, DecodeError) is ResultCode.OK  # negative control

    ok = TxRecord(3, 1, ResultCode.OK)
    assert rec.decode_tx_record(rec.encode_tx_record(ok)) == ok  # control: OK round-trips
    zero = rec.encode_tx_record(ok)[:-1] + b"\x00"
    with pytest.raises(rec.RecordError, match="no result code"):
        rec.decode_tx_record(zero)
    results = rec.encode_results([TxResult(_TID, ResultCode.OK, recorded=True)])
    assert rec.decode_results(results)[0].code is ResultCode.OK
    with pytest.raises(rec.RecordError, match="no result code"):
        rec.decode_results(results[:32] + b"\x00" + results[33:])

    outcome = Outcome(ResultCode.OK, 4, 0, 10, 20)
    assert Outcome.decode(outcome.encode()) == outcome
    with pytest.raises(DecodeError, match="no result code"):
        Outcome.decode(b"\x00\x00" + outcome.encode()[2:])


def test_a_receipt_without_a_code_is_refused_not_read_as_ok() -> None:
    with pytest.raises(InvalidReceiptError, match="no result code"):
        Receipt.from_pb(pb.Receipt(tx_id=_TID, height=1))
    ev = pb.Receipt(tx_id=_TID, height=1, code=pb.OK, event_proof=pb.EventProof(height=2))
    with pytest.raises(InvalidReceiptError, match="no result code"):
        Receipt.from_pb(ev)  # the event proof's code unset


def test_a_data_directory_of_the_old_numbering_is_refused(tmp_path: Path) -> None:
    g = demo_genesis(validators=4, quorum=3, seed=b"tests").genesis
    LmdbStore(tmp_path / "ok", g).close()
    LmdbStore(tmp_path / "ok", g).close()  # negative control: this version reopens its own
    LmdbStore(tmp_path / "old", g).close()
    env = lmdb.open(str(tmp_path / "old"), max_dbs=16)
    meta = env.open_db(b"meta")
    with env.begin(write=True) as txn:  # what a store of genesis format 1 holds
        stored = bytes(txn.get(b"genesis", db=meta))
        txn.put(b"genesis", b"\x01" + stored[1:], db=meta)
    env.close()
    with pytest.raises(StorageError, match="genesis format 1; this node reads format 2"):
        LmdbStore(tmp_path / "old", g)


async def test_the_sdk_reports_a_committed_status_without_a_code_as_an_error() -> None:
    async def get_transaction(req: Any, **_: Any) -> pb.TransactionStatus:
        return pb.TransactionStatus(tx_id=_TID, state=pb.COMMITTED, receipt=pb.Receipt(tx_id=_TID))

    client = fake_client(SimpleNamespace(GetTransaction=get_transaction))
    with pytest.raises(UnavailableError, match="no result code") as info:
        await AsyncLedgerClient.transaction(client, _TID)
    assert "receipt failed verification" in str(info.value)
    unset = pb.TransactionStatus(tx_id=_TID, settlement=pb.Settlement(height=3))
    with pytest.raises(BadResponseError, match="no result code"):
        _settlement(unset)


async def test_the_sdk_reports_a_status_without_a_state_as_an_error_not_pending() -> None:
    """TxState 0 is TX_STATE_UNSPECIFIED, what a node that left the field out sends: it is
    no answer (the node is left for another), never PENDING; nor is a state no enum has."""

    def answering(state: int) -> Any:
        async def get_transaction(req: Any, **_: Any) -> pb.TransactionStatus:
            return pb.TransactionStatus(tx_id=_TID, state=state)  # type: ignore[arg-type]

        return fake_client(SimpleNamespace(GetTransaction=get_transaction))

    with pytest.raises(UnavailableError, match="no transaction state"):
        await AsyncLedgerClient.transaction(answering(0), _TID)
    with pytest.raises(UnavailableError, match="unknown transaction state 7"):
        await AsyncLedgerClient.transaction(answering(7), _TID)
    pending = await AsyncLedgerClient.transaction(answering(pb.PENDING), _TID)
    assert pending.state == "PENDING"  # control


async def test_the_sdk_reports_a_submit_answer_without_an_outcome_as_an_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """SubmitOutcome 0 is SUBMIT_OUTCOME_UNSPECIFIED, a field left out: ``submit(wait=False)``
    does not report the transaction taken on such an answer, nor on a value no enum has."""
    raw = _raw(1)  # the module's fixture makes client._stream's stand-in take raw bytes
    monkeypatch.setattr("client._async.SignedTransaction", sdk_stream.SignedTransaction)

    def answering(outcome: int) -> Any:
        async def submit(req: Any, **_: Any) -> pb.SubmitResponse:
            return pb.SubmitResponse(tx_id=raw[-8:], outcome=outcome)  # type: ignore[arg-type]

        return fake_client(SimpleNamespace(Submit=submit))

    with pytest.raises(UnavailableError, match="no submit outcome"):
        await AsyncLedgerClient.submit(answering(0), raw, wait=False)
    with pytest.raises(UnavailableError, match="unknown submit outcome 9"):
        await AsyncLedgerClient.submit(answering(9), raw, wait=False)
    for taken in (pb.ACCEPTED, pb.ALREADY_PENDING, pb.ALREADY_COMMITTED):  # control
        assert await AsyncLedgerClient.submit(answering(taken), raw, wait=False) == raw[-8:]


async def test_the_sdk_reports_a_stream_final_without_a_code_as_an_error() -> None:
    """A final whose receipt has no result code fails verification: it is not taken, and
    the outcome is asked of the nodes (here they fail too, so the future raises)."""
    client = fake_client(None)
    call = _Call()
    asked: list[bytes] = []

    async def proven(tid: bytes, timeout_s: float) -> Any:
        asked.append(tid)
        raise BadResponseError("no node proved it")

    s = _stream(call, 1, proven=proven)
    s._verify = lambda msg, tid, prove: AsyncLedgerClient._verified(client, msg, tid, prove)
    fut = await s.submit(_raw(1), timeout_s=30)
    final = pb.SubmitStreamFinal(height=5, receipt=pb.Receipt(tx_id=_raw(1)[-8:]))
    call.events.put_nowait(pb.SubmitStreamEvent(correlation=call.sent[0].correlation, final=final))
    with pytest.raises(BadResponseError, match="no node proved it"):
        await fut
    assert asked == [_raw(1)[-8:]]
    await s.cancel()


def fake_client(stub: Any) -> Any:
    """What ``AsyncLedgerClient.transaction`` uses of its client, with one endpoint."""
    one = [SimpleNamespace(address="node-00")]
    c = SimpleNamespace(endpoints=one, _current=0, _answered={}, _rpc_timeout_s=1.0)
    c.genesis, c._certified = None, None
    c._advance = lambda i: None
    c._md = lambda i, method, req: ()
    c._stub = lambda i: stub
    c._verified = lambda msg, tid, prove_result: AsyncLedgerClient._verified(
        c, msg, tid, prove_result
    )
    c._call = lambda what, fn, deadline=None, **kw: AsyncLedgerClient._call(
        c, what, fn, deadline, **kw
    )
    return c
