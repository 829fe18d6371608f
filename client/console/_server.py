"""The console's web server: JSON endpoints, a live event stream (SSE), static pages.

A client of the public API, not part of any validator: one ``AsyncLedgerClient`` signed
as one identity (the run directory's operator, ``AUDITOR``, unless told otherwise), so
the console shows exactly what that identity may read. Two background tasks feed the
model (``_model.py``): one follows the committed blocks (certificates checked by the
SDK, failing over between validators), one polls every validator's status and the
timelines of new blocks every CONSOLE_STATUS_POLL_S. Each block and each status poll is
published to the live streams; every stream's queue is bounded (client/_limits.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from importlib import resources
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web

from client._async import AsyncLedgerClient, EndpointDown, NodeStatusView
from client._cli_settlement import finality_of
from client._errors import (
    InvalidFieldError,
    LedgerError,
    NotFoundError,
    PermissionDeniedError,
    UnauthenticatedError,
)
from client._limits import (
    CONSOLE_BLOCKS_KEPT,
    CONSOLE_PARTICIPANTS_MAX,
    CONSOLE_SSE_QUEUE_MAX,
    CONSOLE_SSE_SUBSCRIBERS_MAX,
    CONSOLE_SSE_WRITE_TIMEOUT_S,
    CONSOLE_STATUS_POLL_S,
    CONSOLE_TIMELINE_SPAN_MAX,
)
from client.console._model import (
    ConsoleModel,
    backing_view,
    block_json,
    js_safe,
    network_view,
    receipt_check,
    trade_view,
)
from node.access import OBSERVER_ROLES
from node.config import U64_MAX
from node.netconfig import is_ip

__all__ = ["ConsoleServer", "Hub"]

RECEIPT_PROOF_WAIT_S = 3.0  # a verify waits this long for the next block's result proof
_STATIC = ("index.html", "app.js", "charts.js", "style.css")
_TYPES = {"html": "text/html", "js": "text/javascript", "css": "text/css"}


class Hub:
    """Live subscribers, each with a bounded queue. A subscriber that falls
    ``queue_max`` events behind is closed (its queue ends with None), so one stalled
    browser never holds memory or slows the others."""

    def __init__(
        self,
        subscribers_max: int = CONSOLE_SSE_SUBSCRIBERS_MAX,
        queue_max: int = CONSOLE_SSE_QUEUE_MAX,
    ) -> None:
        self.subscribers_max, self.queue_max = subscribers_max, queue_max
        self._queues: set[asyncio.Queue[str | None]] = set()
        self.dropped = 0  # subscribers closed for lagging

    def __len__(self) -> int:
        return len(self._queues)

    def subscribe(self) -> asyncio.Queue[str | None] | None:
        """A new subscriber's queue, or None when ``subscribers_max`` are open."""
        if len(self._queues) >= self.subscribers_max:
            return None
        q: asyncio.Queue[str | None] = asyncio.Queue(self.queue_max + 1)  # +1: the close
        self._queues.add(q)
        return q

    def unsubscribe(self, q: asyncio.Queue[str | None]) -> None:
        self._queues.discard(q)

    def close(self) -> None:
        """End every stream (at shutdown: the server waits for open responses)."""
        for q in self._queues:
            q.put_nowait(None)  # the slot kept for the close is free: full queues were dropped
        self._queues.clear()

    def publish(self, event: str, data: dict[str, Any]) -> None:
        frame = f"event: {event}\ndata: {dumps(data)}\n\n"
        for q in list(self._queues):
            if q.qsize() >= self.queue_max:
                self._queues.discard(q)
                self.dropped += 1
                q.put_nowait(None)  # the slot kept for it: the stream ends after the backlog
            else:
                q.put_nowait(frame)


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def dumps(doc: Any) -> str:
    """JSON for a browser: integers JavaScript cannot hold exactly (nonces, amounts up to
    2**64 - 1) become decimal strings, so the pages never show a rounded amount."""
    return json.dumps(js_safe(doc), separators=(",", ":"))


def _json(doc: Any, status: int = 200) -> web.Response:
    return web.Response(text=dumps(doc), status=status, content_type="application/json")


