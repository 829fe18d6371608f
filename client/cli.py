"""``ledger``: the command line of the settlement ledger, on top of the SDK.

Every command has ``--help``. Output is a readable table or a few lines by default and
JSON with ``--json``. Exit codes: 0 done; 1 the operation failed (a refused trade, an
invalid receipt, no node reachable); 2 a usage error (bad arguments, no run directory).
A failure prints exactly one line, ``ledger: error: <reason>``, on stderr; when retrying
is safe (a timeout, a busy or unreachable node) the line says so.

The run directory (``--run-dir``, else ``$LEDGER_RUN_DIR``, else ``run``) is what
``make genesis`` writes (a dev tool, devtools/netgen.py; across machines the ceremony of
``ledger-node keygen``, docs/deploy.md): ``network.json`` (the nodes), ``validators.pem``,
``genesis.json`` and ``participants/<ID>.key``, where signing keys are looked for unless
``--key`` names a file. Every call to a node is signed as one participant (``--as ID``;
by default the signer or account the command names, else ``AUDITOR``): docs/cli.md
"Identity".

Commands that need no node (``keys``, ``verify-receipt``) live here; the
others are in ``_cli_net.py``, imported only when one of them runs.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NoReturn, cast

from client import _cli_lock
from client._cli_common import (
    ATTEST_HELP,
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    PROG,
    REPORT_HELP,
    CliError,
    emit_json,
)
from client._cli_console import HELP as console_help
from client._cli_console import console_options
from client._cli_console import run as console_run
from client._cli_margin import add_parsers as add_margin
from client._cli_repo import add_commands as add_repo_commands
from client._limits import REPLAY_BLOCKS_MAX
from node._version import __version__
from node.config import U64_MAX
from node.files import read_regular_text
from node.genesis import load_genesis
from node.keyfiles import KeyFileError, load_signing_key
from node.receipt import InvalidReceiptError, Receipt, verify_receipt
from node.settlement import Genesis, GenesisError

__all__ = ["EXIT_FAILED", "EXIT_OK", "EXIT_USAGE", "CliError", "main"]

RUN_DIR_ENV = "LEDGER_RUN_DIR"
_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,63}\Z")


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (and exit 2), not the usage block."""

    def error(self, message: str) -> NoReturn:
        raise CliError(f"{message} (see `{self.prog} --help`)", EXIT_USAGE)


Handler = Callable[[argparse.Namespace], int]


# --- argument types (a bad value is a usage error, exit 2) -------------------------------


def participant_id(text: str) -> str:
    if not _ID_RE.match(text):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an id: 1-64 ASCII letters, digits or . _ : -, "
            "starting with a letter or digit"
        )
    return text


def amount(text: str) -> int:
    """A positive integer in minor units, at most 2**64 - 1; never a float."""
    digits = text.replace("_", "").replace(",", "")
    if not digits.isdigit() or not digits.isascii():
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a whole number of minor units (integers only: 1050 for 10.50)"
        )
    value = int(digits)
    if not 0 < value <= U64_MAX:
        raise argparse.ArgumentTypeError(f"{text} is out of range: 1..{U64_MAX}")
    return value


def positive_int(text: str) -> int:
    if not text.isdigit() or not text.isascii() or int(text) == 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive integer")
    return int(text)


def seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not 0 < value <= 3600:
        raise argparse.ArgumentTypeError(f"{text} s is out of range: more than 0, at most 3600")
    return value


# --- offline commands ----------------------------------------------------------------------


def _cmd_keys_gen(args: argparse.Namespace) -> int:
    from client import KeyFileError, generate_key

    out: Path = args.out or Path(args.run_dir) / "participants" / f"{args.participant}.key"
    try:
        out.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        key = generate_key(out, args.participant)  # refuses an existing file
    except KeyFileError as e:
        raise CliError(str(e)) from None
    except OSError as e:
        raise CliError(f"cannot create {out.parent}: {e.strerror}") from None
    public = key.public_key.hex()
    if args.json:
        emit_json({"participant": args.participant, "public_key": public, "key_file": str(out)})
    else:
        print(f"wrote {out} (mode 0600) for {args.participant}")
        print(f"public key: {public}")
        print("put the public key in genesis as this participant's public_key")
    return EXIT_OK


def _cmd_keys_show(args: argparse.Namespace) -> int:
    try:
        key = load_signing_key(args.file)
    except KeyFileError as e:
        raise CliError(str(e)) from None
    pub = key.public_key.hex()
    owners = _owners(Path(args.run_dir), key.public_key)
    if args.json:
        emit_json({"key_file": str(args.file), "public_key": pub, "participants": owners})
    else:
        print(f"public key: {pub}")
        if owners:
            print(f"genesis participant: {', '.join(owners)}")
    return EXIT_OK


def _owners(run_dir: Path, public_key: bytes) -> list[str]:
    """Participants of the run directory's genesis holding ``public_key`` (if it has one)."""
    path = run_dir / "genesis.json"
    if not path.is_file():
        return []
    try:
        g = load_genesis(path)
    except (GenesisError, ValueError, OSError):
        return []
    return [p.id for p in g.participants if p.public_key == public_key]


