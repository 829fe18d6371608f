"""The ``ledger`` commands that sign transactions or talk to the nodes, through the SDK.

``sign dvp`` and ``cosign`` need genesis and a key only (the two parties may sit on two
machines and swap the trade file), and a node only for what genesis does not know
(``_offline_first``); the rest open a :class:`LedgerClient` on the run
directory's nodes, and the commands that build a transaction check it against the reference
data a node holds (``_submit_built``). SDK errors become one line and an exit code in
:func:`run`.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import stat
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from client import (
    BlockEvent,
    BlockTx,
    BlockView,
    FinalityTimeoutError,
    InvalidFieldError,
    KeyFileError,
    LedgerClient,
    LedgerError,
    PartialTrade,
    ParticipantKey,
    Receipt,
    RejectedError,
    Settlement,
    SignedTransaction,
    SigningError,
    TermsMismatchError,
    TradeError,
    Transactions,
    UnavailableError,
    accept_dvp,
    cosign,
    load_key,
    propose_dvp,
    terms_of,
)
from client import _cli_settlement as settlement
from client import _status as node_status
from client._cli_common import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    CliError,
    amount,
    emit_json,
    table,
    timestamp,
)
from client._trades import read_signed
from node.crypto import HASH_LEN
from node.files import read_regular_text
from node.genesis import load_genesis
from node.netconfig import OPERATOR_IDENTITY, ConfigError
from node.settlement import (
    Cancel,
    DvP,
    FreezeReason,
    Genesis,
    GenesisError,
    Instrument,
    InstrumentKind,
    PendingDvP,
    Registry,
    ResultCode,
    SignedTx,
    Transaction,
    check_id,
    decode_body,
)
from node.settlement import Hold as HoldTx
from node.settlement import Release as ReleaseTx

__all__ = ["run"]

Command = Callable[[argparse.Namespace], int]
T = TypeVar("T")

# The last attempt's error in "no node answered": whole for what gRPC and the SDK say (a
# refused connection is ~130 characters, the SDK's explanations up to ~250; before review
# 33 it was cut at 100, mid-word, before "Connection refused"), bounded for a node's text.
_LAST_ERROR_CHARS = 400


def run(name: str, args: argparse.Namespace) -> int:
    """Run command ``name``, turning every SDK error into a CliError (one line, exit code)."""
    try:
        return _command(name)(args)
    except RejectedError as e:
        raise CliError(str(e), EXIT_FAILED) from None
    except UnavailableError as e:
        last = e.errors[-1] if e.errors else "no endpoint"
        if len(last) > _LAST_ERROR_CHARS:  # one node's text: bounded, the cut marked
            last = last[: _LAST_ERROR_CHARS - 3] + "..."
        raise CliError(
            f"no node of {args.run_dir} answered ({len(e.errors)} attempts; last: "
            f"{last}); check the nodes are up (`ledger status`); retrying is safe",
            EXIT_FAILED,
        ) from None
    except LedgerError as e:
        reason = str(e)
        if e.retry_safe and "safe" not in reason:
            reason += "; retrying is safe"
        raise CliError(reason, EXIT_FAILED) from None
    except (InvalidFieldError, SigningError, KeyFileError) as e:
        raise CliError(str(e), EXIT_USAGE) from None
    except TradeError as e:
        raise CliError(str(e), EXIT_FAILED) from None
    except ConfigError as e:  # network.json, from LedgerClient.from_run_dir
        raise CliError(f"{_run_dir(args)}: {e}", EXIT_USAGE) from None


def _command(name: str) -> Command:
    if name.startswith("life_"):  # the bond lifecycle's commands (client/_cli_life.py)
        from client import _cli_life

        return _cli_life.COMMANDS[name]
    if name.startswith("admin_"):  # governance (client/_cli_admin.py)
        from client import _cli_admin

        return _cli_admin.COMMANDS[name]
    if name.startswith("freeze_"):  # freezes (client/_cli_freeze.py)
        from client import _cli_freeze

        return _cli_freeze.COMMANDS[name]
    if name.startswith("reserve_"):  # custody and reserves (client/_cli_reserve.py)
        from client import _cli_reserve

        return _cli_reserve.COMMANDS[name]
    if name.startswith("lock_"):  # locks and swaps (client/_cli_lock.py)
        from client import _cli_lock

        return _cli_lock.COMMANDS[name]
    if name.startswith("repo_"):  # repos (client/_cli_repo.py)
        from client import _cli_repo

        return _cli_repo.COMMANDS[name]
    if name.startswith("margin_"):  # prices, margin, substitution (client/_cli_margin.py)
        from client import _cli_margin

        return _cli_margin.COMMANDS[name]
    return _COMMANDS[name]


# --- the run directory ----------------------------------------------------------------------


def _run_dir(args: argparse.Namespace) -> Path:
    return Path(args.run_dir)


def _genesis(args: argparse.Namespace) -> Genesis:
    path = _run_dir(args) / "genesis.json"
    try:
        return load_genesis(path)
    except FileNotFoundError:
        raise CliError(
            f"no genesis in run directory {_run_dir(args)} (pass --run-dir or set "
            "LEDGER_RUN_DIR; `make genesis` makes one)",
            EXIT_USAGE,
        ) from None
    except (GenesisError, ValueError, OSError) as e:
        raise CliError(f"{path}: not a valid genesis: {e}", EXIT_USAGE) from None


def _key(args: argparse.Namespace, participant: str, path: Path | None) -> ParticipantKey:
    """``path`` (a --key option) or the run directory's key file for ``participant``."""
    if path is None:
        default = _run_dir(args) / "participants" / f"{participant}.key"
        if not (_run_dir(args) / "genesis.json").is_file():
            _genesis(args)  # says what is wrong with the run directory
        if not default.is_file():
            raise CliError(f"no key for {participant} at {default} (pass --key FILE)", EXIT_USAGE)
        path = default
    return load_key(path, participant)