def _errors(fn: Handler) -> Handler:
    """A ledger error becomes JSON ``{"error": ...}`` with a status a person can act on."""

    async def run(request: web.Request) -> web.StreamResponse:
        try:
            return await fn(request)
        except (InvalidFieldError, ValueError) as e:
            return _error(400, str(e))
        except (PermissionDeniedError, UnauthenticatedError) as e:
            return _error(403, f"{e} (the console reads as one identity: see --as)")
        except NotFoundError as e:
            return _error(404, str(e))
        except LedgerError as e:
            return _error(503 if e.retry_safe else 502, str(e))

    return run


async def _secure(request: web.Request, response: web.StreamResponse) -> None:
    response.headers.update(SECURITY_HEADERS)


def _error(status: int, message: str) -> web.Response:
    return _json({"error": message}, status=status)


# Every response: no sniffing, no framing (clickjacking), scripts and styles from this
# server only (styles inline too: the charts' legends), nothing sent onward as a referrer.
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": (
        "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
        "frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
    ),
    "Referrer-Policy": "no-referrer",
}


def host_refusal(request: web.Request, allowed: frozenset[str]) -> str | None:
    """Why the console will not answer ``request``, or None.

    DNS rebinding: a page of another site, open in the operator's browser, points its own
    name at 127.0.0.1 and reads the console as same-origin, which is everything the
    console's identity (by default the auditor) may read. Its requests carry that name in
    ``Host``; the console answers only to an IP address (a page cannot be served from the
    console's own address), ``localhost``, and the names given with ``--allow-host``.

    Cross-site requests: such a page may also send requests it cannot read the answers
    of, and those cost too: a POST (request forgery), a GET of ``/api/events`` (it holds
    one of the bounded live-stream slots until the console's own tabs get 503), a GET of
    ``/api/positions`` (one balance read per participant). So every method must come from
    the console's own pages, the address bar or no page at all: refused when the browser
    says ``Sec-Fetch-Site: cross-site`` or ``same-site`` (another port or name of this
    machine is same-site; an ``<img>`` or a no-cors fetch sends no ``Origin``), or sends
    an ``Origin`` other than the console's own (browsers without ``Sec-Fetch-*``). A
    request with neither header (curl, a script) comes from no page and is answered."""
    host = request.host
    name = urlsplit(f"//{host}").hostname or ""
    if not is_ip(name) and name != "localhost" and name not in allowed:
        return (
            f"this console answers to its IP address or localhost, not {host[:80]!r} "
            "(a page of another site may not read it); to use a name, serve with "
            "--allow-host NAME"
        )
    site = request.headers.get("Sec-Fetch-Site", "").lower()
    if site in ("cross-site", "same-site"):
        return f"a request from another site (Sec-Fetch-Site: {site}) may not reach this console"
    origin = request.headers.get("Origin")
    if origin is None:
        return None
    if urlsplit(origin).netloc.lower() != host.lower():
        return f"a request from another site ({origin[:80]!r}) may not reach this console"
    return None


def _tx_id(request: web.Request) -> bytes:
    text = request.match_info["tx_id"]
    try:
        tx_id = bytes.fromhex(text)
    except ValueError:
        tx_id = b""
    if len(tx_id) != 32:
        raise InvalidFieldError("tx_id", f"{text[:80]!r} is not a transaction id (64 hex digits)")
    return tx_id


def _whole(text: str, field: str, what: str, top: int) -> int:
    """``text`` as a whole number in 0..``top``, else InvalidFieldError (400) saying what
    was expected: not Python's ``int()`` message, nor protobuf's for a height past 2^64."""
    if not (text.isascii() and text.isdigit() and len(text) <= 20 and int(text) <= top):
        raise InvalidFieldError(field, f"{text[:80]!r} is not {what}")
    return int(text)


def _height(request: web.Request) -> int:
    return _whole(request.match_info["height"], "height", "a block height (1, 2, ...)", U64_MAX)


def _limit(request: web.Request) -> int:
    text = request.query.get("limit", "50")
    what = f"a number of blocks (0, 1, ...; the console keeps the latest {CONSOLE_BLOCKS_KEPT})"
    return _whole(text, "limit", what, U64_MAX)