def _cmd_verify_receipt(args: argparse.Namespace) -> int:
    genesis = Path(args.genesis or Path(args.run_dir) / "genesis.json")
    try:
        g = load_genesis(genesis)
    except FileNotFoundError:
        raise CliError(
            f"no genesis at {genesis} (pass --genesis or --run-dir)", EXIT_USAGE
        ) from None
    except (GenesisError, ValueError, OSError) as e:
        raise CliError(f"{genesis}: not a valid genesis: {e}", EXIT_USAGE) from None
    try:
        text = read_regular_text(args.file)
    except (OSError, UnicodeDecodeError) as e:
        raise CliError(f"cannot read {args.file}: {e}") from None
    try:
        receipt = Receipt.loads(text)
        if not receipt.final and not args.inclusion_only:
            # --finality-only no longer waives the proof: without it nothing shows that the
            # ledger recorded the id (a copy signed with a rotated-out key is included and
            # refused), so no receipt without it is reported final (ADR 0024).
            raise InvalidReceiptError(
                f"no proof of the result yet (it needs block {receipt.height + 1}), and "
                "without it the receipt does not show the transaction final; fetch it with "
                f"`ledger tx {receipt.tx_id.hex()} --receipt-out FILE`, or pass "
                "--inclusion-only to check only that this copy is in a committed block"
            )
        verify_receipt(receipt, g, require_result=not args.inclusion_only)
    except InvalidReceiptError as e:
        raise CliError(f"invalid receipt: {e}") from None
    if not receipt.final:
        return _included_only(receipt, g, args.json)
    signers = len(receipt.signers)
    if args.json:
        emit_json(
            {
                "valid": True,
                "tx_id": receipt.tx_id.hex(),
                "code": receipt.code.name,
                "meaning": receipt.meaning,
                "height": receipt.height,
                "position": receipt.position,
                "signers": signers,
                "validators": len(g.validators),
                "quorum": g.quorum,
                "result_proved": True,
                "final": True,
                "event": None
                if receipt.event_proof is None
                else {"code": receipt.event_proof.code.name, "height": receipt.event_proof.height},
            }
        )
    else:
        print(
            f"valid: tx {receipt.tx_id.hex()} {receipt.code.name} in block {receipt.height} "
            f"at position {receipt.position}, certified by {signers} of "
            f"{len(g.validators)} validators (quorum {g.quorum}); result certified by block "
            f"{receipt.height + 1}"
        )
        ev = receipt.event_proof
        if ev is not None:  # a pending DvP's later outcome (ADR 0014), proven as well
            print(f"later: {ev.code.name} at the end of block {ev.height}, certified by block "
                  f"{ev.height + 1}")  # fmt: skip
    return EXIT_OK


def _included_only(receipt: Receipt, g: Genesis, as_json: bool) -> int:
    """``verify-receipt --inclusion-only`` of a receipt without its result proof: what it
    proves (this copy is in a committed block), and that it does not prove the id final."""
    signers = len(receipt.signers)
    if as_json:
        emit_json(
            {
                "valid": True,
                "tx_id": receipt.tx_id.hex(),
                "code": None,  # the node's word only: not reported as a result
                "node_says": receipt.code.name,
                "height": receipt.height,
                "position": receipt.position,
                "signers": signers,
                "validators": len(g.validators),
                "quorum": g.quorum,
                "result_proved": False,
                "final": False,
            }
        )
        return EXIT_OK
    print(
        f"included: a copy of tx {receipt.tx_id.hex()} is at position {receipt.position} of "
        f"block {receipt.height}, certified by {signers} of {len(g.validators)} validators "
        f"(quorum {g.quorum})"
    )
    print(
        f"NOT final: only block {receipt.height + 1}'s result proof shows that the ledger "
        f"recorded this transaction, and its result (the node says {receipt.code.name})"
    )
    return EXIT_OK


# --- the parser ----------------------------------------------------------------------------


def _network(name: str) -> Handler:
    """A handler from ``_cli_net`` (imported on first use, so offline commands stay light)."""

    def run(args: argparse.Namespace) -> int:
        from client import _cli_net

        return _cli_net.run(name, args)

    return run


def _globals(default: bool) -> _Parser:
    """--run-dir and --json, accepted before or after the command."""
    p = _Parser(add_help=False)
    run_dir = os.environ.get(RUN_DIR_ENV) or "run"
    p.add_argument(
        "--run-dir",
        default=run_dir if default else argparse.SUPPRESS,
        help=f"run directory with network.json, validators.pem, genesis.json, participants/ "
        f"(default: ${RUN_DIR_ENV} or run; now {run_dir})",
    )
    p.add_argument(
        "--as",
        dest="as_id",
        metavar="ID",
        default=None if default else argparse.SUPPRESS,
        help="participant every call is signed as (its key: participants/ID.key in the run "
        "directory, or --identity-key); default: the signer or account the command names, "
        "else AUDITOR",
    )
    p.add_argument(
        "--identity-key",
        dest="as_key",
        type=Path,
        metavar="FILE",
        default=None if default else argparse.SUPPRESS,
        help="key file of the identity every call is signed as, kept outside the run directory "
        "(a participant governance added); its id is --as, else the file's name (BANK07.key)",
    )
    p.add_argument(
        "--observer",
        action="store_true",
        default=False if default else argparse.SUPPRESS,
        help="the --as identity holds an observer role (an auditor, a regulator): a node "
        "that sends it a party-filtered block is at fault and the next one is asked",
    )
    p.add_argument(
        "--json",
        action="store_true",
        default=False if default else argparse.SUPPRESS,
        help="machine-readable JSON output",
    )
    return p