def _read(path: Path) -> str:
    try:
        return read_regular_text(path)
    except (OSError, UnicodeDecodeError) as e:
        raise CliError(f"cannot read {path}: {e}") from None


def _write(path: Path, text: str) -> None:
    """``path`` whole or unchanged: written beside it, then renamed over it. A write cut
    short (a full disk) must not leave half a file, least of all over its own input
    (``admin sign FILE`` rewrites FILE with the earlier admins' signatures). A device or
    a FIFO that is there already (``--out /dev/stdout``) is written through, never
    replaced; a FIFO nobody reads is an error at once, not a wait."""
    try:
        st = path.stat()  # through symlinks
    except FileNotFoundError:
        st = None
    except OSError as e:
        raise CliError(f"cannot write {path}: {e.strerror}") from None
    if st is not None and not stat.S_ISREG(st.st_mode):
        _write_through(path, text)
        return
    target = Path(os.path.realpath(path))  # a symlink's file, not the symlink
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        with tmp.open("x", encoding="utf-8") as f:
            f.write(text + "\n")
            f.flush()
            os.fsync(f.fileno())
        if st is not None:
            os.chmod(tmp, stat.S_IMODE(st.st_mode))
        os.replace(tmp, target)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise CliError(f"cannot write {path}: {e.strerror}") from None


