"""Key files, pinned certificates and the client's identity, with teeth.

docs/cluster.md: "Key files (validator Ed25519 keys, TLS keys, participants' keys) are
written with mode 0600", and a private key readable or writable by group or others is a
problem `check-config` reports. ADR 0019 (docs/adr/0019-genesis-ceremony.md): genesis pins
each validator's TLS certificate by hash and a pinned certificate is the only trust root.
ADR 0015 (docs/adr/0015-client-identity.md): every call is signed over its method and its
serialized request. All in process, fast.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import stat
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from client._errors import KeyFileError as ClientKeyFileError
from client._identity import RequestSigner, aio_interceptors, identity_key, signed_channel
from client._keys import ParticipantKey
from node import crypto
from node.access import AccessError, parse_claim, verify_claim
from node.ceremony import _self_signed
from node.genesis import demo_genesis
from node.keyfiles import (
    KeyFileError,
    cert_pin,
    load_signing_key,
    pem_cert,
    pinned_certificates,
    write_private_file,
    write_signing_key,
)
from node.settlement import Registry

# --- key files ---------------------------------------------------------------------------


def test_a_private_file_is_0600_whatever_the_umask(tmp_path: Path) -> None:
    """docs/cluster.md: key files are written with mode 0600 from the start."""
    old = os.umask(0)
    try:
        write_private_file(tmp_path / "k", b"secret")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "k").stat().st_mode) == 0o600


def test_a_private_file_is_never_overwritten(tmp_path: Path) -> None:
    """write_private_file refuses an existing file: a key is never silently replaced."""
    write_private_file(tmp_path / "k", b"first")
    with pytest.raises(FileExistsError):
        write_private_file(tmp_path / "k", b"second")
    assert (tmp_path / "k").read_bytes() == b"first"


@pytest.mark.parametrize("mode", [0o640, 0o620, 0o610, 0o604, 0o602, 0o601])
def test_loading_a_key_group_or_others_may_touch_warns(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, mode: int
) -> None:
    """docs/cluster.md: a private key "readable or writable by group or others (must be
    0600)" is a problem; loading it warns with the chmod that fixes it. Group bits count
    as much as others' bits."""
    path = tmp_path / "loose.key"
    write_signing_key(path, crypto.SigningKey.generate())
    path.chmod(mode)
    with caplog.at_level(logging.WARNING, logger="node.keyfiles"):
        load_signing_key(path)
    assert "chmod 600" in caplog.text


def test_loading_a_0600_key_does_not_warn(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "tight.key"
    write_signing_key(path, crypto.SigningKey.generate())
    with caplog.at_level(logging.WARNING, logger="node.keyfiles"):
        load_signing_key(path)
    assert "chmod" not in caplog.text


def test_an_encrypted_key_file_is_a_key_file_error(tmp_path: Path) -> None:
    """A passphrase-protected key (cryptography raises TypeError for it) is refused as a
    KeyFileError the node prints in one line, not a traceback."""
    pem = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"passphrase"),
    )
    path = tmp_path / "locked.key"
    write_private_file(path, pem)
    with pytest.raises(KeyFileError, match="not an unencrypted PKCS8 PEM"):
        load_signing_key(path)


def test_a_key_file_of_another_kind_or_none_is_a_key_file_error(tmp_path: Path) -> None:
    ec_pem = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    write_private_file(tmp_path / "ec.key", ec_pem)
    with pytest.raises(KeyFileError, match="expected an Ed25519 key"):
        load_signing_key(tmp_path / "ec.key")
    with pytest.raises(KeyFileError, match="cannot read"):
        load_signing_key(tmp_path / "missing.key")


# --- pinned certificates (ADR 0019) ------------------------------------------------------


def _cert(name: str) -> x509.Certificate:
    """A validator's certificate as the ceremony makes it."""
    return _self_signed(ec.generate_private_key(ec.SECP256R1()), [name], dt.datetime.now(dt.UTC))