class _Builder:
    def __init__(self) -> None:
        self.common = _globals(default=False)
        self.root = _Parser(
            prog=PROG,
            description="Command line of the DvP settlement ledger: keys, genesis, signed "
            "trades, queries and offline receipt checks.",
            epilog="Exit codes: 0 ok, 1 the operation failed, 2 usage error. "
            "Amounts are integers in minor units.",
            parents=[_globals(default=True)],
        )
        self.root.add_argument("--version", action="version", version=f"{PROG} {__version__}")
        self.top = self.root.add_subparsers(dest="command", required=True, metavar="COMMAND")
        self.groups: dict[str, argparse._SubParsersAction[_Parser]] = {}

    def leaf(
        self,
        sub: argparse._SubParsersAction[_Parser],
        name: str,
        help_: str,
        fn: Handler,
        *,
        parents: Sequence[_Parser] = (),
        **kw: object,
    ) -> _Parser:
        p = sub.add_parser(
            name,
            help=help_,
            description=help_[0].upper() + help_[1:] + ".",
            parents=[self.common, *parents],
            **kw,  # type: ignore[arg-type]
        )
        p.set_defaults(fn=fn)
        return p

    def group(self, name: str, help_: str) -> argparse._SubParsersAction[_Parser]:
        """The command group ``name``, made once: a part adds its subcommands to a group
        another part made (``ledger attest price``, ``ledger repo margin``)."""
        if name not in self.groups:
            p = self.top.add_parser(
                name, help=help_, description=help_[0].upper() + help_[1:] + "."
            )
            self.groups[name] = p.add_subparsers(
                dest="subcommand", required=True, metavar="SUBCOMMAND"
            )
        return self.groups[name]


def _submit_options() -> _Parser:
    p = _Parser(add_help=False)
    p.add_argument(
        "--no-wait",
        action="store_true",
        help="return once a node accepted the transaction; do not wait for finality",
    )
    p.add_argument(
        "--timeout",
        type=seconds,
        default=30.0,
        metavar="SECONDS",
        help="how long to wait for finality (default 30)",
    )
    p.add_argument(
        "--receipt-out",
        type=Path,
        metavar="FILE",
        help="write the receipt as JSON (for verify-receipt)",
    )
    p.add_argument(
        "--finality-only",
        action="store_true",
        help="do not wait one more block for the proof of the result (the receipt then "
        "proves only that the transaction is in a committed block, not that it is final)",
    )
    p.add_argument(
        "--wait-settled",
        action="store_true",
        help="for a pending DvP recorded PENDING_SETTLEMENT, also wait (within --timeout) "
        "for its final event: settled, failed at its deadline, or cancelled",
    )
    return p


def _add_keys(b: _Builder) -> None:
    keys = b.group("keys", "participant signing keys (Ed25519)")
    p = b.leaf(
        keys, "gen", "generate a participant's signing key (refuses to overwrite)", _cmd_keys_gen
    )
    p.add_argument(
        "--participant",
        required=True,
        type=participant_id,
        metavar="ID",
        help="the participant id the key signs for",
    )
    p.add_argument(
        "--out",
        type=Path,
        metavar="FILE",
        help="key file to create, mode 0600 (default: RUN_DIR/participants/ID.key)",
    )
    p = b.leaf(keys, "show", "print the public key of a key file", _cmd_keys_show)
    p.add_argument("file", type=Path, metavar="FILE", help="a PKCS8 PEM key file")


def _instrument_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--instrument",
        required=True,
        type=participant_id,
        metavar="ID",
        help="instrument id (a bond ISIN or a cash token)",
    )


def _amount_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--amount", required=True, type=amount, help="minor units (integer)")


def _by_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--by", required=True, type=participant_id, metavar="ISSUER", help="issuer or custodian"
    )