class ConsoleServer:
    """The aiohttp application around one SDK client (which it closes on cleanup)."""

    def __init__(
        self,
        client: AsyncLedgerClient,
        *,
        poll_s: float = CONSOLE_STATUS_POLL_S,
        allowed_hosts: frozenset[str] = frozenset(),
    ):
        self.client = client
        self.allowed_hosts = frozenset(h.lower() for h in allowed_hosts)
        self.genesis = client.genesis
        self.model = ConsoleModel(client.genesis)
        self.hub = Hub()
        self.poll_s = poll_s
        self.sse_write_timeout_s = CONSOLE_SSE_WRITE_TIMEOUT_S
        self.statuses: list[NodeStatusView | EndpointDown] = []
        self.follow_error = ""  # why the block stream stopped, shown on every page
        me = client.genesis.participant_by_id.get(client.identity or "")
        self.observer = me is not None and not me.roles.isdisjoint(OBSERVER_ROLES)
        self._status_seen = asyncio.Event()
        self.broken = ""  # set when a feeding task died (see _died)
        # The Positions page's last answer and the certified head it was read at; the lock
        # makes one read at a time (see _positions).
        self._positions_lock = asyncio.Lock()
        self._positions_read: tuple[int, dict[str, Any]] | None = None
        self._positions_done = 0  # reads finished: a request takes any that ends after it came

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._guard])
        routes = [
            web.get("/", self._index),
            web.get("/static/{name}", self._static),
            web.get("/favicon.ico", self._no_icon),
            web.get("/api/network", _errors(self._network)),
            web.get("/api/blocks", _errors(self._blocks)),
            web.get("/api/block/{height}", _errors(self._block)),
            web.get("/api/trade/{tx_id}", _errors(self._trade)),
            web.post("/api/trade/{tx_id}/verify", _errors(self._verify)),
            web.get("/api/positions", _errors(self._positions)),
            web.get("/api/attestations", _errors(self._attestations)),
            web.get("/api/fails", _errors(self._fails)),
            web.get("/api/events", self._events),
        ]
        app.add_routes(routes)
        app.cleanup_ctx.append(self._background)
        app.on_shutdown.append(self._close_streams)
        app.on_response_prepare.append(_secure)
        return app

    @web.middleware
    async def _guard(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        why = host_refusal(request, self.allowed_hosts)
        if why is not None:
            return _error(403, why)
        return await handler(request)

    async def _background(self, app: web.Application) -> AsyncIterator[None]:
        tasks = [
            asyncio.create_task(self._follow(), name="block stream"),
            asyncio.create_task(self._poll(), name="status poll"),
        ]
        for t in tasks:
            t.add_done_callback(self._died)
        yield
        running = [t for t in tasks if not t.done()]  # a dead one was reported by _died
        for t in running:
            t.cancel()
        for t in running:
            with contextlib.suppress(asyncio.CancelledError):
                await t
        await self.client.aclose()

    async def _close_streams(self, app: web.Application) -> None:
        self.hub.close()

    def _died(self, task: asyncio.Task[None]) -> None:
        """A feeding task that ended on an unexpected error: say so on every page and on
        stderr, rather than show data that silently stopped moving."""
        if task.cancelled() or task.exception() is None:
            return
        self.broken = f"the console's {task.get_name()} stopped: {task.exception()!r}; restart it"
        print(f"console: error: {self.broken}", file=sys.stderr, flush=True)
        self._status_seen.set()  # nobody waits for a poll that will not come

    # --- feeding the model ---------------------------------------------------------------

    async def _follow(self) -> None:
        """Every committed block from the last CONSOLE_BLOCKS_KEPT on, then each new one;
        the SDK fails over between validators. After it gives up (every node down),
        try again a poll later: the console outlives the cluster's outages."""
        while True:
            try:
                start = self.model.head + 1
                if start == 1:
                    start = max(1, await self.client.head() - CONSOLE_BLOCKS_KEPT + 1)
                async with contextlib.aclosing(self.client.blocks(start)) as blocks:
                    async for b in blocks:
                        self.follow_error = ""
                        self.hub.publish("block", self.model.add_block(b))
            except LedgerError as e:
                self.follow_error = f"block stream: {e}"
            await asyncio.sleep(self.poll_s)

    async def _poll(self) -> None:
        """Every validator's status, then the timelines of the blocks new since the last
        poll, up to the head the block stream followed (certified). A height a validator
        reports is its claim, shown in its row and never a bound: one claiming 2**63 froze
        the finality chart, its timelines asked past the chain's end once and never again."""
        last_timed = 0
        while True:
            self.statuses = await self.client.status()
            self._status_seen.set()
            head = self.model.head  # certified: each block's commit certificate checked
            if head > last_timed:
                first = max(last_timed + 1, head - CONSOLE_TIMELINE_SPAN_MAX + 1, 1)
                self.model.add_finality(finality_of(await self.client.timelines(first, head)))
                last_timed = head
            self.hub.publish("network", self._network_doc())
            await asyncio.sleep(self.poll_s)

    # --- pages ---------------------------------------------------------------------------

    async def _index(self, request: web.Request) -> web.StreamResponse:
        return await self._file("index.html")

    async def _no_icon(self, request: web.Request) -> web.StreamResponse:
        return web.Response(status=204)  # no icon; browsers ask anyway

    async def _static(self, request: web.Request) -> web.StreamResponse:
        return await self._file(request.match_info["name"])

    async def _file(self, name: str) -> web.StreamResponse:
        if name not in _STATIC:  # a fixed list: no path from the request reaches the disk
            return _error(404, f"no such file {name[:80]!r}")
        body = resources.files("client.console").joinpath("static", name).read_bytes()
        ext = name.rsplit(".", 1)[1]
        return web.Response(body=body, content_type=_TYPES[ext], charset="utf-8",
                            headers={"Cache-Control": "no-store"})  # fmt: skip

    # --- JSON ----------------------------------------------------------------------------

    def _network_doc(self) -> dict[str, Any]:
        doc = (
            network_view(self.statuses, self.genesis, self.model.head)
            if self.statuses
            else {"validators": []}
        )
        return {
            **doc,
            **self.model.charts(),
            "identity": self.client.identity,
            "observer": self.observer,
            "follow_error": self.broken or self.follow_error,
            "followed_height": self.model.head,
        }

    async def _network(self, request: web.Request) -> web.StreamResponse:
        await self._status_seen.wait()
        return _json(self._network_doc())

    async def _blocks(self, request: web.Request) -> web.StreamResponse:
        limit = min(_limit(request), CONSOLE_BLOCKS_KEPT)
        blocks = list(self.model.blocks)[-limit:] if limit > 0 else []
        return _json({"head": self.model.head, "filtered": not self.observer,
                                  "blocks": blocks[::-1]})  # fmt: skip

    async def _block(self, request: web.Request) -> web.StreamResponse:
        height = _height(request)
        kept = next((b for b in self.model.blocks if b["height"] == height), None)
        if kept is None:
            kept = block_json(await self.client.block(height))
        return _json(kept)

    async def _trade(self, request: web.Request) -> web.StreamResponse:
        tx_id = _tx_id(request)
        status = await self.client.transaction(tx_id)
        if status.receipt is None:
            return _json({"tx_id": tx_id.hex(), "state": "PENDING"})
        view = trade_view(status.receipt, self.model.trades.get(tx_id.hex()))
        return _json({**view, "state": status.state})  # INCLUDED until the result proof

    async def _verify(self, request: web.Request) -> web.StreamResponse:
        """The receipt from the cluster, checked here against genesis alone."""
        tx_id = _tx_id(request)
        try:
            receipt = await self.client.receipt(tx_id, timeout_s=RECEIPT_PROOF_WAIT_S)
        except LedgerError:  # no next block yet: this copy's inclusion only, not final
            receipt = await self.client.receipt(tx_id, wait=False, prove_result=False)
        return _json(receipt_check(receipt, self.genesis))

    async def _positions(self, request: web.Request) -> web.StreamResponse:
        """The Positions page's balances, read once per certified head: a read costs the
        validators one GetBalances per participant, so requests that come while one is
        under way wait for it and take its answer, which stands until the console follows
        a new block (before the first, a request with no read under way reads). A block
        followed during the read does not send the waiters to read again, one after the
        other: under load one comes every few milliseconds (review 30)."""
        done = self._positions_done
        async with self._positions_lock:
            head, read = self.model.head, self._positions_read
            if read is None or not (self._positions_done > done or read[0] == head != 0):
                read = self._positions_read = (head, await self._read_positions())
                self._positions_done += 1
            return _json(read[1])

    async def _read_positions(self) -> dict[str, Any]:
        """Every participant's balances the identity may read; supply per instrument is
        the sum over them, complete only when every holder's balances were readable.
        Participants and instruments as the ledger's reference data has them: governance
        adds both (ADR 0016)."""
        ref = await self.client.reference()
        ids = [p.id for p in ref.participants][:CONSOLE_PARTICIPANTS_MAX]
        got = await asyncio.gather(*(self.client.balances(p) for p in ids), return_exceptions=True)
        rows, hidden, supply = [], [], dict.fromkeys((i.id for i in ref.instruments), 0)
        height = 0
        for pid, b in zip(ids, got, strict=True):
            if isinstance(b, PermissionDeniedError):
                hidden.append(pid)
            elif isinstance(b, BaseException):
                raise b
            elif any(b.amounts.values()):
                height = max(height, b.height)
                rows.append({"account": pid, "amounts": b.amounts})
                for k, v in b.amounts.items():
                    supply[k] = supply.get(k, 0) + v
        return {
            "height": height,
            "instruments": [{"id": i.id, "kind": i.kind.name, "issuer": i.issuer}
                            for i in ref.instruments],
            "positions": rows,
            "supply": supply,
            "supply_complete": not hidden,
            "hidden": hidden,
        }  # fmt: skip

    async def _attestations(self, request: web.Request) -> web.StreamResponse:
        """Custody and reserves of every backed instrument the identity may read (the
        node leaves the others out: they are listed as hidden, not an error), judged at
        the block time of the height read, like the charts: never the console's clock."""
        height, backed = await self.client.attestations()
        return _json(backing_view(self.genesis, height, backed, await self._time_at(height)))

    async def _time_at(self, height: int) -> int:
        if height < 1:
            return self.genesis.genesis_time_ms
        kept = next((b for b in reversed(self.model.blocks) if b["height"] == height), None)
        return int(kept["time_ms"]) if kept else (await self.client.block(height)).time_ms

    async def _fails(self, request: web.Request) -> web.StreamResponse:
        doc = self.model.fails()
        try:
            height, book = await self.client.pending()
            doc["pending"] = [
                {"tx_id": p.tx_id.hex(), "since": p.height, "seller": p.seller,
                 "buyer": p.buyer, "bond": p.bond, "quantity_left": p.quantity_left,
                 "cash": p.cash, "amount_left": p.amount_left, "deadline_ms": p.deadline_ms}
                for p in book
            ]  # fmt: skip
            doc["pending_height"] = height
        except PermissionDeniedError as e:
            doc["pending"], doc["pending_error"] = [], str(e)
        return _json(doc)

    async def _events(self, request: web.Request) -> web.StreamResponse:
        """Server-sent events: ``network`` every poll, ``block`` per committed block."""
        q = self.hub.subscribe()
        if q is None:
            return _error(503, f"{self.hub.subscribers_max} live streams are open already; "
                          "close a console tab")  # fmt: skip
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream",
                                           "Cache-Control": "no-store"})  # fmt: skip
        try:
            await resp.prepare(request)
            await asyncio.wait_for(resp.write(b"retry: 1000\n\n"), self.sse_write_timeout_s)
            while (frame := await q.get()) is not None:
                await asyncio.wait_for(resp.write(frame.encode()), self.sse_write_timeout_s)
        except ConnectionResetError:
            pass  # the browser went away
        except TimeoutError:
            # It reads nothing: cut it (a close would wait for the unsent data for ever).
            if request.transport is not None:
                request.transport.abort()
        finally:
            self.hub.unsubscribe(q)
        return resp