def test_only_certificates_genesis_pins_are_trusted() -> None:
    """ADR 0019: "a run-time trust root is a pinned certificate or nothing": a bundle
    holding one certificate genesis does not pin is refused whole."""
    a, b, stranger = _cert("node-00"), _cert("node-01"), _cert("intruder")
    pins = [cert_pin(a), cert_pin(b)]
    assert pinned_certificates(pem_cert(b) + pem_cert(a), pins) == {
        0: pem_cert(a),
        1: pem_cert(b),
    }
    with pytest.raises(ValueError, match="'CN=intruder' is not pinned"):
        pinned_certificates(pem_cert(a) + pem_cert(stranger), pins)
    with pytest.raises(ValueError, match="no PEM certificate"):
        pinned_certificates(b"not a certificate", pins)


# --- the client's identity (ADR 0015) ----------------------------------------------------

NET = demo_genesis()
G = NET.genesis


def test_an_identity_is_a_participant_id_never_a_path(tmp_path: Path) -> None:
    """client/_identity.py: a string identity names ``<run_dir>/participants/<ID>.key``.
    One that climbs out of participants/ (``../x/BANK01``) is refused, not loaded as
    BANK01 from wherever it points."""
    (tmp_path / "participants").mkdir()
    (tmp_path / "x").mkdir()
    write_signing_key(tmp_path / "x" / "BANK01.key", NET.participant_keys["BANK01"])
    write_signing_key(tmp_path / "participants" / "BANK01.key", NET.participant_keys["BANK01"])
    assert identity_key(tmp_path, "BANK01").participant == "BANK01"  # control
    with pytest.raises(ClientKeyFileError):
        identity_key(tmp_path, "../x/BANK01")
    with pytest.raises(ClientKeyFileError, match="no key for identity 'BANK02'"):
        identity_key(tmp_path, "BANK02")


def test_an_identity_may_be_a_key_file_path(tmp_path: Path) -> None:
    """client/_identity.py identity_key: a ``Path`` is a key file, wherever it lies, and
    signs for the participant its stem names."""
    path = tmp_path / "elsewhere" / "BANK03.key"
    path.parent.mkdir()
    write_signing_key(path, NET.participant_keys["BANK03"])
    key = identity_key(tmp_path, path)
    assert (key.participant, key.public_key) == (
        "BANK03",
        NET.participant_keys["BANK03"].public_key,
    )


_METHOD = "/ledger.v1.Ledger/GetBalances"
_NODE = "val00"  # the validator (genesis id) each call here is signed for


class _Req:
    """Stands for a protobuf request: what the signer serializes."""

    def __init__(self, raw: bytes) -> None:
        self.raw = raw

    def SerializeToString(self) -> bytes:
        return self.raw


def test_a_signed_call_carries_the_clock_and_a_fresh_128_bit_nonce() -> None:
    """ADR 0015: each call is signed with the client's clock (the node refuses one outside
    its skew window) and a fresh random nonce (the node refuses a repeated one as a replay:
    a short nonce would make honest calls in one millisecond collide)."""
    key = ParticipantKey("BANK01", NET.participant_keys["BANK01"])
    signer = RequestSigner(key, G, clock_ms=lambda: 1_767_225_600_123)
    claims = [parse_claim(signer.metadata(_NODE, _METHOD, b"")) for _ in range(2)]
    assert [c.time_ms for c in claims] == [1_767_225_600_123] * 2
    assert [len(c.nonce) for c in claims] == [16, 16]
    assert claims[0].nonce != claims[1].nonce


