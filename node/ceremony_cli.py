"""``ledger-node keygen | genesis assemble | genesis verify | genesis template | config``:
the genesis ceremony's commands (node/ceremony.py; docs/deploy.md walks through them).

Each exits 0 on success, 1 when ``genesis verify`` finds the operator's key, certificate,
address, the fingerprint, the number of validators or the quorum not as expected, and 2
for bad input (one line saying which file and field); nothing is written on 1 or 2.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from node import ceremony
from node.files import read_regular_text
from node.genesis import demo_genesis
from node.netconfig import node_name, write_node_config

__all__ = ["COMMANDS", "main", "register"]

COMMANDS = frozenset({"keygen", "genesis", "config"})
EXIT_MISMATCH, EXIT_BAD_INPUT = 1, 2


def _keygen(args: argparse.Namespace) -> int:
    if args.participant:
        b = ceremony.keygen_participant(args.out, args.name)
        print(f"wrote {args.out}/{b.name}.key (0600: keep it) and the public bundle")
    else:
        if args.host is None or args.port is None:
            raise ceremony.CeremonyError("a validator needs --host and --port")
        client_port = args.client_port or args.port + 1000
        b = ceremony.keygen_validator(
            args.out, args.name, args.host, args.port, client_port, extra_names=args.san
        )
        print(f"wrote {args.out}/{{validator.key,tls.key}} (0600: never leave this machine)")
        print(f"      {args.out}/tls.pem (the certificate genesis will pin)")
    print(f"hand over {args.out}/{b.name}{ceremony.BUNDLE_SUFFIX} (public)")
    print(f"public key  {b.public_key.hex()}")
    return 0


def _read_json(path: Path) -> dict[str, object]:
    try:
        doc = json.loads(read_regular_text(path))
    except (OSError, ValueError, RecursionError) as e:
        raise ceremony.CeremonyError(f"{path}: cannot read a JSON template ({e})") from e
    if not isinstance(doc, dict):
        raise ceremony.CeremonyError(f"{path}: expected a JSON object")
    return doc


def _assemble(args: argparse.Namespace) -> int:
    bundles = ceremony.read_bundles(args.bundles)
    a = ceremony.assemble(bundles, _read_json(args.template), args.q)
    for f in ceremony.write_assembly(args.out, a):
        print(f"wrote {f}")
    print(f"chain id    {a.genesis.chain_id}")
    print(f"fingerprint {a.fingerprint}")
    print("send genesis.json, validators.pem and addresses.json to every operator")
    return 0


def _verify(args: argparse.Namespace) -> int:
    a = ceremony.load_assembly(args.genesis)
    mine = ceremony.read_bundle(args.bundle)
    try:
        lines = ceremony.verify(
            a, mine, args.fingerprint, expect_validators=args.validators, expect_q=args.q
        )
    except ceremony.CeremonyError as e:
        print(f"ledger-node genesis verify: MISMATCH: {e}", file=sys.stderr)
        return EXIT_MISMATCH
    print("\n".join(lines))
    if args.fingerprint is None:
        print("compare the fingerprint with the other operators by phone or in person")
    if args.validators is None or args.q is None:
        print("and check the validators and quorum are those agreed (--validators N --q Q)")
    return 0


def _template(args: argparse.Namespace) -> int:
    """The demo network's participants, instruments and holdings as a template to edit."""
    out = Path(args.out)
    if out.exists():
        raise ceremony.CeremonyError(f"{out} exists")
    doc = ceremony.template_from_genesis(demo_genesis().genesis, name=args.name)
    out.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {out}: edit participants, instruments and holdings; keys come from bundles")
    return 0