def _add_submit(b: _Builder) -> None:
    sub = b.group("submit", "sign with the participants' keys, submit and wait for finality")
    opts = [_submit_options()]
    p = b.leaf(
        sub, "issue", "issue (mint) units to an account", _network("submit_issue"), parents=opts
    )
    _instrument_option(p)
    p.add_argument(
        "--to",
        required=True,
        type=participant_id,
        metavar="ACCOUNT",
        help="the account receiving the units",
    )
    _amount_option(p)
    _by_option(p)
    p.add_argument(
        "--key",
        type=Path,
        metavar="FILE",
        help="the issuer's key (default: RUN_DIR/participants/ISSUER.key)",
    )

    p = b.leaf(
        sub, "transfer", "transfer units free of payment", _network("submit_transfer"), parents=opts
    )
    _instrument_option(p)
    p.add_argument(
        "--from",
        dest="sender",
        required=True,
        type=participant_id,
        metavar="ACCOUNT",
        help="the sending account (it signs)",
    )
    p.add_argument(
        "--to",
        dest="receiver",
        required=True,
        type=participant_id,
        metavar="ACCOUNT",
        help="the receiving account",
    )
    _amount_option(p)
    p.add_argument(
        "--key",
        type=Path,
        metavar="FILE",
        help="the sender's key (default: RUN_DIR/participants/SENDER.key)",
    )
    _cosign_option(p)
    p.add_argument(
        "--cosign-key",
        type=Path,
        metavar="FILE",
        help="the co-signer's key (default: RUN_DIR/participants/COSIGNER.key)",
    )

    p = b.leaf(
        sub,
        "redeem",
        "redeem (burn) units of a holder; the holder and the issuer sign",
        _network("submit_redeem"),
        parents=opts,
    )
    _instrument_option(p)
    p.add_argument(
        "--holder",
        required=True,
        type=participant_id,
        metavar="ACCOUNT",
        help="the account whose units are redeemed (it signs)",
    )
    _amount_option(p)
    _by_option(p)
    p.add_argument(
        "--holder-key", type=Path, metavar="FILE", help="default: RUN_DIR/participants/HOLDER.key"
    )
    p.add_argument(
        "--by-key", type=Path, metavar="FILE", help="default: RUN_DIR/participants/ISSUER.key"
    )

    p = b.leaf(
        sub,
        "dvp",
        "submit a DvP trade signed by both parties (from `ledger cosign`)",
        _network("submit_dvp"),
        parents=opts,
    )
    p.add_argument("trade", type=Path, metavar="TRADE_FILE", help="the co-signed trade JSON")
    _add_lifecycle(b, sub, opts)
    _add_pending_submits(b, sub, opts)
    _add_freeze_submits(b, sub, opts)


def _add_lifecycle(
    b: _Builder, sub: argparse._SubParsersAction[_Parser], opts: list[_Parser]
) -> None:
    """``submit coupon|distribute|redeem-bond|redeem-all`` (docs/ledger.md "Lifecycle")."""

    def agent_and_key(p: _Parser) -> None:
        p.add_argument(
            "--agent",
            type=participant_id,
            metavar="ID",
            help="the paying agent (default and only choice: the one genesis names; it signs)",
        )
        p.add_argument(
            "--key",
            type=Path,
            metavar="FILE",
            help="the agent's key (default: RUN_DIR/participants/AGENT.key)",
        )

    def bond(p: _Parser) -> None:
        p.add_argument(
            "--bond", required=True, type=participant_id, metavar="ISIN", help="the bond"
        )

    p = b.leaf(
        sub,
        "coupon",
        "pay a coupon period of a bond to every holder of record (the paying agent signs)",
        _network("life_coupon"),
        parents=opts,
    )
    bond(p)
    p.add_argument(
        "--period",
        required=True,
        type=positive_int,
        help="coupon period, from 1 (`ledger schedule`)",
    )
    agent_and_key(p)

    p = b.leaf(
        sub,
        "distribute",
        "distribute cash over a fund's holders pro rata (the paying agent signs)",
        _network("life_distribute"),
        parents=opts,
    )
    p.add_argument("--fund", required=True, type=participant_id, metavar="ID", help="the fund")
    p.add_argument("--period", required=True, type=positive_int, help="distribution period, from 1")
    p.add_argument("--total", required=True, type=amount, help="cash to distribute, minor units")
    agent_and_key(p)

    p = b.leaf(
        sub,
        "redeem-bond",
        "at maturity, redeem all of a holder's units for face value plus the final coupon "
        "(the holder signs; unlike `submit redeem`, a burn, this pays)",
        _network("life_redeem_bond"),
        parents=opts,
    )
    bond(p)
    p.add_argument(
        "--holder",
        required=True,
        type=participant_id,
        metavar="ACCOUNT",
        help="the holder (it signs)",
    )
    p.add_argument(
        "--key", type=Path, metavar="FILE", help="default: RUN_DIR/participants/HOLDER.key"
    )

    p = b.leaf(
        sub,
        "redeem-all",
        "at maturity, redeem every holder of a bond, all or none (the paying agent signs)",
        _network("life_redeem_all"),
        parents=opts,
    )
    bond(p)
    agent_and_key(p)


def _add_lifecycle_queries(b: _Builder) -> None:
    p = b.leaf(
        b.top,
        "schedule",
        "a bond's or fund's payment calendar: dates, coupon per unit, paid or not",
        _network("life_schedule"),
    )
    p.add_argument("instrument", type=participant_id, metavar="INSTRUMENT", help="a bond or fund")
    p.add_argument(
        "--offline", action="store_true", help="genesis only: do not ask a node what is paid"
    )

    p = b.leaf(
        b.top,
        "holders",
        "who holds a bond or fund now, or after block H (--height), and what redemptions paid",
        _network("life_holders"),
    )
    p.add_argument("instrument", type=participant_id, metavar="INSTRUMENT", help="a bond or fund")
    p.add_argument(
        "--height",
        type=positive_int,
        metavar="H",
        help=f"after block H (1..{REPLAY_BLOCKS_MAX}): replays blocks 1..H here from genesis "
        "and checks each state root against the next certified header (needs full blocks: "
        "an observer identity, the default AUDITOR)",
    )


