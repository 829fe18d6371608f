"""Every error the SDK raises, split as h11 does: "you broke it" and "the ledger said no".

- ``ValueError`` subclasses (:class:`InvalidFieldError`, :class:`SigningError`,
  :class:`TradeError`, :class:`TermsMismatchError`, :class:`KeyFileError`) mean the
  caller's input is wrong; nothing was sent.
- :class:`LedgerError` subclasses come from talking to the ledger. Each carries
  ``retry_safe``: True when sending the *same signed transaction* again cannot settle it
  twice and may succeed (a transaction id is applied at most once, ever), False when the
  outcome is final or retrying cannot help.

A node's refusal also carries structured details (docs/adr/0020-wire-conventions.md), which
every :class:`LedgerError` exposes as fields: ``reason`` (a stable UPPER_SNAKE name, e.g.
``TRANSACTION_REFUSED``, ``NOT_PERMITTED``, ``OVERLOADED``; ``node.wire.errors.Reason``
lists them), ``metadata`` (e.g. ``tx_id``, ``result_code``, ``limit``), ``retry_after_s``
(when a retry may be admitted) and ``result_code`` (the settlement code, where there is
one). From a node that sends none (before ADR 0020) ``reason`` is None and ``metadata``
empty; ``result_code`` is then read from the message, ``retry_after_s`` from the old
``retry-after-ms`` trailer.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import TypeVar

from client._limits import DETAILS_METADATA_MAX, DETAILS_TEXT_CHARS_MAX, OVERLOAD_WAIT_MAX_S
from node.keyfiles import KeyFileError
from node.receipt import Receipt
from node.settlement import ResultCode
from node.wire.errors import Details

__all__ = [
    "BadResponseError",
    "BusyError",
    "ClosedError",
    "FinalityTimeoutError",
    "InvalidFieldError",
    "InvalidTransactionError",
    "KeyFileError",
    "LedgerError",
    "NotFoundError",
    "OverloadedError",
    "PermissionDeniedError",
    "RejectedError",
    "SigningError",
    "TermsMismatchError",
    "TradeError",
    "UnauthenticatedError",
    "UnavailableError",
]


# --- the caller's input ------------------------------------------------------------------


class InvalidFieldError(ValueError):
    """A transaction field is invalid for this genesis; ``field`` names it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


class SigningError(ValueError):
    """A key cannot sign this transaction: not a required signer, or not the key genesis
    lists for the participant, or the transaction is for another chain."""


class TradeError(ValueError):
    """A proposed DvP cannot be accepted (undecodable, not a DvP, another chain, expired,
    the seller's signature missing or forged, or addressed to another buyer)."""


class TermsMismatchError(TradeError):
    """The trade's terms differ from what the buyer expected; ``differences`` lists each
    as ``(term, expected, actual)``."""

    def __init__(self, differences: list[tuple[str, object, object]]) -> None:
        lines = "; ".join(f"{t}: expected {e!r}, got {a!r}" for t, e, a in differences)
        super().__init__(f"the trade's terms differ from the expected ones: {lines}")
        self.differences = differences


# --- the ledger's answers ------------------------------------------------------------------


class LedgerError(Exception):
    """Base of every error from the ledger; ``retry_safe`` says whether sending the same
    signed transaction (or repeating the query) again is safe and may succeed. The other
    fields are the refusal's structured details (module docstring), when it has them."""

    retry_safe: bool = False
    reason: str | None = None
    metadata: Mapping[str, str] = MappingProxyType({})
    retry_after_s: float | None = None
    result_code: ResultCode | None = None


E = TypeVar("E", bound=LedgerError)


def with_details(err: E, details: Details | None, message: str = "") -> E:
    """``err`` with a refusal's structured ``details``; without them (an old node), the
    result code its ``message`` names before its first colon, as such a node wrote it."""
    if details is not None and not _bounded(details):
        details = None  # a node's flood is no details, like details that do not parse
    if details is None:
        head, colon, _ = message.partition(":")
        err.result_code = _code_named(head) if colon else None
        return err
    err.reason = details.reason
    err.metadata = MappingProxyType(dict(details.metadata))
    if details.retry_after_ms > 0:
        err.retry_after_s = _retry_after_s(details.retry_after_ms)
    err.result_code = _code_named(details.metadata.get("result_code", ""))
    return err


def _bounded(d: Details) -> bool:
    """Within the SDK's bounds of details (client/_limits.py)."""
    if len(d.metadata) > DETAILS_METADATA_MAX:
        return False
    texts = (d.reason, *d.metadata, *d.metadata.values())
    return all(len(t) <= DETAILS_TEXT_CHARS_MAX for t in texts)


def _retry_after_s(hint_ms: int) -> float:
    """A node's retry-after hint in seconds, capped at ``OVERLOAD_WAIT_MAX_S`` (5 s, what an
    honest node asks at most: node.config ``ADMISSION_RETRY_AFTER_MAX_MS``): a hostile node
    can ask for any delay (49 days in the stream's uint32, centuries in a RetryInfo) and a
    caller sleeps ``retry_after_s`` as docs/sdk.md shows."""
    return min(max(0, hint_ms) / 1000, OVERLOAD_WAIT_MAX_S)


def _code_named(name: str) -> ResultCode | None:
    """The refused code ``name`` names; never OK, which no refusal has (a hostile node's
    contradiction reads as no code)."""
    code = ResultCode.__members__.get(name)
    return None if code is ResultCode.OK else code


