"""Transaction bodies: every field a client sends is a lie until the decoder proves it.

The decoder takes canonical bytes within the limits and raises DecodeError (and nothing
else) for any other bytes: the node answers MALFORMED for them (docs/ledger.md, result
codes: "not a canonical encoding"), and ADR 0001: "every value has exactly one encoding,
so SHA-256(body) is a stable transaction id". The encoder refuses (ValueError) whatever
the decoder would refuse, so a client never signs a body no node accepts.
"""

from __future__ import annotations

import pytest

from node.config import ADMINS_MAX, CHAIN_ID_BYTES_MAX, RESERVE_BILLS_MAX, SECURED_REF_BYTES_MAX
from node.settlement import (
    AttestReserves,
    Bill,
    ClaimLock,
    Freeze,
    FreezeReason,
    Lock,
    Mint,
    RepoClose,
    Role,
    Secured,
    SecuredKind,
    SetKycTier,
    SetRoles,
    Transfer,
    decode_body,
    encode_body,
)
from node.settlement._codec import DecodeError, Writer

CHAIN = "c"
DOC = bytes(32)


def _ident(s: str) -> bytes:
    return bytes([len(s)]) + s.encode()


# --- the body's frame -----------------------------------------------------------------


def test_a_body_of_a_kind_without_a_cosigner_and_an_id_after_it_is_a_decode_error() -> None:
    """Only the co-signable kinds (Transfer, DvP, PendingDvP, RepoOpen, RepoClose) may end
    with a co-signer (docs/ledger.md, transaction table): an id after a Mint is trailing
    bytes, a DecodeError, never another exception out of the decoder."""
    body = encode_body(Mint(CHAIN, 1, 2, "BOND", "BANK01", 5, "TREASURY"))
    with pytest.raises(DecodeError):
        decode_body(body + _ident("COMPLIANCE"))


def test_a_cosigned_body_with_a_byte_after_the_cosigner_is_a_decode_error() -> None:
    """ADR 0001: the decoder rejects trailing bytes, the co-signer's optional tail too."""
    tx = Transfer(CHAIN, 1, 2, "CASH", "BANK01", "BANK02", 5, cosigner="COMPLIANCE")
    body = encode_body(tx)
    assert decode_body(body) == tx
    for tail in (b"\x00", _ident("X")):
        with pytest.raises(DecodeError):
            decode_body(body + tail)


def test_a_chain_id_longer_than_its_limit_neither_encodes_nor_decodes() -> None:
    """docs/ledger.md "Identifiers": a chain id is 1-128 bytes (CHAIN_ID_BYTES_MAX)."""
    at_limit = "c" * CHAIN_ID_BYTES_MAX
    tx = Mint(at_limit, 1, 2, "BOND", "BANK01", 5, "TREASURY")
    assert decode_body(encode_body(tx)) == tx
    with pytest.raises(ValueError):
        encode_body(Mint(at_limit + "c", 1, 2, "BOND", "BANK01", 5, "TREASURY"))
    body = encode_body(tx)
    long = body[:2] + _ident(at_limit + "c") + body[2 + 1 + CHAIN_ID_BYTES_MAX :]
    with pytest.raises(DecodeError):
        decode_body(long)


# --- reserves -------------------------------------------------------------------------


def _reserves_body(bills: list[tuple[bytes, int]]) -> bytes:
    """An AttestReserves body with raw (CUSIP bytes, maturity day ordinal) bills."""
    one = AttestReserves(CHAIN, 1, 2, "CASHCO", "CASH", 3, DOC, 4, ())
    body = encode_body(one)
    assert body.endswith(b"\x00")  # u8 bill count 0
    out = bytearray(body[:-1] + bytes([len(bills)]))
    for cusip, ordinal in bills:
        out += cusip + ordinal.to_bytes(4, "big") + (1).to_bytes(8, "big")
    return bytes(out)


def test_a_bill_with_a_non_ascii_cusip_or_a_maturity_past_any_date_is_a_decode_error() -> None:
    """docs/ledger.md "Reserve composition": a bill is 9 CUSIP bytes and a u32 maturity
    day ordinal; bytes that are no CUSIP or no date are a DecodeError (MALFORMED), not a
    UnicodeDecodeError or a ValueError out of the date library."""
    ok = _reserves_body([(b"912796XY2", 740_000)])
    assert len(decode_body(ok).bills) == 1  # type: ignore[union-attr]
    for bad in ((b"912796X\xc32", 740_000), (b"912796XY2", 3_652_060), (b"912796XY2", 2**32 - 1)):
        with pytest.raises(DecodeError):
            decode_body(_reserves_body([bad]))


def test_more_bills_than_reserve_bills_max_do_not_decode() -> None:
    """docs/ledger.md "Reserve composition": at most RESERVE_BILLS_MAX (100) bills; the
    u8 count could say 255, and the decoder refuses it before reading the bills."""
    bill = (b"912796XY2", 740_000)
    decode_body(_reserves_body([bill] * RESERVE_BILLS_MAX))
    with pytest.raises(DecodeError):
        decode_body(_reserves_body([bill] * (RESERVE_BILLS_MAX + 1)))
    with pytest.raises(ValueError):
        encode_body(
            AttestReserves(
                CHAIN, 1, 2, "CASHCO", "CASH", 3, DOC, 4,
                tuple(Bill("912796XY2", "2030-01-01", 1) for _ in range(RESERVE_BILLS_MAX + 1)),
            )
        )  # fmt: skip


# --- governance: roles and admins -------------------------------------------------------