def _instruction_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--instruction",
        required=True,
        metavar="TX_ID",
        help="the pending DvP's transaction id (64 hex digits; `ledger pending` lists them)",
    )


def _add_pending_submits(
    b: _Builder, sub: argparse._SubParsersAction[_Parser], opts: list[_Parser]
) -> None:
    """hold, release, cancel: act on a pending DvP (docs/ledger.md "Pending settlement")."""
    for name, help_ in (
        ("hold", "hold a pending DvP: it is not re-attempted until released (either party)"),
        ("release", "release your own hold on a pending DvP"),
    ):
        p = b.leaf(sub, name, help_, _network(f"submit_{name}"), parents=opts)
        _instruction_option(p)
        p.add_argument(
            "--by", required=True, type=participant_id, metavar="ACCOUNT", help="a party (signs)"
        )
        p.add_argument(
            "--key", type=Path, metavar="FILE", help="default: RUN_DIR/participants/ACCOUNT.key"
        )
    p = b.leaf(
        sub,
        "cancel",
        "cancel a pending DvP; both parties sign",
        _network("submit_cancel"),
        parents=opts,
    )
    _instruction_option(p)
    for side in ("seller", "buyer"):
        p.add_argument(
            f"--{side}", required=True, type=participant_id, metavar="ACCOUNT", help=f"the {side}"
        )
        p.add_argument(
            f"--{side}-key",
            type=Path,
            metavar="FILE",
            help=f"default: RUN_DIR/participants/{side.upper()}.key",
        )


def _add_freeze_submits(
    b: _Builder, sub: argparse._SubParsersAction[_Parser], opts: list[_Parser]
) -> None:
    """freeze, unfreeze: an account or one holding (docs/ledger.md "Freezes")."""
    for name, handler, help_ in (
        (
            "freeze",
            "freeze_submit",
            "freeze an account or one holding: no leg debits or credits it (a regulator "
            "signs; a whole account: compliance too)",
        ),
        ("unfreeze", "freeze_unsubmit", "lift a freeze (under the same role rule)"),
    ):
        p = b.leaf(sub, name, help_, _network(handler), parents=opts)
        p.add_argument(
            "--account", required=True, type=participant_id, metavar="ACCOUNT", help="the target"
        )
        p.add_argument(
            "--instrument",
            type=participant_id,
            metavar="ID",
            help="only this holding of the account (default: the whole account)",
        )
        if name == "freeze":
            p.add_argument(
                "--reason",
                required=True,
                metavar="REASON",
                help="SANCTIONS, COURT_ORDER, AML_INVESTIGATION, FRAUD, KYC_LAPSED, OTHER "
                "(or its number 1-6)",
            )
        p.add_argument(
            "--by", required=True, type=participant_id, metavar="ID", help="who freezes (signs)"
        )
        p.add_argument(
            "--key", type=Path, metavar="FILE", help="default: RUN_DIR/participants/BY.key"
        )


def _cosign_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--cosign",
        type=participant_id,
        metavar="ID",
        help="a compliance participant who co-signs (needed above the cash token's AML "
        'threshold; docs/ledger.md "KYC tiers and AML")',
    )