class RejectedError(LedgerError):
    """The ledger recorded the transaction as refused (final: it changed no balance).

    ``receipt`` proves it (``verify_receipt`` checks it); ``code`` and ``meaning`` say why.
    Resubmitting the same transaction returns the same result (the same receipt from the
    same node; another node's may carry another commit certificate of the block, each a
    proof: ADR 0021); fix the cause and sign a new transaction instead.
    """

    retry_safe = False

    def __init__(self, receipt: Receipt) -> None:
        self.receipt = receipt
        # A pending DvP that ended unsettled: its proven event's code (ADR 0014).
        self.code: ResultCode = receipt.outcome
        self.result_code = self.code
        self.meaning = self.code.meaning
        ev = receipt.event_proof
        if ev is None:
            super().__init__(
                f"transaction {receipt.tx_id.hex()} refused at height {receipt.height}: "
                f"{self.code.name} ({self.meaning}); fix it and sign a new transaction"
            )
            return
        # Recorded PENDING_SETTLEMENT (accepted), then ended unsettled: not "refused".
        super().__init__(
            f"transaction {receipt.tx_id.hex()}, recorded PENDING_SETTLEMENT at height "
            f"{receipt.height}, failed: {self.code.name} at the end of block {ev.height} "
            f"({self.meaning}); it will not settle; sign a new transaction"
        )


class InvalidTransactionError(LedgerError):
    """The node refused the transaction before ordering it (malformed, bad or missing
    signature, another chain): sending it again gets the same answer."""

    retry_safe = False


class FinalityTimeoutError(LedgerError):
    """No receipt within the timeout. The transaction may still settle: resubmitting the
    same transaction (to any node) or asking for its receipt again is safe and never
    settles it twice."""

    retry_safe = True

    def __init__(self, tx_id: bytes, timeout_s: float) -> None:
        super().__init__(
            f"transaction {tx_id.hex()} not final within {timeout_s:g} s; resubmitting the "
            "same transaction or waiting for its receipt again is safe (it settles at most once)"
        )
        self.tx_id = tx_id


class UnavailableError(LedgerError):
    """Every endpoint was tried and none answered; ``errors`` has one line per attempt.
    Retrying later (the same transaction) is safe."""

    retry_safe = True

    def __init__(self, what: str, errors: list[str]) -> None:
        detail = "; ".join(errors[-8:]) or "no endpoint"
        super().__init__(
            f"{what}: no node answered ({detail}); check the nodes are up "
            "(make status), then retry: resending the same transaction is safe"
        )
        self.errors = errors


class ClosedError(UnavailableError):
    """The client, or the submit stream, was closed by this program, before or during the
    call (review 34s: a call in flight when another task closed the client raised a bare
    ``CancelledError``, and a closed client reopened its channels). No node failed: a
    transaction the call was sending may have reached one and may still settle, so ask its
    receipt, or resubmit the same signed transaction (safe: it settles at most once), from
    a client that is open. ``retry_safe`` as ``UnavailableError``: the retry needs an open
    client."""

    def __init__(self, what: str, why: str, *, sent: bool = True) -> None:
        advice = (
            "a transaction it was sending may still settle: ask its receipt, or resubmit "
            "the same signed transaction (safe: it settles at most once), from a client "
            "that is open"
            if sent
            else "nothing was sent; make the call on a client that is open"
        )
        LedgerError.__init__(self, f"{what}: {why}; {advice}")
        self.errors = [why]


class BusyError(LedgerError):
    """The nodes stayed saturated (RESOURCE_EXHAUSTED) through bounded retries with
    backoff; retrying later is safe."""

    retry_safe = True


class OverloadedError(BusyError):
    """Admission control: the node cannot settle what it holds within this call's deadline,
    and waiting its hint (``retry_after_s``) would not fit in what is left of the deadline
    or the retries ran out (docs/sdk.md "Overload"). The transaction was not taken: nothing
    of it is pending. Resubmitting the same transaction after ``retry_after_s`` is safe.
    From ``block()``: the caller's block-read budget at the node stayed spent through the
    retries (``reason`` LIMIT_REACHED); reading again after ``retry_after_s`` is safe."""

    retry_after_s: float  # always set here: admission control's hint, capped

    def __init__(self, message: str, retry_after_s: float) -> None:
        super().__init__(message)
        self.retry_after_s = min(max(0.0, retry_after_s), OVERLOAD_WAIT_MAX_S)


class NotFoundError(LedgerError):
    """No such account, block or transaction at the node asked."""

    retry_safe = False


class UnauthenticatedError(LedgerError):
    """The node could not verify who is calling (UNAUTHENTICATED): no identity configured
    (pass ``identity=`` to the client, ``--as ID`` to the CLI), a key that is not the one
    genesis lists, a client clock too far from the node's, or a replayed request. Every node
    would answer the same; fix the identity or the clock."""

    retry_safe = False


class PermissionDeniedError(LedgerError):
    """The caller may not read this (PERMISSION_DENIED): another participant's balances, or
    a transaction the caller is not a party to (docs/cluster.md "Security: who reads
    what"). Asking as the party, or as a regulator, compliance or auditor, is the fix."""

    retry_safe = False


class BadResponseError(LedgerError):
    """A node's answer failed verification against genesis (a wrong or forged block or
    receipt), or exceeded what an honest node sends (client/_answers.py); the client
    tried another node. Retrying is safe."""

    retry_safe = True