def _config(args: argparse.Namespace) -> int:
    a = ceremony.load_assembly(args.genesis)
    node_dir = Path(os.path.abspath(args.key_dir))
    ceremony.check_private_dir(a, args.name, node_dir)
    overrides: dict[str, str] = {}
    if args.hosts:
        overrides.update(
            ceremony.parse_overrides(read_regular_text(args.hosts).splitlines(), "--hosts")
        )
    overrides.update(ceremony.parse_overrides(args.peer, "--peer"))
    genesis = Path(os.path.abspath(args.genesis))
    me = [x.id for x in a.addresses].index(args.name)
    paths = ceremony.ConfigPaths(
        genesis, genesis.parent / "validators.pem", node_dir, node_dir / "data"
    )
    cfg = ceremony.node_config(
        a, args.name, paths, listen_host=args.listen_host,
        metrics_port=args.metrics_port or a.addresses[me].client_port + 1000,
        overrides=overrides,
    )  # fmt: skip
    out = args.out or node_dir / "config.json"
    if out.exists():
        raise ceremony.CeremonyError(f"{out} exists")
    write_node_config(out, cfg)
    print(f"wrote {out} ({node_name(me, len(a.addresses))}: validator {me} of {len(a.addresses)})")
    print(f"start it: ledger-node --config {out}")
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """The ceremony's subcommands, for ``ledger-node``'s parser."""
    k = sub.add_parser("keygen", help="make this operator's keys and its public bundle")
    k.add_argument("--name", required=True, help="validator name (a DNS label) or participant id")
    k.add_argument(
        "--participant", action="store_true", help="a participant's key, not a validator's"
    )
    k.add_argument("--host", help="where peers and clients reach this validator (DNS name or IP)")
    k.add_argument("--port", type=int, help="peer port")
    k.add_argument("--client-port", type=int, help="client port (default: --port + 1000)")
    k.add_argument("--san", action="append", default=[], help="another name for the certificate")
    k.add_argument("--out", type=Path, required=True, help="private directory (created 0700)")
    k.set_defaults(run=_keygen)

    g = sub.add_parser("genesis", help="assemble or verify a genesis from bundles")
    gs = g.add_subparsers(dest="genesis_command", required=True)
    a = gs.add_parser("assemble", help="genesis.json, validators.pem, addresses.json")
    a.add_argument("--bundles", nargs="+", required=True, help="bundle files or directories")
    a.add_argument("--template", type=Path, required=True, help="genesis template (JSON)")
    a.add_argument("--q", type=int, required=True, help="quorum: more than n/2, at most n")
    a.add_argument("--out", type=Path, required=True, help="directory for the three files")
    a.set_defaults(run=_assemble)
    v = gs.add_parser("verify", help="check your bundle is in it; print the fingerprint")
    v.add_argument(
        "genesis", type=Path, help="genesis.json (addresses.json, validators.pem beside)"
    )
    v.add_argument("--bundle", type=Path, required=True, help="the bundle you handed over")
    v.add_argument("--fingerprint", help="the fingerprint the others read you: exit 1 if not it")
    v.add_argument(
        "--validators", type=int, help="the number of validators agreed: exit 1 if not it"
    )
    v.add_argument("--q", type=int, help="the quorum agreed: exit 1 if not it")
    v.set_defaults(run=_verify)
    t = gs.add_parser("template", help="write the demo network's template to edit")
    t.add_argument("--name", default="consortium", help="the chain's name")
    t.add_argument("--out", type=Path, required=True)
    t.set_defaults(run=_template)

    c = sub.add_parser("config", help="this validator's node config from the ceremony's files")
    c.add_argument("--genesis", type=Path, required=True, help="genesis.json (files beside it)")
    c.add_argument("--name", required=True, help="this validator's name")
    c.add_argument("--key-dir", type=Path, required=True, help="the private directory of keygen")
    c.add_argument("--listen-host", default="0.0.0.0", help="address to listen on")
    c.add_argument("--metrics-port", type=int, help="default: client port + 1000")
    c.add_argument("--hosts", type=Path, help="'NAME HOST:PORT' lines: dial these peers there")
    c.add_argument("--peer", action="append", default=[], help="NAME=HOST:PORT, as --hosts")
    c.add_argument("--out", type=Path, help="default: KEY_DIR/config.json")
    c.set_defaults(run=_config)


def main(argv: Sequence[str]) -> int:
    p = argparse.ArgumentParser(prog="ledger-node", description="The genesis ceremony.")
    register(p.add_subparsers(dest="command", required=True))
    args = p.parse_args(argv)
    try:
        code: int = args.run(args)
    except (ceremony.CeremonyError, OSError) as e:
        print(f"ledger-node {args.command}: error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    return code
