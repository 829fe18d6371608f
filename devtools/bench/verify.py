"""Ed25519 verify: OpenSSL (through ``cryptography``) against libsodium (through PyNaCl).

Prints, for each library called bare (without ``node.crypto``'s own length and ``S < L``
checks), whether it accepts each strictness vector, then the cost of one verification of
a valid signature, measured alternately so both see the same machine load. ``node.crypto``
uses libsodium (ADR 0009); this is the measurement behind that choice, to run again when
either library changes:

    .venv/bin/python -m devtools.bench.verify [--samples N]
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import time
from collections.abc import Callable

import nacl.bindings
import nacl.exceptions
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from node.crypto import ED25519_L, SigningKey

__all__ = ["main", "vectors"]

P = 2**255 - 19
IDENTITY = (1).to_bytes(32, "little")  # y = 1, x = 0: the neutral point, order 1
IDENTITY_NONCANONICAL = (P + 1).to_bytes(32, "little")  # the same point, y + p

Verify = Callable[[bytes, bytes, bytes], bool]


def _openssl(public_key: bytes, message: bytes, signature: bytes) -> bool:
    try:
        Ed25519PublicKey.from_public_bytes(public_key).verify(signature, message)
    except (InvalidSignature, ValueError):
        return False
    return True


def _libsodium(public_key: bytes, message: bytes, signature: bytes) -> bool:
    try:
        nacl.bindings.crypto_sign_open(signature + message, public_key)
    except nacl.exceptions.CryptoError:
        return False
    return True


LIBRARIES: dict[str, Verify] = {"openssl": _openssl, "libsodium": _libsodium}


def _scalar(seed: bytes) -> int:
    """RFC 8032's secret scalar of a seed (clamped)."""
    h = bytearray(hashlib.sha512(seed).digest()[:32])
    h[0] &= 248
    h[31] &= 127
    h[31] |= 64
    return int.from_bytes(h, "little")


def _challenge(r: bytes, public_key: bytes, message: bytes) -> int:
    return int.from_bytes(hashlib.sha512(r + public_key + message).digest(), "little") % ED25519_L


def vectors() -> list[tuple[str, bool, bytes, bytes, bytes]]:
    """(what, whether the ledger must accept it, public key, message, signature)."""
    seed = bytes(range(32))
    key = SigningKey(seed)
    pk, msg = key.public_key, b"a DvP body"
    sig = key.sign(msg)
    s = int.from_bytes(sig[32:], "little")
    # R = the identity (nonce 0): S = h * a, so S*B - h*A is the identity; only the key's
    # holder can make it, and a library that takes it accepts a second signature form.
    r0 = _challenge(IDENTITY, pk, msg) * _scalar(seed) % ED25519_L
    return [
        ("valid", True, pk, msg, sig),
        ("other message", False, pk, b"another body", sig),
        ("S + L (malleated)", False, pk, msg, sig[:32] + (s + ED25519_L).to_bytes(32, "little")),
        ("S = L", False, pk, msg, sig[:32] + ED25519_L.to_bytes(32, "little")),
        ("R = identity (small order)", False, pk, msg, IDENTITY + r0.to_bytes(32, "little")),
        ("A = identity, R = identity, S = 0", False, IDENTITY, msg, IDENTITY + bytes(32)),
        ("A = identity, other message", False, IDENTITY, b"anything", IDENTITY + bytes(32)),
        ("A non-canonical (y + p)", False, IDENTITY_NONCANONICAL, msg, IDENTITY + bytes(32)),
        ("R non-canonical (y + p)", False, pk, msg, IDENTITY_NONCANONICAL + sig[32:]),
    ]


def _word(accepted: bool) -> str:
    return "accept" if accepted else "refuse"


def _cost_us(verify: Verify, pk: bytes, msg: bytes, sig: bytes, samples: int) -> float:
    t0 = time.perf_counter()
    for _ in range(samples):
        verify(pk, msg, sig)
    return (time.perf_counter() - t0) / samples * 1e6


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m devtools.bench.verify", description=__doc__.split("\n\n")[0]
    )
    p.add_argument("--samples", type=int, default=5_000, help="verifications per round")
    p.add_argument("--rounds", type=int, default=5, help="alternating rounds (default 5)")
    args = p.parse_args(argv)
    if not (0 < args.samples <= 1_000_000 and 0 < args.rounds <= 100):
        p.error("--samples must be 1..1000000 and --rounds 1..100")
    print(f"{'vector':40} {'ledger':>7} " + " ".join(f"{n:>10}" for n in LIBRARIES))
    for what, want, pk, msg, sig in vectors():
        got = " ".join(
            f"{'accept' if f(pk, msg, sig) else 'refuse':>10}" for f in LIBRARIES.values()
        )
        print(f"{what:40} {_word(want):>7} {got}")
    _, _, pk, msg, sig = vectors()[0]
    costs: dict[str, list[float]] = {n: [] for n in LIBRARIES}
    for r in range(args.rounds):
        for name, f in LIBRARIES.items():
            costs[name].append(_cost_us(f, pk, msg, sig, args.samples))
        print(f"  round {r + 1}/{args.rounds}", file=sys.stderr)
    print("\nmicroseconds per verification of a valid signature (best / median of rounds):")
    for name, xs in costs.items():
        xs.sort()
        print(f"  {name:10} {xs[0]:8.1f} / {xs[len(xs) // 2]:8.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
