"""The ``ledger admin`` commands: governance by k of the genesis admins (docs/cli.md,
docs/ledger.md "Governance").

Each change command builds the transaction against the ledger's reference data (read
from a node, so ids governance added are known) and names its admin signers
(``--admins``, default the first k genesis admins). Then either:

- one shot (a run directory holding the admins' keys): every named admin signs here and
  it is submitted; or
- admins on separate machines: ``--out FILE`` writes it signed by the ``--sign-as``
  admins only (none by default); each other admin runs ``ledger admin sign FILE --admin ID``
  (offline: genesis and its own key); anyone submits it with ``ledger admin submit FILE``.

``show`` prints the reference data: participants (roles, tier, key fingerprint),
instruments (terms, supply, cap, attestation), the admins and k.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path

from client import LedgerClient, ParticipantKey, SignedTransaction, sign
from client._cli_common import EXIT_OK, EXIT_USAGE, CliError, emit_json, table
from client._cli_common import amount as grouped
from client._cli_net import _client, _genesis, _key, _read, _submit, _write, describe
from client._errors import KeyFileError, TradeError
from client._keys import load_key
from client._reference import Reference
from node.files import sha256_regular
from node.genesis import compliance_from_json, instrument_from_json, instrument_to_json
from node.settlement import (
    GOVERNANCE_KINDS,
    ComplianceRules,
    GenesisError,
    Instrument,
    Transaction,
)

__all__ = ["COMMANDS"]


def _admins(args: argparse.Namespace) -> list[str]:
    if args.admins:
        return [a for a in args.admins.split(",") if a]
    g = _genesis(args)
    return list(g.admins[: g.admin_threshold])


def _public_key(args: argparse.Namespace) -> bytes:
    """``--public-key HEX`` or the public half of ``--key-file`` (from ``ledger keys gen``)."""
    if args.key_file is not None:
        try:
            return load_key(args.key_file).public_key
        except KeyFileError as e:
            raise CliError(str(e), EXIT_USAGE) from None
    try:
        return bytes.fromhex(args.public_key or "")
    except ValueError:
        raise CliError("--public-key must be hex (32 bytes)", EXIT_USAGE) from None


def _build(args: argparse.Namespace, client: LedgerClient) -> Transaction:
    client.reference()  # ids governance added, keys it rotated
    tx, admins = client.tx, _admins(args)
    match args.admin_command:
        case "add-participant":
            return tx.add_participant(
                args.participant, _public_key(args), args.roles, args.kyc_tier, admins
            )
        case "set-roles":
            return tx.set_roles(args.participant, args.roles, admins)
        case "set-kyc-tier":
            return tx.set_kyc_tier(args.participant, args.kyc_tier, admins)
        case "rotate-key":
            return tx.rotate_key(args.participant, _public_key(args), admins)
        case "add-instrument":
            return tx.add_instrument(_instrument(args.file), admins)
        case "set-max-supply":
            digest = _attestation(args)
            return tx.set_max_supply(args.instrument, args.cap, digest, args.as_of_ms, admins)
        case "set-compliance-rules":
            return tx.set_compliance_rules(_rules(args.file), admins)
    raise CliError(f"unknown admin command {args.admin_command}", EXIT_USAGE)


def _instrument(path: Path) -> Instrument:
    try:
        return instrument_from_json(json.loads(_read(path)), str(path))
    except (json.JSONDecodeError, RecursionError, GenesisError) as e:
        raise CliError(f"{path}: {e}", EXIT_USAGE) from None


def _rules(path: Path) -> ComplianceRules:
    try:
        return compliance_from_json(json.loads(_read(path)))
    except (json.JSONDecodeError, RecursionError, GenesisError) as e:
        raise CliError(f"{path}: {e}", EXIT_USAGE) from None


def _attestation(args: argparse.Namespace) -> bytes:
    """SHA-256 of ``--attestation FILE`` (the signed custody or reserve document), or the
    given ``--attestation-sha256``."""
    if args.attestation is not None:
        try:
            return sha256_regular(args.attestation)
        except OSError as e:
            raise CliError(f"cannot read {args.attestation}: {e.strerror}") from None
    try:
        digest = bytes.fromhex(args.attestation_sha256 or "")
    except ValueError:
        digest = b""
    if len(digest) != 32:
        raise CliError("give --attestation FILE or --attestation-sha256 (64 hex)", EXIT_USAGE)
    return digest


def _change(args: argparse.Namespace) -> int:
    """Build, sign with the admins given here, then submit (or write ``--out``)."""
    admins = _admins(args)
    with _client(args, admins[0] if admins else None) as client:
        tx = _build(args, client)
        signers = args.sign_as.split(",") if args.sign_as is not None else []
        if args.out is None:
            signers = list(tx.required_signers())  # one shot: every admin signs here
        keys = [_admin_key(args, a) for a in signers if a]
        stx = client.sign(tx, *keys) if keys else SignedTransaction.unsigned(tx)
    if args.out is not None:
        return _written(args, args.out, stx)
    return _submit(args, stx)


def _admin_key(args: argparse.Namespace, admin: str) -> ParticipantKey:
    return _key(args, admin, None)


def _written(args: argparse.Namespace, out: Path, stx: SignedTransaction) -> int:
    _write(out, stx.dumps())
    missing = stx.missing_signers()
    if args.json:
        emit_json({"file": str(out), **stx.to_json()})
        return EXIT_OK
    print(describe(stx.tx))
    print(f"wrote {out}; signed by {', '.join(stx.signers) or 'nobody yet'}")
    if missing:
        print(f"still to sign: {', '.join(missing)} (each: ledger admin sign {out} --admin ID)")
    else:
        print(f"complete: ledger admin submit {out}")
    return EXIT_OK


def _load(path: Path) -> SignedTransaction:
    try:
        stx = SignedTransaction.loads(_read(path))
    except TradeError as e:
        raise CliError(f"{path}: {e}", EXIT_USAGE) from None
    if not isinstance(stx.tx, GOVERNANCE_KINDS):
        raise CliError(f"{path} holds a {stx.tx.KIND.name}, not a governance transaction")
    return stx


def _sign(args: argparse.Namespace) -> int:
    """Add one admin's signature, offline (genesis and the admin's key only)."""
    stx = _load(args.file)
    signed = sign(stx, _key(args, args.as_admin, args.key), genesis=_genesis(args))
    return _written(args, args.out or args.file, signed)


def _submit_file(args: argparse.Namespace) -> int:
    stx = _load(args.file)
    missing = stx.missing_signers()
    if missing:
        raise CliError(f"{args.file} lacks the signature of {', '.join(missing)}")
    return _submit(args, stx)


def _show(args: argparse.Namespace) -> int:
    with _client(args) as client:
        ref = client.reference()
    if args.json:
        emit_json(_doc(ref))
        return EXIT_OK
    print(
        f"after block {ref.height}: admins {', '.join(ref.admins) or '(none)'}, k = {ref.threshold}"
    )
    rows = [
        (p.id, ",".join(sorted(r.value for r in p.roles)), str(p.kyc_tier), p.public_key.hex()[:16])
        for p in ref.participants
    ]
    table(("participant", "roles", "tier", "key (first 8 bytes)"), rows, right=(2,))
    reg = ref.registry
    inst_rows = [
        (i.id, i.kind.value, i.issuer, _grouped_or_dash(ref.supplies.get(i.id)),
         grouped(i.max_supply),
         _attested(reg.attestation(i.id)))
        for i in ref.instruments
    ]  # fmt: skip
    head = ("instrument", "kind", "issuer", "supply", "cap", "attested as of ms")
    table(head, inst_rows, right=(3, 4))
    return EXIT_OK


def _grouped_or_dash(supply: int | None) -> str:
    """A supply the identity may not read is ``-`` (docs/cli.md ``admin show``)."""
    return "-" if supply is None else grouped(supply)


def _attested(a: tuple[int, bytes] | None) -> str:
    return "-" if a is None else str(a[0])


def _doc(ref: Reference) -> dict[str, object]:
    return {
        "height": ref.height,
        "admins": list(ref.admins),
        "threshold": ref.threshold,
        "participants": [
            {
                "id": p.id,
                "roles": sorted(r.value for r in p.roles),
                "kyc_tier": p.kyc_tier,
                "public_key": p.public_key.hex(),
            }
            for p in ref.participants
        ],
        "instruments": [
            {**instrument_to_json(i), "supply": ref.supplies.get(i.id)} for i in ref.instruments
        ],
    }


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "admin_change": _change,
    "admin_sign": _sign,
    "admin_submit": _submit_file,
    "admin_show": _show,
}
