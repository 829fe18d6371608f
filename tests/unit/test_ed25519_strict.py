"""Strict Ed25519 at its edges (issue 19 item 4): every small-order public key encoding is
refused, and the scalar check refuses S >= L on its own, whatever the library does.

The small-order points are derived here from the curve equation, not copied from
node/crypto.py, so a wrong or missing constant there fails this test.
"""

from __future__ import annotations

import pytest

from devtools.bench.verify import vectors
from node import crypto

P = 2**255 - 19
D = -121665 * pow(121666, -1, P) % P  # edwards25519: -x^2 + y^2 = 1 + d x^2 y^2
SQRT_M1 = pow(2, (P - 1) // 4, P)


def _sqrt(a: int) -> int | None:
    """A square root of ``a`` mod p (p = 5 mod 8), or None when ``a`` is not a square."""
    r = pow(a, (P + 3) // 8, P)
    for cand in (r, r * SQRT_M1 % P):
        if cand * cand % P == a % P:
            return cand
    return None


def _small_order_ys() -> set[int]:
    """y of every point of order dividing 8. Order 1 and 2: x = 0, y = 1 or -1. Order 4:
    y = 0. Order 8: doubling gives y = 0 exactly when x^2 = -y^2, which on the curve means
    d y^4 + 2 y^2 - 1 = 0, so y^2 = (-1 +- sqrt(1 + d)) / d."""
    ys = {1, P - 1, 0}
    root = _sqrt(1 + D)
    assert root is not None
    for y2 in ((-1 + root) * pow(D, -1, P) % P, (-1 - root) * pow(D, -1, P) % P):
        y = _sqrt(y2)
        if y is not None:
            ys |= {y, P - y}
    return ys


SMALL_ORDER_YS = _small_order_ys()
# Every y below 2**255 that is one of them mod p: the canonical ones and y + p (only 0
# and 1 have a twin below 2**255, since p + 19 = 2**255).
ENCODED_YS = sorted(SMALL_ORDER_YS | {y + P for y in SMALL_ORDER_YS if y + P < 2**255})


def test_the_derivation_finds_the_eight_points() -> None:
    # 1 (identity), -1 (order 2), 0 (two points of order 4), two y of order 8 (four points).
    assert len(SMALL_ORDER_YS) == 5
    points = sum(1 if y in (1, P - 1) else 2 for y in SMALL_ORDER_YS)
    assert points == 8
    assert len(ENCODED_YS) == 7


@pytest.mark.parametrize("sign", [0, 1], ids=["x+", "x-"])
@pytest.mark.parametrize("y", ENCODED_YS, ids=[f"y={y % 1000}..{y < P}" for y in ENCODED_YS])
def test_every_small_order_encoding_is_refused(y: int, sign: int) -> None:
    """Seven y encodings with either sign bit: the eight points, the non-canonical sign of
    x = 0, and y + p. Each would let one signature verify for many messages."""
    encoding = (y | sign << 255).to_bytes(32, "little")
    assert not crypto.is_acceptable_public_key(encoding)


def test_off_curve_and_mixed_order_keys_are_refused() -> None:
    """32 bytes that decode to no point (y = 2: OpenSSL loads it all the same), and an
    honest key plus a point of order 8 (verifies differently under cofactored and
    cofactorless rules): both refused; the honest key alone is the control."""
    import nacl.bindings

    off_curve = (2).to_bytes(32, "little")
    honest = crypto.SigningKey(bytes(32)).public_key
    y8 = min(y for y in SMALL_ORDER_YS if y not in (0, 1, P - 1))
    order_8 = y8.to_bytes(32, "little")
    mixed = nacl.bindings.crypto_core_ed25519_add(honest, order_8)
    assert not crypto.is_acceptable_public_key(off_curve)
    assert not crypto.is_acceptable_public_key(mixed)
    assert crypto.is_acceptable_public_key(honest)


def test_ordinary_keys_are_accepted() -> None:
    """Negative control: the refusal is about small order, not about every key."""
    for seed in range(8):
        key = crypto.SigningKey(bytes([seed]) * 32).public_key
        assert crypto.is_acceptable_public_key(key)
    assert not crypto.is_acceptable_public_key(bytes(31))
    assert not crypto.is_acceptable_public_key(bytes(33))


@pytest.mark.parametrize(
    ("s", "accepted"),
    [(crypto.ED25519_L - 1, True), (crypto.ED25519_L, False), (crypto.ED25519_L + 1, False)],
    ids=["L-1", "L", "L+1"],
)
def test_scalar_bound_is_checked_before_the_library(
    monkeypatch: pytest.MonkeyPatch, s: int, accepted: bool
) -> None:
    """S < L is crypto.verify's own rule (the classic S + L malleation), not left to the
    library: with a library that accepts anything, S = L - 1 passes and S = L, L + 1 not."""
    monkeypatch.setattr(crypto, "_library_verify", lambda key, message, signature: True)
    key = crypto.SigningKey(bytes(32)).public_key
    sig = bytes(32) + s.to_bytes(32, "little")
    assert crypto.verify(key, b"m", sig) is accepted
    for bad_sig, bad_key in ((sig[:63], key), (sig + b"\x00", key), (sig, key[:31])):
        assert not crypto.verify(bad_key, b"m", bad_sig)  # lengths too, either way
    assert not crypto.verify(key + b"\x00", b"m", sig)


def test_scalar_bound_with_the_real_library() -> None:
    key = crypto.SigningKey(bytes(range(32)))
    sig = key.sign(b"m")
    s = int.from_bytes(sig[32:], "little")
    assert s < crypto.ED25519_L and crypto.verify(key.public_key, b"m", sig)
    for bad in (s + crypto.ED25519_L, crypto.ED25519_L, crypto.ED25519_L - 1):
        assert not crypto.verify(key.public_key, b"m", sig[:32] + bad.to_bytes(32, "little"))


@pytest.mark.parametrize(
    ("what", "must_accept", "key", "message", "signature"),
    vectors(),
    ids=[v[0] for v in vectors()],
)
def test_the_library_vectors_of_adr_0009(
    what: str, must_accept: bool, key: bytes, message: bytes, signature: bytes
) -> None:
    """The vectors devtools.bench.verify shows each library (ADR 0009): small-order R, the
    identity key (one signature for every message), non-canonical A and R, S + L. Three of
    them OpenSSL accepts; crypto.verify must refuse them all."""
    assert crypto.verify(key, message, signature) is must_accept