@pytest.mark.parametrize("as_message", [False, True])
def test_a_signed_call_binds_its_request(as_message: bool) -> None:
    """ADR 0015: the signature covers the method and the serialized request, so metadata
    lifted from one call does not authenticate another request."""
    key = ParticipantKey("BANK01", NET.participant_keys["BANK01"])
    reg = Registry.at_genesis(G)
    request, other = b"\x0a\x06BANK01", b"\x0a\x06BANK02"
    md = RequestSigner(key, G).metadata(_NODE, _METHOD, _Req(request) if as_message else request)
    claim = parse_claim(md)
    assert verify_claim(claim, reg, _NODE, _METHOD, request).participant == "BANK01"
    with pytest.raises(AccessError):
        verify_claim(claim, reg, _NODE, _METHOD, other)


# --- signed channels: what the operator tools call through (devtools/cluster.py) ---------

_SVC, _ECHO, _CHAT = "teeth.Echo", "/teeth.Echo/Unary", "/teeth.Echo/Stream"


def _verify(md: Any, method: str, request: bytes) -> bytes:
    """The participant the call's metadata proves for ``request``, and the caller's own
    ``x-trace`` header, as the reply."""
    pairs = [(k, v) for k, v in md]
    try:
        who = verify_claim(parse_claim(pairs), Registry.at_genesis(G), _NODE, method, request)
    except AccessError as e:
        return f"refused: {e}".encode()
    trace = dict(pairs).get("x-trace", "-")
    return f"{who.participant} {trace}".encode()


def _server() -> tuple[grpc.Server, str]:
    def unary(request: bytes, context: grpc.ServicerContext) -> bytes:
        return _verify(context.invocation_metadata(), _ECHO, request)

    def stream(requests: Iterator[bytes], context: grpc.ServicerContext) -> Iterator[bytes]:
        for _ in requests:
            yield _verify(context.invocation_metadata(), _CHAT, b"")

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    handlers = {
        "Unary": grpc.unary_unary_rpc_method_handler(unary),
        "Stream": grpc.stream_stream_rpc_method_handler(stream),
    }
    server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler(_SVC, handlers)])
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    return server, f"127.0.0.1:{port}"


def _signer() -> RequestSigner:
    return RequestSigner(ParticipantKey("BANK01", NET.participant_keys["BANK01"]), G)


def test_a_signed_channel_signs_every_call_and_keeps_the_callers_metadata() -> None:
    """ADR 0015: every call through ``signed_channel`` carries the caller's identity,
    signed over its method and request (a stream's over no request), and the metadata
    the caller gave goes along with it."""
    server, address = _server()
    try:
        with grpc.insecure_channel(address) as plain:
            channel = signed_channel(plain, _signer(), _NODE)
            md = (("x-trace", "t1"),)
            unary = channel.unary_unary(_ECHO, None, None)
            assert unary(b"req", metadata=md, timeout=10) == b"BANK01 t1"
            # signed for the node named, and no other (the server here is _NODE)
            elsewhere = signed_channel(plain, _signer(), "val01").unary_unary(_ECHO, None, None)
            assert elsewhere(b"req", timeout=10).startswith(b"refused: ")
            replies = channel.stream_stream(_CHAT, None, None)(
                iter([b"a"]), metadata=md, timeout=10
            )
            assert list(replies) == [b"BANK01 t1"]
    finally:
        server.stop(None)


async def test_aio_interceptors_sign_every_call_and_keep_the_callers_metadata() -> None:
    """The same for the asyncio channels the cluster tools open (``aio_interceptors``)."""
    server, address = _server()
    try:
        async with grpc.aio.insecure_channel(
            address, interceptors=aio_interceptors(_signer(), _NODE)
        ) as channel:
            md = grpc.aio.Metadata(("x-trace", "t2"))
            reply = await channel.unary_unary(_ECHO, None, None)(b"req", metadata=md, timeout=10)
            assert reply == b"BANK01 t2"
            call = channel.stream_stream(_CHAT, None, None)(iter([b"a"]), metadata=md, timeout=10)
            assert [r async for r in call] == [b"BANK01 t2"]
    finally:
        server.stop(None)