def _write_through(path: Path, text: str) -> None:
    """Into a device or a FIFO as it is. Opened non-blocking: a FIFO without a reader
    fails (ENXIO) instead of waiting for one; a directory fails (EISDIR)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
        try:
            os.set_blocking(fd, True)  # the reader is there: let it keep up
            with os.fdopen(fd, "w", encoding="utf-8", closefd=False) as f:
                f.write(text + "\n")
        finally:
            os.close(fd)
    except OSError as e:
        raise CliError(f"cannot write {path}: {e.strerror}", EXIT_USAGE) from None


# --- printing transactions ------------------------------------------------------------------


def describe(tx: Transaction) -> str:
    """One line for a person: who moves what to whom."""
    if isinstance(tx, DvP | PendingDvP):
        kind, lots = "DVP", ""
        if isinstance(tx, PendingDvP):
            kind, lots = "PENDING DVP", f" in lots of {amount(tx.lot)}" if tx.lot else ""
        return (
            f"{kind} {tx.seller} -> {tx.buyer} {amount(tx.quantity)} {tx.bond} "
            f"against {amount(tx.amount)} {tx.cash}{lots}"
        )
    if isinstance(tx, HoldTx | ReleaseTx):
        return f"{tx.KIND.name} pending trade {tx.instruction.hex()} by {tx.by}"
    if isinstance(tx, Cancel):
        return f"CANCEL pending trade {tx.instruction.hex()} by {tx.seller} and {tx.buyer}"
    terms = terms_of(tx)
    kind = terms["kind"]
    if kind == "MINT":
        return (
            f"ISSUE {amount(terms['amount'])} {terms['instrument']} to {terms['to']} "
            f"by {terms['by']}"
        )
    if kind == "BURN":
        return (
            f"REDEEM {amount(terms['amount'])} {terms['instrument']} of {terms['holder']} "
            f"by {terms['by']}"
        )
    if kind == "COUPON_PAY":
        return f"COUPON {terms['bond']} period {terms['period']} paid by {terms['agent']}"
    if kind == "DISTRIBUTE":
        return (
            f"DISTRIBUTE {amount(terms['total'])} over {terms['fund']} holders, period "
            f"{terms['period']}, by {terms['agent']}"
        )
    if kind == "REDEEM":
        return f"REDEEM-BOND all {terms['bond']} of {terms['holder']} for cash at maturity"
    if kind == "REDEEM_ALL":
        return f"REDEEM-ALL {terms['bond']} for cash at maturity, paid by {terms['agent']}"
    if kind == "ATTEST_CUSTODY":
        return f"ATTEST-CUSTODY {amount(terms['amount'])} {terms['bond']} by {terms['custodian']}"
    if kind == "ATTEST_RESERVES":
        total = terms["deposits"] + sum(b["amount"] for b in terms["bills"])
        return (
            f"ATTEST-RESERVES {amount(total)} behind {terms['cash']} ({len(terms['bills'])} "
            f"bills) by {terms['issuer']}"
        )
    if kind in ("FREEZE", "UNFREEZE"):
        target = f"{terms['account']}'s {terms['instrument'] or 'account'}"
        why = f" ({FreezeReason(terms['reason']).name})" if kind == "FREEZE" else ""
        return f"{kind} {target}{why} by {terms['by']}"
    if "admins" in terms:  # governance (docs/ledger.md "Governance")
        return _describe_gov(terms)
    if kind in ("LOCK", "RELEASE_LOCK", "CLAIM_LOCK", "SWAP"):  # client/_cli_lock.py
        from client._cli_lock import describe as describe_lock

        return describe_lock(terms)
    if kind == "REPO_OPEN":  # repo (docs/ledger.md "Repo")
        return (
            f"REPO-OPEN {terms['id']}: {terms['borrower']} -> {terms['lender']} "
            f"{amount(terms['quantity'])} {terms['bond']} against "
            f"{amount(terms['purchase_amount'])} {terms['cash']}"
        )
    if kind == "REPO_CLOSE":
        return f"REPO-CLOSE {terms['id']} by {' and '.join(terms['by'])}"
    if kind in ("ATTEST_PRICE", "MARGIN_CALL", "REPO_SUBSTITUTE"):  # margin
        from client._cli_margin import describe as describe_margin

        return describe_margin(terms)
    return (
        f"TRANSFER {terms['sender']} -> {terms['receiver']} {amount(terms['amount'])} "
        f"{terms['instrument']}"
    )


def _describe_gov(terms: dict[str, Any]) -> str:
    kind, by = terms["kind"], ", ".join(terms["admins"])
    what = terms.get("participant") or terms.get("instrument")
    if isinstance(what, dict):  # AddParticipant, AddInstrument: the whole record
        what = what["id"]
    if what is None:  # SetComplianceRules names neither (it printed "None" before review 33)
        return f"{kind} signed by admins {by}"
    return f"{kind} {what} signed by admins {by}"


def _tx_of_receipt(receipt: Receipt) -> Transaction:
    return decode_body(SignedTx.decode(receipt.transaction).body)


def _receipt_lines(receipt: Receipt) -> list[str]:
    proved = (
        f"result certified by block {receipt.height + 1}"
        if receipt.final
        else f"NOT final yet: block {receipt.height + 1} proves whether the ledger recorded "
        "it, and its result (the node's word until then)"
    )
    lines = [
        f"tx id     {receipt.tx_id.hex()}",
        f"result    {receipt.code.name}: {receipt.meaning}",
        f"block     {receipt.height} position {receipt.position} "
        f"at {timestamp(receipt.block_time_ms)}",
        f"proof     certified by {len(receipt.signers)} validators; {proved}",
    ]
    ev = receipt.event_proof
    if ev is not None:
        lines.append(
            f"later     {ev.code.name} at the end of block {ev.height} (result {ev.index}), "
            f"certified by block {ev.height + 1}: {ev.code.meaning}"
        )
    elif receipt.waiting:
        lines.append("later     waiting for its legs; `ledger tx TX_ID` or --wait-settled")
    return lines


def _terms_table(tx: Transaction) -> None:
    table(("term", "value"), [(k, _term(k, v)) for k, v in terms_of(tx).items()])


def _term(name: str, value: object) -> str:
    """Amounts stay integers (grouped alongside); times also as ISO 8601."""
    if name in {"quantity", "amount", "total"} and isinstance(value, int):
        return f"{value} ({amount(value)})"
    if name.endswith("_ms") and isinstance(value, int):
        return f"{value} ({timestamp(value)})"
    if name == "chain_id":
        return f"{str(value)[:16]}..."
    return str(value)


# --- sign dvp / cosign (offline) ---------------------------------------------------------------


def _offline_first(
    args: argparse.Namespace, key: ParticipantKey, attempt: Callable[[Genesis | Registry], T]
) -> T:
    """``attempt``, checking names and keys against genesis: offline, the two parties need
    no node. When genesis does not know a name or key it uses (a participant or instrument
    governance added, a key it rotated: ADR 0016) and the run directory names nodes,
    ``attempt`` again against the reference data a node holds, asked as ``key``'s
    participant; no node answering leaves genesis's refusal. One node's word can only admit
    what genesis does not know, and the ledger judges what is signed."""
    g = _genesis(args)
    try:
        return attempt(g)
    except (InvalidFieldError, SigningError, TradeError) as refused:
        nodes = (_run_dir(args) / "network.json").is_file()
        if isinstance(refused, TermsMismatchError) or not nodes:
            raise
        try:
            with _client(args, key) as client:
                reference = client.reference().registry
        except LedgerError:
            raise refused from None
        return attempt(reference)


def _sign_dvp(args: argparse.Namespace) -> int:
    terms = (args.seller, args.buyer, args.bond, args.quantity, args.cash, args.amount)
    if args.lot is not None and not args.pending:
        raise CliError("--lot needs --pending (only a pending DvP settles in part)", EXIT_USAGE)
    seller_key = _key(args, args.seller, args.key)

    def attempt(reference: Genesis | Registry) -> tuple[DvP | PendingDvP, str]:
        build = Transactions(_genesis(args))
        build.reference = reference
        dvp: DvP | PendingDvP
        if args.pending:
            dvp = build.pending_dvp(
                *terms, args.deadline_s, lot=args.lot or 0, cosigner=args.cosign or ""
            )
        else:
            dvp = build.dvp(*terms, args.deadline_s, cosigner=args.cosign or "")
        return dvp, propose_dvp(dvp, seller_key, reference)

    dvp, text = _offline_first(args, seller_key, attempt)
    _write(args.out, text)
    trade = PartialTrade.loads(text)
    if args.json:
        emit_json({"trade_file": str(args.out), **trade.to_json()})
        return EXIT_OK
    print(f"signed as seller {args.seller}: {describe(dvp)}")
    print(f"tx id {trade.tx_id.hex()}; settle by {timestamp(dvp.deadline_ms)}")
    print(f"wrote {args.out}; the buyer co-signs it: ledger cosign {args.out} --out signed.json")
    if dvp.cosigner:
        print(f"and {dvp.cosigner} (compliance): ledger sign compliance FILE --out FILE")
    return EXIT_OK


def _expectations(args: argparse.Namespace) -> dict[str, object]:
    pairs = {
        "seller": args.expect_seller,
        "bond": args.expect_bond,
        "quantity": args.expect_quantity,
        "cash": args.expect_cash,
        "amount": args.expect_amount,
    }
    return {k: v for k, v in pairs.items() if v is not None}


def _cosign(args: argparse.Namespace) -> int:
    text = _read(args.trade)
    buyer = PartialTrade.loads(text).terms.buyer
    key = _key(args, buyer, args.key)
    signed = _offline_first(
        args, key, lambda ref: accept_dvp(text, key, ref, expect=_expectations(args))
    )
    _write(args.out, signed.dumps())
    if args.json:
        emit_json({"trade_file": str(args.out), **signed.to_json()})
        return EXIT_OK
    tx = signed.tx
    print(f"co-signing as buyer {buyer}: {describe(tx)}")
    _terms_table(tx)
    if signed.missing_signers():
        nxt = f"ledger sign compliance {args.out} --out cosigned.json"
        print(f"wrote {args.out}; {', '.join(signed.missing_signers())} co-signs it: {nxt}")
    else:
        print(f"wrote {args.out}; submit it: ledger submit dvp {args.out}")
    return EXIT_OK


def _sign_compliance(args: argparse.Namespace) -> int:
    """The compliance officer's co-signature (AML large-value rule), before or after the
    buyer's: the file it writes keeps its format (a trade for the buyer, or a signed
    transaction for `ledger submit`)."""
    stx, trade = read_signed(_read(args.trade))  # by its format: the refusal says why
    named = getattr(stx.tx, "cosigner", "")
    if not named:
        raise CliError(f"{args.trade} names no co-signer (sign it with --cosign ID)", EXIT_USAGE)
    key = _key(args, named, args.key)
    signed = _offline_first(args, key, lambda ref: cosign(stx, key, ref))
    _write(args.out, PartialTrade(signed).dumps() if trade else signed.dumps())
    if args.json:
        emit_json({"trade_file": str(args.out), **signed.to_json()})
        return EXIT_OK
    missing = signed.missing_signers()
    print(f"co-signed as {named} (compliance): {describe(signed.tx)}")
    print(f"wrote {args.out}; " + (f"still to sign: {', '.join(missing)}" if missing else
          f"submit it: ledger submit dvp {args.out}"))  # fmt: skip
    return EXIT_OK


# --- submit ---------------------------------------------------------------------------------


# Who a query calls as when neither --as nor the command names a participant: the run
# directory's auditor, as `make genesis` writes it (the operator's own machine holds every
# demo key). Elsewhere pass --as ID.
_FALLBACK_IDENTITY = OPERATOR_IDENTITY


def _identity(args: argparse.Namespace, implied: ParticipantKey | str | None) -> ParticipantKey:
    """The identity every call is signed with (docs/cli.md "Identity"): --identity-key's file,
    else --as, else the participant the command implies (the signer, the account), else the
    auditor's key in the run directory."""
    chosen: str | None = getattr(args, "as_id", None)
    as_key: Path | None = getattr(args, "as_key", None)
    if as_key is not None:  # the named file signs, for --as or the id its name gives
        if chosen is None:
            try:
                check_id(as_key.stem, "participant id")
            except ValueError as e:
                raise CliError(f"--identity-key {as_key}: {e}; pass --as ID", EXIT_USAGE) from None
        return load_key(as_key, chosen)
    if chosen is None and isinstance(implied, ParticipantKey):
        return implied
    pid = chosen or (implied if isinstance(implied, str) else None) or _FALLBACK_IDENTITY
    path = _run_dir(args) / "participants" / f"{pid}.key"
    if not path.is_file():
        raise CliError(f"no key for identity {pid} at {path} (pass --as ID)", EXIT_USAGE)
    return load_key(path, pid)


