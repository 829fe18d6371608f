"""The synchronous client: :class:`AsyncLedgerClient` run on a private event loop.

Each call runs the async method to completion on the client's own ``asyncio.Runner`` in
the calling thread, so failover, retries and verification are the async client's, with
the same limits. It refuses to run inside a running event loop (it would block that loop;
use AsyncLedgerClient there). It runs one call at a time: a call from a second thread
while one is in progress is refused with RuntimeError before anything is sent (before
review 34s it raised RuntimeError "This event loop is already running", yet its coroutine
had been put on the first thread's loop and ran there: a trade its caller was told failed
was sent and settled). Waiting for the other call instead could wait for ever: a thread
iterating ``blocks()`` on an idle chain waits for a block only the other thread's trade
would make. For calls that overlap use one client per thread, or AsyncLedgerClient.
``close()`` from another thread ends the call in progress with ClosedError.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncGenerator, Callable, Coroutine, Iterator, Sequence
from pathlib import Path
from typing import Any, Literal, TypeVar, overload

from client._async import (
    AccountEvent,
    AsyncLedgerClient,
    BackedView,
    Balances,
    BlockTiming,
    BlockView,
    Endpoint,
    EndpointDown,
    InstrumentView,
    LockView,
    NodeStatusView,
    PendingTrade,
    TxStatus,
    _run_dir_config,
)
from client._errors import ClosedError
from client._identity import identity_key
from client._keys import ParticipantKey
from client._limits import RPC_TIMEOUT_DEFAULT_S, SUBMIT_TIMEOUT_DEFAULT_S
from client._prices import PriceBook
from client._reference import Reference
from client._replay import HoldersAt
from client._stream import SubmitStream
from client._trades import SignedTransaction, Transactions
from node.receipt import Receipt
from node.settlement import FreezeRecord, Genesis, RepoRecord, Transaction

__all__ = ["LedgerClient", "StreamedTx", "SyncSubmitStream"]

T = TypeVar("T")


def _refuse_running_loop() -> None:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return
    raise RuntimeError(
        "LedgerClient cannot run inside a running event loop; use AsyncLedgerClient there"
    )


async def _next(agen: AsyncGenerator[T, None]) -> T:
    return await agen.__anext__()


class LedgerClient:
    """The same API as :class:`AsyncLedgerClient`, blocking; iterators are generators.

    ``with LedgerClient.from_run_dir("run") as c: c.submit(stx)``
    """

    def __init__(
        self,
        endpoints: Sequence[Endpoint],
        *,
        tls_certs: bytes,
        genesis: Genesis,
        rpc_timeout_s: float = RPC_TIMEOUT_DEFAULT_S,
        identity: ParticipantKey | None = None,
        observer: bool = False,
    ) -> None:
        _refuse_running_loop()
        self._client = AsyncLedgerClient(
            endpoints,
            tls_certs=tls_certs,
            genesis=genesis,
            rpc_timeout_s=rpc_timeout_s,
            identity=identity,
            observer=observer,
        )
        self._runner: asyncio.Runner | None = asyncio.Runner()
        # Held by the call in progress (re-entrant: a generator finalised by the garbage
        # collector in the thread that is in a call must not deadlock it).
        self._lock = threading.RLock()
        self._closing = False  # set by close(), from any thread
        self._calls: set[asyncio.Task[Any]] = set()  # the call running (on the loop only)
        self.genesis: Genesis = genesis
        self.tx: Transactions = self._client.tx

    @classmethod
    def from_run_dir(
        cls,
        run_dir: str | Path = "run",
        *,
        rpc_timeout_s: float = RPC_TIMEOUT_DEFAULT_S,
        identity: str | Path | ParticipantKey | None = None,
        observer: bool = False,
    ) -> LedgerClient:
        """As :meth:`AsyncLedgerClient.from_run_dir`."""
        endpoints, pinned, genesis = _run_dir_config(run_dir)
        key = None if identity is None else identity_key(run_dir, identity)
        return cls(
            endpoints,
            tls_certs=pinned,
            genesis=genesis,
            rpc_timeout_s=rpc_timeout_s,
            identity=key,
            observer=observer,
        )

    @property
    def identity(self) -> str | None:
        return self._client.identity

    @property
    def endpoints(self) -> tuple[Endpoint, ...]:
        return self._client.endpoints

    @property
    def current_endpoint(self) -> Endpoint:
        return self._client.current_endpoint

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        _refuse_running_loop()
        if self._closing:  # also while close() holds the lock
            coro.close()
            raise ClosedError("LedgerClient", "this client is closed", sent=False)
        if not self._lock.acquire(blocking=False):
            coro.close()
            raise RuntimeError(
                "this LedgerClient is in a call on another thread and runs one call at a "
                "time; nothing was sent: use one LedgerClient per thread, or "
                "AsyncLedgerClient, for calls that overlap"
            )
        try:
            if self._runner is None or self._closing:
                coro.close()
                raise ClosedError("LedgerClient", "this client is closed", sent=False)
            try:
                return self._runner.run(self._tracked(coro))
            except asyncio.CancelledError:
                if not self._closing:
                    raise
                raise ClosedError(
                    "LedgerClient", "the client was closed during the call (by another thread)"
                ) from None
        finally:
            self._lock.release()

    async def _tracked(self, coro: Coroutine[Any, Any, T]) -> T:
        """``coro`` as a call ``close()`` can end from another thread."""
        if self._closing:  # close() ran before this call started on the loop
            coro.close()
            raise ClosedError("LedgerClient", "this client is closed", sent=False)
        task = asyncio.current_task()
        if task is not None:  # always: the runner runs a coroutine as a task
            self._calls.add(task)
        try:
            return await coro
        finally:
            self._calls.discard(task)

    def _interrupt(self) -> None:
        """On the loop: end the call in progress (close() from another thread)."""
        for task in self._calls:
            task.cancel()

    def close(self) -> None:
        """Close the client; a call another thread has in progress ends with ClosedError,
        and so does every later call. Closing twice is harmless."""
        self._closing = True
        runner = self._runner
        if not self._lock.acquire(blocking=False):
            if runner is not None:
                with contextlib.suppress(RuntimeError):  # closed meanwhile by another closer
                    runner.get_loop().call_soon_threadsafe(self._interrupt)
            self._lock.acquire()
        try:
            if self._runner is not None:
                runner, self._runner = self._runner, None
                try:
                    runner.run(self._client.aclose())
                finally:
                    runner.close()
        finally:
            self._lock.release()

    def __enter__(self) -> LedgerClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def sign(self, tx: Transaction | SignedTransaction, *keys: ParticipantKey) -> SignedTransaction:
        return self._client.sign(tx, *keys)

    @overload
    def submit(
        self,
        stx: SignedTransaction | bytes,
        *,
        wait: Literal[True] = ...,
        timeout_s: float = ...,
        prove_result: bool = ...,
    ) -> Receipt: ...

    @overload
    def submit(
        self,
        stx: SignedTransaction | bytes,
        *,
        wait: Literal[False],
        timeout_s: float = ...,
        prove_result: bool = ...,
    ) -> bytes: ...

    def submit(
        self,
        stx: SignedTransaction | bytes,
        *,
        wait: bool = True,
        timeout_s: float = SUBMIT_TIMEOUT_DEFAULT_S,
        prove_result: bool = True,
    ) -> Receipt | bytes:
        """See :meth:`AsyncLedgerClient.submit`."""
        if wait:
            return self._run(
                self._client.submit(stx, timeout_s=timeout_s, prove_result=prove_result)
            )
        return self._run(self._client.submit(stx, wait=False, timeout_s=timeout_s))

    @contextlib.contextmanager
    def stream(self, *, prove_result: bool = True) -> Iterator[SyncSubmitStream]:
        """See :meth:`AsyncLedgerClient.stream`: ``h = s.submit(stx)``, then
        ``h.result()`` for the verified receipt (it runs the client's loop, so every other
        submission of the stream makes progress meanwhile)."""
        s = self._run(self._client.open_stream(prove_result=prove_result))
        try:
            yield SyncSubmitStream(self._run, s)
        except BaseException:
            self._run(s.cancel())
            raise
        self._run(s.aclose())

    def receipt(
        self,
        tx_id: bytes,
        *,
        wait: bool = True,
        timeout_s: float = SUBMIT_TIMEOUT_DEFAULT_S,
        prove_result: bool = True,
    ) -> Receipt:
        return self._run(
            self._client.receipt(tx_id, wait=wait, timeout_s=timeout_s, prove_result=prove_result)
        )

    def wait_settled(self, tx_id: bytes, *, timeout_s: float = SUBMIT_TIMEOUT_DEFAULT_S) -> Receipt:
        """See ``AsyncLedgerClient.wait_settled``."""
        return self._run(self._client.wait_settled(tx_id, timeout_s=timeout_s))

    def pending(self) -> tuple[int, tuple[PendingTrade, ...]]:
        """See ``AsyncLedgerClient.pending``."""
        return self._run(self._client.pending())

    def reference(self) -> Reference:
        """See ``AsyncLedgerClient.reference``."""
        return self._run(self._client.reference())

    def freezes(self) -> tuple[int, tuple[FreezeRecord, ...]]:
        """See ``AsyncLedgerClient.freezes``."""
        return self._run(self._client.freezes())

    def locks(self, party: str = "") -> tuple[int, tuple[LockView, ...]]:
        """See ``AsyncLedgerClient.locks``."""
        return self._run(self._client.locks(party))

    def repos(
        self, repo_id: str = "", *, party: str = "", limit: int = 0
    ) -> tuple[int, tuple[RepoRecord, ...]]:
        """See ``AsyncLedgerClient.repos``."""
        return self._run(self._client.repos(repo_id, party=party, limit=limit))

    def attestations(self, instrument: str = "") -> tuple[int, tuple[BackedView, ...]]:
        """See ``AsyncLedgerClient.attestations``."""
        return self._run(self._client.attestations(instrument))

    def prices(self, instrument: str = "") -> PriceBook:
        """See ``AsyncLedgerClient.prices``."""
        return self._run(self._client.prices(instrument))

    def transaction(self, tx_id: bytes) -> TxStatus:
        return self._run(self._client.transaction(tx_id))

    def balances(self, account: str) -> Balances:
        return self._run(self._client.balances(account))

    def block(self, height: int) -> BlockView:
        return self._run(self._client.block(height))

    def instrument(self, instrument: str) -> InstrumentView:
        """Holders and paid periods of a bond or fund (see the async client)."""
        return self._run(self._client.instrument(instrument))

    def timelines(
        self, first_height: int, last_height: int
    ) -> list[list[BlockTiming] | EndpointDown]:
        return self._run(self._client.timelines(first_height, last_height))

    def holders_at(
        self, instrument: str, height: int, *, progress: Callable[[int, int], None] | None = None
    ) -> HoldersAt:
        """Holders after block ``height``, replayed from genesis (see the async client)."""
        return self._run(self._client.holders_at(instrument, height, progress=progress))

    def head(self) -> int:
        return self._run(self._client.head())

    def status(self) -> list[NodeStatusView | EndpointDown]:
        return self._run(self._client.status())

    def block_hash_at(self, i: int, height: int) -> bytes | None:
        return self._run(self._client.block_hash_at(i, height))

    def blocks(self, from_height: int = 1) -> Iterator[BlockView]:
        return self._iterate(self._client.blocks(from_height))

    def events(self, account: str, from_height: int = 1) -> Iterator[AccountEvent]:
        return self._iterate(self._client.events(account, from_height))

    def _iterate(self, agen: AsyncGenerator[T, None]) -> Iterator[T]:
        try:
            while True:
                try:
                    item = self._run(_next(agen))
                except StopAsyncIteration:
                    return
                yield item
        finally:
            self._close_later_or_now(agen)

    def _close_later_or_now(self, agen: AsyncGenerator[T, None]) -> None:
        """Close an iterator's generator (its node's block stream) now, or, while another
        thread is in a call, on the loop as that call runs it."""
        runner = self._runner
        if runner is None:
            return  # closing the runner closed it
        if not self._lock.acquire(blocking=False):
            with contextlib.suppress(RuntimeError):  # closed meanwhile
                loop = runner.get_loop()
                loop.call_soon_threadsafe(lambda: loop.create_task(agen.aclose()))
            return
        try:
            if self._runner is not None:
                self._runner.run(agen.aclose())
        finally:
            self._lock.release()


class StreamedTx:
    """A submission sent over a :class:`SyncSubmitStream`."""

    def __init__(self, run: Callable[[Coroutine[Any, Any, Receipt]], Receipt], tx_id: bytes,
                 future: asyncio.Future[Receipt]) -> None:  # fmt: skip
        self._run, self.tx_id, self._future = run, tx_id, future

    def done(self) -> bool:
        """True once the final (or error) event arrived, or the deadline passed."""
        return self._future.done()

    def result(self) -> Receipt:
        """The verified receipt, waiting for it; raises as ``LedgerClient.submit``."""
        return self._run(_wait(self._future))


class SyncSubmitStream:
    """A submit stream of a :class:`LedgerClient` (from ``LedgerClient.stream()``)."""

    def __init__(self, run: Callable[[Coroutine[Any, Any, Any]], Any], s: SubmitStream) -> None:
        self._run, self._stream = run, s

    @property
    def in_flight(self) -> int:
        return self._stream.in_flight

    def submit(
        self, stx: SignedTransaction | bytes, *, timeout_s: float = SUBMIT_TIMEOUT_DEFAULT_S
    ) -> StreamedTx:
        """Send once a slot is free (see :meth:`SubmitStream.submit`)."""
        signed = stx if isinstance(stx, SignedTransaction) else SignedTransaction(bytes(stx))
        fut = self._run(self._stream.submit(signed, timeout_s=timeout_s))
        return StreamedTx(self._run, signed.tx_id, fut)


async def _wait(fut: asyncio.Future[Receipt]) -> Receipt:
    return await asyncio.shield(fut)  # the stream, not this wait, owns the future
