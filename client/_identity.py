"""The caller's identity on every call: signed requests (docs/adr/0015-client-identity.md).

A :class:`RequestSigner` holds a participant's key and signs each call's node (the genesis
id of the validator it goes to: the caller knows it from the one pinned certificate its
channel trusts, ``client._async.pinned_credentials``), method and serialized request with
the client's clock and a fresh random nonce (node/access.py says what is signed). The
asyncio client passes the metadata it returns on each call; :func:`signed_channel` wraps
a blocking channel to one node so every call through it is signed (the operator tools'
status and block queries).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import grpc

from client._errors import KeyFileError
from client._keys import ParticipantKey, load_key
from node.access import signed_metadata
from node.settlement import Genesis

__all__ = ["RequestSigner", "aio_interceptors", "identity_key", "signed_channel"]

_NONCE_BYTES = 16
_EMPTY = b""


def _wall_ms() -> int:
    return time.time_ns() // 1_000_000


class RequestSigner:
    """Signs calls as ``key.participant``. The node checks the key against the ledger's
    reference data at its head (a participant governance added, a rotated key: ADR 0016),
    so it is not checked against genesis here; a wrong one is UNAUTHENTICATED."""

    def __init__(
        self,
        key: ParticipantKey,
        genesis: Genesis,
        *,
        clock_ms: Callable[[], int] = _wall_ms,
        nonce: Callable[[], bytes] = lambda: os.urandom(_NONCE_BYTES),
    ) -> None:
        self.participant = key.participant
        self._key, self._chain_id = key.key, genesis.chain_id
        self._clock_ms, self._nonce = clock_ms, nonce

    def metadata(self, node: str, method: str, request: Any = None) -> tuple[tuple[str, str], ...]:
        """Metadata for one call of ``method`` (``/ledger.v1.Ledger/GetBalances``) with
        ``request`` (a protobuf message, or its bytes; None for a stream of requests) to
        ``node``, the genesis id of the validator it goes to (``val03``): no other takes it."""
        if request is None:
            raw = _EMPTY
        elif isinstance(request, bytes):
            raw = request
        else:
            raw = request.SerializeToString()
        return signed_metadata(
            self._key,
            self.participant,
            self._chain_id,
            method,
            raw,
            node=node,
            time_ms=self._clock_ms(),
            nonce=self._nonce(),
        )


def identity_key(run_dir: str | Path, identity: str | Path | ParticipantKey) -> ParticipantKey:
    """``identity``: a participant id (its key is ``<run_dir>/participants/<ID>.key``), a key
    file's path, or a key. KeyFileError when the file is missing or unreadable."""
    if isinstance(identity, ParticipantKey):
        key = identity
    elif isinstance(identity, Path):
        key = load_key(identity)
    else:
        path = Path(run_dir) / "participants" / f"{identity}.key"
        if not path.is_file():
            raise KeyFileError(f"{path}: no key for identity {identity!r} in this run directory")
        key = load_key(path, identity)
    return key


class _Details(NamedTuple):
    method: str
    timeout: float | None
    metadata: Any
    credentials: Any
    wait_for_ready: bool | None
    compression: Any


if TYPE_CHECKING:  # generic in the stubs only
    _UU = grpc.UnaryUnaryClientInterceptor[Any, Any]
    _US = grpc.UnaryStreamClientInterceptor[Any, Any]
    _SS = grpc.StreamStreamClientInterceptor[Any, Any]
else:
    _UU, _US, _SS = (
        grpc.UnaryUnaryClientInterceptor,
        grpc.UnaryStreamClientInterceptor,
        grpc.StreamStreamClientInterceptor,
    )


class _Signing(_UU, _US, _SS):
    def __init__(self, signer: RequestSigner, node: str) -> None:
        self._signer, self._node = signer, node

    def _details(self, d: Any, request: Any) -> Any:
        md = (*(d.metadata or ()), *self._signer.metadata(self._node, d.method, request))
        return _Details(d.method, d.timeout, md, d.credentials, d.wait_for_ready, d.compression)

    def intercept_unary_unary(self, cont: Any, d: Any, request: Any) -> Any:
        return cont(self._details(d, request), request)

    def intercept_unary_stream(self, cont: Any, d: Any, request: Any) -> Any:
        return cont(self._details(d, request), request)

    def intercept_stream_stream(self, cont: Any, d: Any, requests: Iterator[Any]) -> Any:
        return cont(self._details(d, None), requests)


def signed_channel(channel: grpc.Channel, signer: RequestSigner, node: str) -> grpc.Channel:
    """``channel`` to validator ``node`` (its genesis id) with every call signed by ``signer``."""
    return grpc.intercept_channel(channel, _Signing(signer, node))


class _AioSigner:
    def __init__(self, signer: RequestSigner, node: str) -> None:
        self._signer, self._node = signer, node

    def _details(self, d: Any, request: Any) -> grpc.aio.ClientCallDetails:
        method = d.method.decode() if isinstance(d.method, bytes) else d.method
        signed = self._signer.metadata(self._node, method, request)
        md = grpc.aio.Metadata(*(d.metadata or ()), *signed)
        return grpc.aio.ClientCallDetails(d.method, d.timeout, md, d.credentials, d.wait_for_ready)


# grpc.aio sorts a channel's interceptors by the first kind each one is (if/elif): one
# class per kind of call.
class _AioUnaryUnary(_AioSigner, grpc.aio.UnaryUnaryClientInterceptor):  # type: ignore[type-arg]
    async def intercept_unary_unary(self, cont: Any, d: Any, request: Any) -> Any:
        return await cont(self._details(d, request), request)


class _AioUnaryStream(_AioSigner, grpc.aio.UnaryStreamClientInterceptor):  # type: ignore[type-arg]
    async def intercept_unary_stream(self, cont: Any, d: Any, request: Any) -> Any:
        return await cont(self._details(d, request), request)


class _AioStreamStream(_AioSigner, grpc.aio.StreamStreamClientInterceptor):  # type: ignore[type-arg]
    async def intercept_stream_stream(self, cont: Any, d: Any, requests: Any) -> Any:
        return await cont(self._details(d, None), requests)


def aio_interceptors(signer: RequestSigner, node: str) -> list[Any]:
    """Interceptors for ``grpc.aio.secure_channel`` to validator ``node`` (its genesis id)
    signing every call with ``signer``."""
    return [
        _AioUnaryUnary(signer, node),
        _AioUnaryStream(signer, node),
        _AioStreamStream(signer, node),
    ]