@contextmanager
def _client(
    args: argparse.Namespace, implied: ParticipantKey | str | None = None
) -> Iterator[LedgerClient]:
    run_dir = _run_dir(args)
    if not (run_dir / "network.json").is_file():
        raise CliError(
            f"no network in run directory {run_dir} (pass --run-dir or set LEDGER_RUN_DIR; "
            "`make genesis` makes one)",
            EXIT_USAGE,
        )
    key, observer = _identity(args, implied), getattr(args, "observer", False)
    with LedgerClient.from_run_dir(run_dir, identity=key, observer=observer) as client:
        yield client


@contextmanager
def _closing(it: Iterator[T]) -> Iterator[Iterator[T]]:
    """Close a generator left early (``--count``), so its stream is cancelled at once."""
    try:
        yield it
    finally:
        close = getattr(it, "close", None)
        if close is not None:
            close()


def _submit(args: argparse.Namespace, stx: SignedTransaction) -> int:
    """Submit a transaction signed already (a trade file, an admin change)."""
    with _client(args, stx.tx.required_signers()[0]) as client:
        return _submit_with(client, args, stx)


Build = Callable[[Transactions], Transaction]


def _submit_built(args: argparse.Namespace, build: Build, *keys: ParticipantKey) -> int:
    """Build the transaction a command describes, sign it with ``keys`` (the first is the
    identity the calls are signed with) and submit it."""
    with _client(args, keys[0]) as client:
        return _submit_with(client, args, _signed(client, build, keys))


