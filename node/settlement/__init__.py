"""The deterministic settlement state machine: no I/O, no clock, no randomness.

Public API: the genesis model, transactions and their signed envelopes, the result-code
enum, and ``apply_block``. See ``_apply.py`` for the theory of operation.
"""

from node.settlement._apply import (
    LEAF_RECORDED,
    LEAF_UNRECORDED,
    BlockContext,
    BlockOutcome,
    TxResult,
    Verify,
    apply_block,
    authentic,
    genesis_state_root,
    precheck,
    result_leaf,
    results_root,
)
from node.settlement._codec import DecodeError
from node.settlement._model import (
    Genesis,
    GenesisError,
    Holding,
    Instrument,
    InstrumentKind,
    Participant,
    Role,
    Validator,
    isin_check_digit,
)
from node.settlement._result import ResultCode
from node.settlement._state import Head, RecordKind, StateView, TxRecord
from node.settlement._tx import (
    Burn,
    DvP,
    Mint,
    SignedTx,
    Transaction,
    Transfer,
    TxKind,
    decode_body,
    encode_body,
    sign_tx,
    tx_id,
)

__all__ = [
    "LEAF_RECORDED",
    "LEAF_UNRECORDED",
    "BlockContext",
    "BlockOutcome",
    "Burn",
    "DecodeError",
    "DvP",
    "Genesis",
    "GenesisError",
    "Head",
    "Holding",
    "Instrument",
    "InstrumentKind",
    "Mint",
    "Participant",
    "RecordKind",
    "ResultCode",
    "Role",
    "SignedTx",
    "StateView",
    "Transaction",
    "Transfer",
    "TxKind",
    "TxRecord",
    "TxResult",
    "Validator",
    "Verify",
    "apply_block",
    "authentic",
    "decode_body",
    "encode_body",
    "genesis_state_root",
    "isin_check_digit",
    "precheck",
    "result_leaf",
    "results_root",
    "sign_tx",
    "tx_id",
]