def _add_two_party(b: _Builder) -> None:
    sign = b.group("sign", "the seller's side of a two-party trade")
    p = b.leaf(
        sign,
        "dvp",
        "propose a DvP trade signed by the seller; the buyer co-signs it",
        _network("sign_dvp"),
    )
    p.add_argument(
        "--seller",
        required=True,
        type=participant_id,
        metavar="ACCOUNT",
        help="delivers the bond, receives the cash (signs here)",
    )
    p.add_argument(
        "--buyer",
        required=True,
        type=participant_id,
        metavar="ACCOUNT",
        help="receives the bond, pays the cash (co-signs)",
    )
    p.add_argument(
        "--bond", required=True, type=participant_id, metavar="ISIN", help="the bond token"
    )
    p.add_argument("--quantity", required=True, type=amount, help="bond units (integer)")
    p.add_argument(
        "--cash", required=True, type=participant_id, metavar="ID", help="the cash token"
    )
    p.add_argument("--amount", required=True, type=amount, help="cash in minor units (integer)")
    p.add_argument(
        "--deadline-s",
        type=positive_int,
        metavar="SECONDS",
        help="settle within this many seconds, else refused (DEADLINE_PASSED)",
    )
    p.add_argument(
        "--pending",
        action="store_true",
        help="a pending DvP: if a leg is short it waits until the deadline (re-attempted "
        "every block) instead of being refused",
    )
    p.add_argument(
        "--lot",
        type=amount,
        metavar="UNITS",
        help="with --pending: settle in multiples of this many bond units (partial settlement)",
    )
    _cosign_option(p)
    p.add_argument(
        "--key",
        type=Path,
        metavar="FILE",
        help="the seller's key (default: RUN_DIR/participants/SELLER.key)",
    )
    p.add_argument(
        "--out", required=True, type=Path, metavar="FILE", help="trade file to write for the buyer"
    )

    p = b.leaf(
        sign,
        "compliance",
        "co-sign, as the compliance officer it names, a trade above the AML threshold",
        _network("sign_compliance"),
    )
    p.add_argument(
        "trade", type=Path, metavar="TRADE_FILE", help="from `ledger sign dvp` or `ledger cosign`"
    )
    p.add_argument(
        "--key",
        type=Path,
        metavar="FILE",
        help="the co-signer's key (default: RUN_DIR/participants/COSIGNER.key)",
    )
    p.add_argument(
        "--out", required=True, type=Path, metavar="FILE", help="the trade file, co-signed"
    )

    p = b.leaf(
        b.top,
        "cosign",
        "check and co-sign a trade as its buyer; prints the terms",
        _network("cosign"),
    )
    p.add_argument("trade", type=Path, metavar="TRADE_FILE", help="from `ledger sign dvp`")
    p.add_argument(
        "--key",
        type=Path,
        metavar="FILE",
        help="the buyer's key (default: RUN_DIR/participants/BUYER.key)",
    )
    p.add_argument(
        "--out",
        required=True,
        type=Path,
        metavar="FILE",
        help="co-signed trade file, for `ledger submit dvp`",
    )
    p.add_argument(
        "--expect-seller",
        type=participant_id,
        metavar="ACCOUNT",
        help="refuse unless the seller is this",
    )
    p.add_argument(
        "--expect-bond", type=participant_id, metavar="ISIN", help="refuse unless the bond is this"
    )
    p.add_argument(
        "--expect-quantity", type=amount, metavar="N", help="refuse unless the quantity is this"
    )
    p.add_argument(
        "--expect-cash",
        type=participant_id,
        metavar="ID",
        help="refuse unless the cash token is this",
    )
    p.add_argument(
        "--expect-amount", type=amount, metavar="N", help="refuse unless the cash amount is this"
    )


def _add_queries(b: _Builder) -> None:
    p = b.leaf(b.top, "balance", "an account's balance of every instrument", _network("balance"))
    p.add_argument("account", type=participant_id, metavar="ACCOUNT", help="a participant id")

    p = b.leaf(b.top, "tx", "a transaction: pending, or committed with its receipt", _network("tx"))
    p.add_argument("tx_id", metavar="TX_ID", help="64 hex digits")
    p.add_argument("--receipt-out", type=Path, metavar="FILE", help="write the receipt as JSON")

    _add_settlement_queries(b)

    p = b.leaf(b.top, "block", "a committed block and its transactions", _network("block"))
    p.add_argument("height", type=positive_int, metavar="HEIGHT", help="block height, from 1")

    b.leaf(
        b.top,
        "status",
        "every node's height, view, leader, peers, root (--json: schema ledger.status/1); "
        "exit 1 if one is down, halted or disagrees",
        _network("status"),
    )

    p = b.leaf(b.top, "watch", "print committed transactions as blocks commit", _network("watch"))
    p.add_argument(
        "--account", type=participant_id, metavar="ID", help="only those touching this account"
    )
    p.add_argument(
        "--from",
        dest="from_height",
        type=positive_int,
        metavar="HEIGHT",
        help="start at this block (default: the next block)",
    )
    p.add_argument("--count", type=positive_int, metavar="N", help="stop after N transactions")

    p = b.leaf(
        b.top, "verify-receipt", "check a receipt file offline against genesis", _cmd_verify_receipt
    )
    p.add_argument("file", type=Path, metavar="FILE", help="receipt JSON (--receipt-out)")
    p.add_argument(
        "--genesis", type=Path, metavar="PATH", help="genesis.json (default: RUN_DIR/genesis.json)"
    )
    p.add_argument(
        "--inclusion-only",
        action="store_true",
        help="accept a receipt without the result proof: it then shows only that this copy "
        "is in a committed block, not that the transaction is final (exit 0, `NOT final`)",
    )
    p.add_argument(
        "--finality-only",
        action="store_true",
        help="deprecated, no effect: a receipt without its result proof cannot show the "
        "transaction final (see --inclusion-only)",
    )


def _height_range(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--from",
        dest="from_height",
        type=positive_int,
        default=1,
        metavar="HEIGHT",
        help="first block height (default 1)",
    )
    p.add_argument(
        "--to",
        dest="to_height",
        type=positive_int,
        metavar="HEIGHT",
        help="last block height (default: the head)",
    )


def _add_settlement_queries(b: _Builder) -> None:
    """Fails management (issue 14 item 5): the pending book, fails, a settlement report."""
    b.leaf(
        b.top,
        "pending",
        "the pending DvPs waiting for their legs, in recycling order",
        _network("pending"),
    )
    p = b.leaf(
        b.top,
        "fails",
        "settlement fails in a range of blocks: trades refused for a short leg or a full "
        "pending book, pending trades failed at their deadline or cancelled",
        _network("fails"),
    )
    _height_range(p)
    report = b.group("report", REPORT_HELP)
    p = b.leaf(
        report,
        "settlement",
        "trades, settled on first attempt, settled after recycling, failed by reason, fail "
        "rate and time to settle after recycling, over block heights FROM..TO",
        _network("report_settlement"),
    )
    _height_range(p)
    _add_reserve_reports(b, report)


