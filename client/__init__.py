"""Client SDK for the settlement ledger (async first, with a synchronous wrapper).

- :class:`AsyncLedgerClient` / :class:`LedgerClient`: talk to the validators over TLS,
  fail over between them, submit with finality (one at a time, or many over a submit
  stream: :class:`SubmitStream`), query, follow blocks and account events.
- :class:`Transactions`, :func:`sign`, :func:`propose_dvp`, :func:`accept_dvp`: build and
  sign transactions offline, and exchange a DvP between its two parties.
- :class:`Receipt`, :func:`verify_receipt`: proofs of finality and result, checkable
  offline against genesis.
- Errors: ``LedgerError`` subclasses (with ``retry_safe``) from the ledger, ``ValueError``
  subclasses for bad input.
"""

from client._async import (
    AccountEvent,
    AsyncLedgerClient,
    BackedView,
    Balances,
    BlockEvent,
    BlockTiming,
    BlockTx,
    BlockView,
    Endpoint,
    EndpointDown,
    HolderView,
    InstrumentView,
    LockView,
    NodeStatusView,
    PendingTrade,
    Settlement,
    TxStatus,
)
from client._errors import (
    BadResponseError,
    BusyError,
    ClosedError,
    FinalityTimeoutError,
    InvalidFieldError,
    InvalidTransactionError,
    KeyFileError,
    LedgerError,
    NotFoundError,
    OverloadedError,
    PermissionDeniedError,
    RejectedError,
    SigningError,
    TermsMismatchError,
    TradeError,
    UnauthenticatedError,
    UnavailableError,
)
from client._keys import ParticipantKey, generate_key, load_key
from client._prices import PriceBook, PriceView, SourcePrice
from client._reference import Reference
from client._replay import HolderAt, HoldersAt
from client._stream import SubmitStream
from client._sync import LedgerClient, StreamedTx, SyncSubmitStream
from client._trades import (
    PartialTrade,
    SignedTransaction,
    Transactions,
    accept_dvp,
    cosign,
    propose_dvp,
    sign,
    terms_of,
)
from node._version import __version__
from node.receipt import (
    CertificateCache,
    EventProof,
    InvalidReceiptError,
    Receipt,
    ResultProof,
    verify_receipt,
)
from node.settlement import ResultCode

__all__ = [
    "AccountEvent",
    "AsyncLedgerClient",
    "BackedView",
    "BadResponseError",
    "Balances",
    "BlockEvent",
    "BlockTiming",
    "BlockTx",
    "BlockView",
    "BusyError",
    "CertificateCache",
    "ClosedError",
    "Endpoint",
    "EndpointDown",
    "EventProof",
    "FinalityTimeoutError",
    "HolderAt",
    "HolderView",
    "HoldersAt",
    "InstrumentView",
    "InvalidFieldError",
    "InvalidReceiptError",
    "InvalidTransactionError",
    "KeyFileError",
    "LedgerClient",
    "LedgerError",
    "LockView",
    "NodeStatusView",
    "NotFoundError",
    "OverloadedError",
    "PartialTrade",
    "ParticipantKey",
    "PendingTrade",
    "PermissionDeniedError",
    "PriceBook",
    "PriceView",
    "Receipt",
    "Reference",
    "RejectedError",
    "ResultCode",
    "ResultProof",
    "Settlement",
    "SignedTransaction",
    "SigningError",
    "SourcePrice",
    "StreamedTx",
    "SubmitStream",
    "SyncSubmitStream",
    "TermsMismatchError",
    "TradeError",
    "Transactions",
    "TxStatus",
    "UnauthenticatedError",
    "UnavailableError",
    "__version__",
    "accept_dvp",
    "cosign",
    "generate_key",
    "load_key",
    "propose_dvp",
    "sign",
    "terms_of",
    "verify_receipt",
]