def _signed(
    client: LedgerClient, build: Build, keys: Sequence[ParticipantKey]
) -> SignedTransaction:
    """``build`` and sign, names and keys checked against the ledger's reference data as
    ``client``'s node holds it now, not genesis alone: governance adds participants and
    instruments and rotates keys (ADR 0016), and what it added must work from the CLI as
    from the SDK. That data is one node's word: what it refuses but genesis allows is
    signed against genesis, and the ledger judges it, so a node lying about who exists or
    which key is whose cannot block a submit (it can only fail to vouch for what governance
    added)."""
    client.reference()  # from now on what client.tx and client.sign check against
    try:
        return client.sign(build(client.tx), *keys)
    except (InvalidFieldError, SigningError) as refused:
        client.tx.reference = client.genesis
        try:
            return client.sign(build(client.tx), *keys)
        except (InvalidFieldError, SigningError):
            raise refused from None


def _submit_with(client: LedgerClient, args: argparse.Namespace, stx: SignedTransaction) -> int:
    if args.no_wait:
        client.submit(stx, wait=False, timeout_s=args.timeout)
        if args.json:
            emit_json({"tx_id": stx.tx_id.hex(), "state": "ACCEPTED"})
        else:
            print(f"accepted, not waiting for finality: {describe(stx.tx)}")
            print(f"tx id     {stx.tx_id.hex()} (follow it: ledger tx TX_ID)")
        return EXIT_OK
    t0 = time.perf_counter()
    timed_out = False
    try:
        receipt = client.submit(stx, timeout_s=args.timeout, prove_result=not args.finality_only)
        if args.wait_settled and receipt.waiting:
            left = max(0.001, args.timeout - (time.perf_counter() - t0))
            try:
                receipt = client.wait_settled(stx.tx_id, timeout_s=left)
            except FinalityTimeoutError:
                timed_out = True  # recorded pending, final as such: it has not settled yet
    except RejectedError as e:
        if args.receipt_out is not None:  # a refusal is provable too
            _write(args.receipt_out, e.receipt.dumps())
        raise
    elapsed_ms = (time.perf_counter() - t0) * 1000
    if args.receipt_out is not None:
        _write(args.receipt_out, receipt.dumps())
    if args.json:
        emit_json({
            **receipt.to_json(), "final": receipt.final, "elapsed_ms": round(elapsed_ms, 1),
            "outcome": receipt.outcome.name, "settled": receipt.ok, "waiting": receipt.waiting,
        })  # fmt: skip
        return EXIT_FAILED if timed_out else EXIT_OK
    print(f"{_headline(receipt, elapsed_ms, timed_out=timed_out)}: {describe(stx.tx)}")
    print("\n".join(_receipt_lines(receipt)))
    if args.receipt_out is not None:
        check = "" if receipt.final else " --inclusion-only"
        verify = f"ledger verify-receipt {args.receipt_out}{check}"
        print(f"receipt   {args.receipt_out} (check it: {verify})")
    return EXIT_FAILED if timed_out else EXIT_OK


def _headline(receipt: Receipt, elapsed_ms: float, *, timed_out: bool) -> str:
    """What happened, first: a pending trade's receipt says PENDING_SETTLEMENT whatever its
    later event, so "settled" above it must come from the event (review 32: "settled in"
    stood above a trade still pending). Without the result proof (--finality-only) the
    receipt shows the transaction in a committed block, not settled: the ledger may have
    refused that copy (ADR 0024)."""
    ms = f"{elapsed_ms:.0f} ms"
    if not receipt.final:
        return f"included in {ms} (not final)"
    if receipt.waiting:
        if timed_out:
            return f"STILL PENDING after {ms}, not settled within --timeout (ledger tx TX_ID)"
        return f"recorded PENDING_SETTLEMENT in {ms}, not settled yet (see --wait-settled)"
    ev = receipt.event_proof
    if receipt.code is ResultCode.PENDING_SETTLEMENT and ev is not None:
        if receipt.ok:
            return f"settled after recycling in {ms} (at the end of block {ev.height})"
        return f"ENDED {ev.code.name} without settling in full, after {ms} (block {ev.height})"
    return f"settled in {ms}"