def _set_roles_body(names: list[str]) -> bytes:
    head = encode_body(SetRoles(CHAIN, 1, 2, "BANK01", frozenset(), ("CSD",)))
    tail = b"\x00\x01" + _ident("CSD")  # no roles, then the one admin
    assert head.endswith(tail)
    roles = bytes([len(names)]) + b"".join(_ident(n) for n in names)
    return head[: -len(tail)] + roles + tail[1:]


def test_roles_must_be_known_sorted_and_unique_to_decode() -> None:
    """docs/ledger.md, SetRoles: the roles are a set; ADR 0001 gives a set one encoding
    (sorted, no repeats), and a name that is no role is MALFORMED (a DecodeError)."""
    ok = decode_body(_set_roles_body(["compliance", "trader"]))
    assert isinstance(ok, SetRoles) and ok.roles == {Role.COMPLIANCE, Role.TRADER}
    for names in (["trader", "trader"], ["trader", "compliance"], ["king"]):
        with pytest.raises(DecodeError):
            decode_body(_set_roles_body(names))


def _kyc_body(admins: list[str]) -> bytes:
    w = Writer().u8(1).u8(SetKycTier.KIND).ident(CHAIN, CHAIN_ID_BYTES_MAX).u64(1).u64(2)
    w.ident("BANK01").u8(2).u8(len(admins))
    for a in admins:
        w.ident(a)
    return w.finish()


@pytest.mark.parametrize(
    "admins",
    [[], ["CSD", "CSD"], ["A", "B", "C", "D"]],
    ids=["none", "repeated", "over ADMINS_MAX"],
)
def test_admin_signers_must_be_one_to_admins_max_unique_ids_both_ways(admins: list[str]) -> None:
    """docs/ledger.md "Governance": at most ADMINS_MAX (3) admins; every governance body
    ends with its admin signers, 1.. sorted unique ids (a repeated admin would be one
    signature counted twice). The decoder refuses the others, and so does the encoder."""
    assert len(["A", "B", "C", "D"]) == ADMINS_MAX + 1
    good = decode_body(_kyc_body(["A", "B", "C"]))
    assert isinstance(good, SetKycTier) and good.admins == ("A", "B", "C")
    with pytest.raises(DecodeError):
        decode_body(_kyc_body(admins))
    with pytest.raises(ValueError):
        encode_body(SetKycTier(CHAIN, 1, 2, "BANK01", 2, tuple(admins)))


# --- locks: the secured reference -------------------------------------------------------


def test_a_secured_reference_longer_than_its_limit_neither_encodes_nor_decodes() -> None:
    """docs/ledger.md "Locks and swaps": a secured reference is at most
    SECURED_REF_BYTES_MAX (64) bytes."""
    ref = b"R" * SECURED_REF_BYTES_MAX
    tx = Lock(CHAIN, 1, 2, "A", "I", 3, "B", 4, Secured(SecuredKind.REPO, ref))
    body = encode_body(tx)
    assert decode_body(body) == tx
    with pytest.raises(ValueError):
        encode_body(Lock(CHAIN, 1, 2, "A", "I", 3, "B", 4, Secured(SecuredKind.REPO, ref + b"R")))
    n = len(ref)
    longer = body[: -(4 + n)] + (n + 1).to_bytes(4, "big") + ref + b"R"
    with pytest.raises(DecodeError):
        decode_body(longer)


# --- repo close: by one or both parties -----------------------------------------------


def _close_body(by: list[str]) -> bytes:
    body = encode_body(RepoClose(CHAIN, 1, 2, "R1", "BANK01", "BANK02", ("BANK01",)))
    tail = b"\x01" + _ident("BANK01")
    assert body.endswith(tail)
    return body[: -len(tail)] + bytes([len(by)]) + b"".join(_ident(s) for s in by)


@pytest.mark.parametrize(
    "by",
    [[], ["BANK01", "BANK01"], ["BANK01", "BANK02", "BANK03"]],
    ids=["nobody", "repeated", "three"],
)
def test_a_repo_close_is_signed_by_one_or_both_parties_both_ways(by: list[str]) -> None:
    """docs/ledger.md, RepoClose: ``by`` is one or both of the parties, sorted (at most 2,
    no repeats, never empty: a close nobody signs). Decoder and encoder both refuse."""
    assert decode_body(_close_body(["BANK01", "BANK02"])) == RepoClose(
        CHAIN, 1, 2, "R1", "BANK01", "BANK02", ("BANK01", "BANK02")
    )
    with pytest.raises(DecodeError):
        decode_body(_close_body(by))
    with pytest.raises(ValueError):
        encode_body(RepoClose(CHAIN, 1, 2, "R1", "BANK01", "BANK02", tuple(by)))


# --- presence bytes ---------------------------------------------------------------------


def test_a_presence_byte_other_than_0_or_1_is_a_decode_error() -> None:
    """ADR 0020 (wire conventions) and node/core/codec.py: an optional field is a presence
    byte, exactly 0 or 1, then the field; any other byte would be a second encoding (a
    second id) of one transaction. A freeze's instrument and a claim's co-signer."""
    freeze = Freeze(CHAIN, 1, 2, "BANK01", "BOND", FreezeReason.SANCTIONS, "REGULATOR")
    claim = ClaimLock(CHAIN, 1, 2, bytes(32), "BANK01", "BANK02", "BOND", 5, "COMPLIANCE")
    for tx, present in (
        (freeze, _ident("BANK01") + b"\x01" + _ident("BOND")),
        (claim, b"\x01" + _ident("COMPLIANCE")),
    ):
        body = encode_body(tx)
        assert decode_body(body) == tx and body.count(present) == 1
        for flag in (b"\x02", b"\xff"):
            with pytest.raises(DecodeError):
                decode_body(body.replace(present, present.replace(b"\x01", flag, 1)))