# --- reserve: custody and reserves (docs/ledger.md "Custody and reserves") ----------------


def units(text: str) -> int:
    """A whole number of minor units, zero allowed (an attested amount may be nothing)."""
    return 0 if text.replace("_", "").replace(",", "") == "0" else amount(text)


def _attest_options(p: argparse.ArgumentParser, signer: str) -> None:
    doc = p.add_mutually_exclusive_group(required=True)
    doc.add_argument("--document", type=Path, metavar="FILE", help="the signed statement (hashed)")
    doc.add_argument("--document-sha256", metavar="HEX", help="or its SHA-256, 64 hex digits")
    p.add_argument(
        "--as-of-ms",
        type=int,
        metavar="MS",
        help="what the statement is as of, ms since the epoch (default: a second ago); newer "
        "than the last attestation and not after the block time, else STALE_ATTESTATION",
    )
    p.add_argument(
        "--key", type=Path, metavar="FILE", help=f"default: RUN_DIR/participants/{signer}.key"
    )


def _add_attest(b: _Builder) -> None:
    """attest custody|reserves: signed attestations (docs/ledger.md "Custody and reserves")."""
    sub = b.group("attest", ATTEST_HELP)
    opts = [_submit_options()]
    p = b.leaf(
        sub,
        "custody",
        "attest the units of a custody-backed bond held in custody (its named custodian "
        "signs); mints beyond it are refused CUSTODY_EXCEEDED",
        _network("reserve_attest_custody"),
        parents=opts,
    )
    p.add_argument("--bond", required=True, type=participant_id, metavar="ISIN")
    p.add_argument("--amount", required=True, type=units, help="units in custody (integer)")
    p.add_argument(
        "--custodian",
        type=participant_id,
        metavar="ID",
        help="who attests (default and only choice: the custodian genesis names)",
    )
    _attest_options(p, "CUSTODIAN")
    p = b.leaf(
        sub,
        "reserves",
        "attest the bills and deposits behind a reserve-backed cash token (its issuer "
        "signs); a mint taking the supply above them is refused RESERVES_SHORT",
        _network("reserve_attest_reserves"),
        parents=opts,
    )
    p.add_argument("--cash", required=True, type=participant_id, metavar="ID")
    p.add_argument("--deposits", type=units, default=0, help="deposits, minor units (default 0)")
    p.add_argument(
        "--bill",
        action="append",
        metavar="CUSIP:YYYY-MM-DD:AMOUNT",
        help="a Treasury bill: CUSIP (check digit validated), maturity, value in minor units; "
        "repeat for each (at most 100)",
    )
    p.add_argument(
        "--issuer", type=participant_id, metavar="ID", help="default: the token's issuer"
    )
    _attest_options(p, "ISSUER")


def _add_reserve_reports(b: _Builder, report: argparse._SubParsersAction[_Parser]) -> None:
    for name, help_ in (
        (
            "custody",
            "per custody-backed bond: token supply against the latest attested custody, its "
            "as-of, BREAK when supply exceeds custody or the attestation is older than "
            "genesis allows (exit 1 on any BREAK)",
        ),
        (
            "reserves",
            "per reserve-backed cash token: coverage, composition (bills, deposits) and each "
            "genesis rule PASS/FAIL (exit 1 on any FAIL)",
        ),
    ):
        p = b.leaf(report, name, help_, _network(f"reserve_report_{name}"))
        p.add_argument("--instrument", type=participant_id, metavar="ID", help="only this one")
        p.add_argument(
            "--now-ms", type=int, metavar="MS", help="judge ages as of this time (default: now)"
        )


def _add_admin(b: _Builder) -> None:
    """ledger admin ...: governance by k of the genesis admins (client/_cli_admin.py)."""
    admin = b.group(
        "admin",
        "governance: k of the genesis admins add participants and instruments, change roles, "
        'KYC tiers, keys and supply caps (docs/ledger.md "Governance")',
    )
    changes = (
        ("add-participant", "add a participant with its public key, roles and KYC tier"),
        ("set-roles", "replace a participant's roles"),
        ("set-kyc-tier", "set a participant's KYC tier (0: may no longer hold or move assets)"),
        ("rotate-key", "replace a participant's key; the old one is refused from then on"),
        ("add-instrument", "add an instrument, its terms in the genesis JSON form"),
        ("set-max-supply", "cap an instrument's supply on a newer custody or reserve attestation"),
        ("set-compliance-rules", "replace the KYC tier and AML rules in force, whole"),
    )
    for name, help_ in changes:
        p = b.leaf(admin, name, help_, _network("admin_change"), parents=[_submit_options()])
        p.set_defaults(admin_command=name)
        _admin_change_args(p, name)
    p = b.leaf(admin, "sign", "add one admin's signature to a file from --out (offline)",
               _network("admin_sign"))  # fmt: skip
    p.add_argument("file", type=Path, metavar="FILE", help="from `ledger admin ... --out FILE`")
    p.add_argument("--admin", dest="as_admin", required=True, type=participant_id,
                   metavar="ID", help="the admin signing here")  # fmt: skip
    p.add_argument("--key", type=Path, metavar="FILE", help="default: RUN_DIR/participants/ID.key")
    p.add_argument("--out", type=Path, metavar="FILE", help="default: overwrite FILE")
    p = b.leaf(admin, "submit", "submit a governance file once k admins signed it",
               _network("admin_submit"), parents=[_submit_options()])  # fmt: skip
    p.add_argument("file", type=Path, metavar="FILE", help="signed by every admin it names")
    b.leaf(admin, "show", "the reference data at a node's head: participants, instruments "
           "(supply, cap, attestation), admins and k", _network("admin_show"))  # fmt: skip