def _submit_issue(args: argparse.Namespace) -> int:
    key = _key(args, args.by, args.key)
    return _submit_built(
        args, lambda t: t.issue(args.instrument, args.to, args.amount, args.by), key
    )


def _submit_transfer(args: argparse.Namespace) -> int:
    cosigner = args.cosign or ""
    keys = [_key(args, args.sender, args.key)]
    if cosigner:  # the compliance officer's key in the run directory (or --cosign-key)
        keys.append(_key(args, cosigner, args.cosign_key))
    terms = (args.instrument, args.sender, args.receiver, args.amount)
    return _submit_built(args, lambda t: t.transfer(*terms, cosigner=cosigner), *keys)


def _submit_redeem(args: argparse.Namespace) -> int:
    keys = [_key(args, args.by, args.by_key)]
    if args.holder != args.by:
        keys.append(_key(args, args.holder, args.holder_key))
    terms = (args.instrument, args.holder, args.amount, args.by)
    return _submit_built(args, lambda t: t.redeem(*terms), *keys)


def _submit_hold(args: argparse.Namespace) -> int:
    tid, key = _tx_id(args.instruction), _key(args, args.by, args.key)
    return _submit_built(args, lambda t: t.hold(tid, args.by), key)


def _submit_release(args: argparse.Namespace) -> int:
    tid, key = _tx_id(args.instruction), _key(args, args.by, args.key)
    return _submit_built(args, lambda t: t.release(tid, args.by), key)


def _submit_cancel(args: argparse.Namespace) -> int:
    tid = _tx_id(args.instruction)
    keys = [_key(args, args.seller, args.seller_key), _key(args, args.buyer, args.buyer_key)]
    return _submit_built(args, lambda t: t.cancel(tid, args.seller, args.buyer), *keys)


def _submit_dvp(args: argparse.Namespace) -> int:
    g = _genesis(args)
    # A seller's proposal too (read by its format), to say who must still sign.
    stx, _ = read_signed(_read(args.trade))
    if stx.tx.chain_id != g.chain_id:
        raise CliError(f"{args.trade} is for another chain than {_run_dir(args)}/genesis.json")
    missing = stx.missing_signers()
    if missing:
        raise CliError(
            f"{args.trade} lacks the signature of {', '.join(missing)} "
            "(the buyer runs `ledger cosign` first; a named compliance co-signer "
            "`ledger sign compliance`)"
        )
    return _submit(args, stx)


# --- queries --------------------------------------------------------------------------------


def _balance(args: argparse.Namespace) -> int:
    g, key = _genesis(args), _run_dir(args) / "participants" / f"{args.account}.key"
    named = args.as_id is not None or args.as_key is not None
    if args.account not in g.participant_by_id and not named and not key.is_file():
        raise CliError(
            f"{args.account} is not a participant of this ledger's genesis (one governance "
            "added: pass --as ID or --identity-key FILE, or put its key in the run directory)",
            EXIT_USAGE,
        )
    with _client(args, args.account) as client:
        reg = client.reference().registry  # participants and instruments governance added too
        if args.account not in reg.participant_by_id:
            raise CliError(f"{args.account} is not a participant of this ledger", EXIT_USAGE)
        b = client.balances(args.account)
    if args.json:
        emit_json({"account": b.account, "height": b.height, "balances": dict(b.amounts)})
        return EXIT_OK
    print(f"{b.account} after block {b.height} (integers, minor units)")
    rows = []
    for inst_id, value in sorted(b.amounts.items()):
        inst = reg.instrument(inst_id)
        unit = "?" if inst is None else _unit(inst)
        rows.append((inst_id, "?" if inst is None else inst.kind.value, amount(value), unit))
    table(("instrument", "kind", "balance", "unit"), rows, right=(2,))
    return EXIT_OK


def _unit(inst: Instrument) -> str:
    if inst.kind is InstrumentKind.BOND:
        return f"units of {inst.unit_face_minor} {inst.currency} minor face each"
    return f"{inst.currency} minor units"


def _tx_id(text: str) -> bytes:
    try:
        raw = bytes.fromhex(text)
    except ValueError:
        raw = b""
    if len(raw) != HASH_LEN:
        raise CliError(f"{text!r} is not a transaction id (64 hex digits)", EXIT_USAGE)
    return raw


def _tx(args: argparse.Namespace) -> int:
    tid = _tx_id(args.tx_id)
    with _client(args) as client:
        st = client.transaction(tid)
        receipt = st.receipt
        if receipt is not None and args.receipt_out is not None:
            # With the proof of the result, which needs the next block (a moment at most).
            receipt = client.receipt(tid, timeout_s=30.0)
            _write(args.receipt_out, receipt.dumps())
            st = dataclasses.replace(st, state="COMMITTED", receipt=receipt)  # now proven
    if args.json:
        emit_json(
            {
                "tx_id": tid.hex(),
                "state": st.state,
                "terms": None if receipt is None else terms_of(_tx_of_receipt(receipt)),
                "receipt": None if receipt is None else receipt.to_json(),
                "settlement": None if st.settlement is None else _settlement_json(st.settlement),
            }
        )
        return EXIT_OK
    if receipt is None:
        print(f"tx {tid.hex()} is {st.state}: accepted, not in a committed block yet")
        return EXIT_OK
    print(f"{st.state}: {describe(_tx_of_receipt(receipt))}")
    print("\n".join(_receipt_lines(receipt)))
    if st.settlement is not None:
        p = st.settlement
        print(
            f"settled   {amount(p.settled_quantity)} bond units for {amount(p.settled_amount)} "
            f"so far; latest {p.code.name} in block {p.height} (the node's word)"
        )
    if args.receipt_out is not None:
        print(f"receipt   {args.receipt_out} (check it: ledger verify-receipt {args.receipt_out})")
    return EXIT_OK


def _settlement_json(p: Settlement) -> dict[str, object]:
    return {
        "code": p.code.name,
        "height": p.height,
        "index": p.index,
        "settled_quantity": p.settled_quantity,
        "settled_amount": p.settled_amount,
    }


def _block_tx_json(t: BlockTx) -> dict[str, object]:
    return {
        "position": t.position,
        "tx_id": t.tx_id.hex(),
        "code": t.code.name,
        "terms": None if t.tx is None else terms_of(t.tx),
    }


def _block(args: argparse.Namespace) -> int:
    with _client(args) as client:
        b = client.block(args.height)
    if args.json:
        emit_json(
            {
                "height": b.height,
                "hash": b.hash.hex(),
                "time_ms": b.time_ms,
                "state_root": b.state_root.hex(),
                "transactions": [_block_tx_json(t) for t in b.transactions],
                "events": [
                    {
                        "index": e.index,
                        "tx_id": e.tx_id.hex(),
                        "code": e.code.name,
                        "kind": _event_kind(e),
                    }
                    for e in b.events
                ],
                "results_proven": b.results_proven,
            }
        )
        return EXIT_OK
    print(f"block {b.height} at {timestamp(b.time_ms)}, {len(b.transactions)} transactions")
    print(f"hash {b.hash.hex()}  state root {b.state_root.hex()[:16]}...")
    print(f"(commit certificate checked against genesis; {_proven_line(b)})")
    for e in b.events:
        print(f"event #{e.index}: {_event_line(e)}")
    if b.transactions:
        table(
            ("pos", "tx id", "result", "transaction"),
            [
                (t.position, t.tx_id.hex(), t.code.name, "?" if t.tx is None else describe(t.tx))
                for t in b.transactions
            ],
            right=(0,),
        )
    return EXIT_OK


def _event_kind(e: BlockEvent) -> str:
    return "repo_lapse" if e.repo_lapse else "pending_trade"


def _event_line(e: BlockEvent) -> str:
    """One event: a pending trade's outcome, or a repo's lapse (review 32), named by the
    id of the RepoOpen that opened it."""
    if e.repo_lapse:
        return (
            f"repo opened by {e.tx_id.hex()[:16]} lapsed DEFAULTED ({e.code.name}; "
            "`ledger repo list` names the defaulter)"
        )
    return f"pending trade {e.tx_id.hex()[:16]} {e.code.name}"


def _proven_line(b: BlockView) -> str:
    """What proves the block's results (ADR 0026)."""
    if b.filtered:
        return "filtered: each result shown proven by its path"
    if b.results_proven:
        return f"results and state root proven by block {b.height + 1}'s certified header"
    return "the chain's last block: no block certifies its results yet (it shows none)"


def _status(args: argparse.Namespace) -> int:
    """The one status command (client/_status.py; `make status` runs it too)."""
    with _client(args) as client:
        doc = node_status.collect(client)
    if node_status.show(doc, args.json) != node_status.EXIT_HEALTHY:
        raise CliError(f"{len(doc.problems)} problem(s): {'; '.join(doc.problems)}")
    return EXIT_OK


def _watch_line(where: tuple[int, int, int], code: str, text: str, tid: bytes) -> str:
    """``where`` is (height, position, block time in ms)."""
    height, position, time_ms = where
    return f"{height:>7} #{position:<3} {timestamp(time_ms)}  {code:<8} {text}  tx {tid.hex()[:16]}"


def _legs(legs: tuple[tuple[str, int], ...]) -> str:
    return ", ".join(f"{inst} {'+' if d >= 0 else '-'}{amount(abs(d))}" for inst, d in legs)