def _admin_change_args(p: _Parser, name: str) -> None:
    if name in {"add-participant", "set-roles", "set-kyc-tier", "rotate-key"}:
        p.add_argument("participant", type=participant_id, metavar="ID", help="the participant")
    if name in {"add-participant", "rotate-key"}:
        key = p.add_mutually_exclusive_group(required=True)
        key.add_argument("--public-key", metavar="HEX", help="its Ed25519 public key (32 bytes)")
        key.add_argument(
            "--key-file",
            type=Path,
            metavar="FILE",
            help="its key file (`ledger keys gen`): only its public key is used",
        )
    if name in {"add-participant", "set-roles"}:
        p.add_argument("--roles", required=True, metavar="R1,R2",
                       help="comma-separated: bond_issuer, custodian, cash_issuer, trader, "
                       "compliance, regulator, auditor")  # fmt: skip
    if name in {"add-participant", "set-kyc-tier"}:
        p.add_argument("--kyc-tier", required=True, type=int, metavar="0-3", help="KYC tier")
    if name == "add-instrument":
        p.add_argument("--file", required=True, type=Path, metavar="JSON",
                       help="one instrument as in genesis.json's instruments")  # fmt: skip
    if name == "set-compliance-rules":
        p.add_argument("--file", required=True, type=Path, metavar="JSON",
                       help="the rules as genesis.json's compliance object: min_tier, limits, "
                       "cosign_above")  # fmt: skip
    if name == "set-max-supply":
        p.add_argument("instrument", type=participant_id, metavar="INSTRUMENT")
        p.add_argument("--cap", required=True, type=int, metavar="N", help="the new maximum")
        p.add_argument("--as-of-ms", required=True, type=int, metavar="MS",
                       help="the attestation's as-of time (newer than the last one's)")  # fmt: skip
        doc = p.add_mutually_exclusive_group(required=True)
        doc.add_argument("--attestation", type=Path, metavar="FILE",
                         help="the attestation document (its SHA-256 is recorded)")  # fmt: skip
        doc.add_argument("--attestation-sha256", metavar="HEX", help="its SHA-256, if not at hand")
    p.add_argument("--admins", metavar="A,B",
                   help="the admins who sign it (default: the first k genesis admins)")  # fmt: skip
    p.add_argument("--out", type=Path, metavar="FILE",
                   help="write it for admins on other machines instead of submitting")  # fmt: skip
    p.add_argument("--sign-as", metavar="A,B",
                   help="with --out: the admins signing here (default: none)")  # fmt: skip


def build_parser() -> _Parser:
    b = _Builder()
    _add_keys(b)
    _add_submit(b)
    _add_attest(b)
    _add_two_party(b)
    _add_queries(b)
    _add_lifecycle_queries(b)
    _add_admin(b)
    add_repo_commands(b, _submit_options(), participant_id, amount)  # repo (client/_cli_repo.py)
    b.leaf(
        b.top,
        "freezes",
        "frozen accounts and holdings: who froze them, when (block), why",
        _network("freeze_list"),
    )
    _cli_lock.add_parsers(b, _network, _submit_options)  # lock: locks and swaps (issue 18)
    add_margin(b)  # margin: attest price, repo margin|substitute, prices
    # issue 17: the browser console (client/console/)
    b.leaf(b.top, "console", console_help, console_run, parents=[cast(_Parser, console_options())])
    return b.root


def _one_line(text: str) -> str:
    return "; ".join(line.strip() for line in text.splitlines() if line.strip())


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns the exit code (``ledger`` exits with it)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        handler: Handler = args.fn
        return handler(args)
    except CliError as e:
        print(f"{PROG}: error: {_one_line(str(e))}", file=sys.stderr)
        return e.exit_code
    except SystemExit as e:  # --help, or argparse's own exit
        return e.code if isinstance(e.code, int) else EXIT_USAGE
    except KeyboardInterrupt:
        print(f"{PROG}: error: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `ledger watch | head`
        return EXIT_OK
    except OSError as e:  # a path the system refuses (too long, a directory, no access)
        where = f"{str(e.filename)[:120]}: " if e.filename else ""
        print(f"{PROG}: error: {where}{e.strerror or e}", file=sys.stderr)
        return EXIT_USAGE if e.filename else EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