def _watched(
    client: LedgerClient, account: str | None, start: int
) -> Iterator[tuple[str, dict[str, Any]]]:
    """(line, JSON document) for each committed transaction from block ``start`` on."""
    if account is not None:
        with _closing(client.events(account, start)) as events:
            for ev in events:
                text = f"{ev.kind} {account}: {_legs(ev.legs) or 'no balance change'}"
                doc = {
                    "height": ev.height,
                    "position": ev.position,
                    "time_ms": ev.time_ms,
                    "tx_id": ev.tx_id.hex(),
                    "kind": ev.kind,
                    "code": ev.code.name,
                    "account": account,
                    "legs": [[inst, d] for inst, d in ev.legs],
                }
                where = (ev.height, ev.position, ev.time_ms)
                yield _watch_line(where, ev.code.name, text, ev.tx_id), doc
        return
    with _closing(client.blocks(start)) as blocks:
        for b in blocks:
            for t in b.transactions:
                text = "?" if t.tx is None else describe(t.tx)
                doc = {"height": b.height, "time_ms": b.time_ms, **_block_tx_json(t)}
                where = (b.height, t.position, b.time_ms)
                yield _watch_line(where, t.code.name, text, t.tx_id), doc


def _watch(args: argparse.Namespace) -> int:
    seen = 0
    with _client(args, args.account) as client:
        start = args.from_height or client.head() + 1
        if not args.json:
            who = f" touching {args.account}" if args.account else ""
            print(f"watching committed transactions{who} from block {start} (Ctrl-C stops)")
        for line, doc in _watched(client, args.account, start):
            if args.json:
                print(json.dumps(doc), flush=True)  # JSON Lines: one object per transaction
            else:
                print(line, flush=True)
            seen += 1
            if args.count is not None and seen >= args.count:
                break
    return EXIT_OK


# --- fails management (client/_cli_settlement.py) ------------------------------------------


def _pending(args: argparse.Namespace) -> int:
    with _client(args) as client:
        height, book = client.pending()
    settlement.print_pending(height, book, args.json)
    return EXIT_OK


def _check_range(args: argparse.Namespace) -> None:
    """``--from`` above ``--to`` names no block: a usage error, not an empty answer (before
    review 33 ``fails`` printed none and ``report settlement`` a report of "blocks 10..5",
    exit 0). A ``--from`` above the head is no error: those blocks may come."""
    if args.to_height is not None and args.from_height > args.to_height:
        raise CliError(
            f"--from {args.from_height} is above --to {args.to_height}: no block is in that "
            "range (heights, inclusive)",
            EXIT_USAGE,
        )


def _blocks_in(client: LedgerClient, args: argparse.Namespace) -> tuple[int, list[BlockView]]:
    """The blocks ``--from``..``--to`` (the head when omitted), and the last height. The
    head is read on its own: ``blocks()`` sends an idle chain's last block only once a
    block after it shows it was quiet (ADR 0026)."""
    head = client.head()
    last = head if args.to_height is None else min(args.to_height, head)
    if args.from_height > last:
        return last, []
    streamed = last - 1 if last == head else last
    out: list[BlockView] = []
    if args.from_height <= streamed:
        with _closing(client.blocks(args.from_height)) as blocks:
            for b in blocks:
                out.append(b)
                if b.height >= streamed:
                    break
    if last == head:
        out.append(client.block(last))
    return last, out


def _trade_of(client: LedgerClient, tid: bytes) -> Transaction | None:
    receipt = client.transaction(tid).receipt
    return None if receipt is None else _tx_of_receipt(receipt)


def _fails(args: argparse.Namespace) -> int:
    _check_range(args)
    with _client(args) as client:
        _, blocks = _blocks_in(client, args)
        fails = settlement.fails_of(blocks)
        trades = {f.tx_id: _trade_of(client, f.tx_id) for f in fails}
    settlement.print_fails(fails, lambda tid: _described(trades.get(tid)), args.json)
    return EXIT_OK


def _described(tx: Transaction | None) -> str:
    return "?" if tx is None else describe(tx)


def _report_settlement(args: argparse.Namespace) -> int:
    _check_range(args)
    with _client(args) as client:
        last, blocks = _blocks_in(client, args)

        def recorded_at(tid: bytes) -> int | None:
            receipt = client.transaction(tid).receipt
            return None if receipt is None else receipt.block_time_ms

        finality = (
            settlement.finality_of(client.timelines(args.from_height, last)) if blocks else {}
        )
        report = settlement.report_of(blocks, args.from_height, last, recorded_at, finality)
    settlement.print_report(report, args.json)
    return EXIT_OK


_COMMANDS: dict[str, Command] = {
    "sign_dvp": _sign_dvp,
    "cosign": _cosign,
    "sign_compliance": _sign_compliance,
    "submit_issue": _submit_issue,
    "submit_transfer": _submit_transfer,
    "submit_redeem": _submit_redeem,
    "submit_dvp": _submit_dvp,
    "submit_hold": _submit_hold,
    "submit_release": _submit_release,
    "submit_cancel": _submit_cancel,
    "pending": _pending,
    "fails": _fails,
    "report_settlement": _report_settlement,
    "balance": _balance,
    "tx": _tx,
    "block": _block,
    "status": _status,
    "watch": _watch,
}
