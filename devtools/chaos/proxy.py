"""The fault-injecting TCP proxy on the peer links of a chaos run: its own process.

``python -m devtools.chaos.proxy --n N --host H --proxy-base P --peer-base B`` listens on one
port per *directed* link: node ``src`` dials node ``dst`` at ``P + src * N + dst`` (the
chaos run writes those addresses into every node config) and the proxy forwards to
``dst``'s real peer port ``B + dst``. TLS passes through untouched: the proxy sees bytes,
never keys, so it cannot forge anything and the nodes' mutual authentication is unchanged.

Commands, one per line on stdin, each answered ``ok`` (or ``error: ...``) on stdout:

    cut SRC DST        stop moving bytes on link SRC->DST, both ways (a partition)
    heal SRC DST       resume it; bytes held during the cut are delivered, as TCP would
    delay SRC DST MS   deliver every chunk MS milliseconds late (0: no delay)
    heal-all           heal every link and clear every delay

A cut holds bytes rather than dropping them (dropping would corrupt the TLS stream, which
TCP never does): the sender sees back-pressure, and gRPC keepalive (10 s + 5 s on the peer
links) closes a connection cut for longer, as it would on a real network. Connections
made during a cut are accepted and held unforwarded until the heal. The proxy exits when
stdin closes, so it never outlives the chaos run that started it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import sys
import time
from dataclasses import dataclass, field

__all__ = ["Link", "Proxy", "main", "proxy_port"]

CHUNK_BYTES_MAX = 64 * 1024
CHUNKS_QUEUED_MAX = 64  # per direction of a connection; then the reader waits (back-pressure)
DELAY_MS_MAX = 60_000


def proxy_port(proxy_base: int, n: int, src: int, dst: int) -> int:
    """The port node ``src`` dials to reach node ``dst`` through the proxy."""
    return proxy_base + src * n + dst


@dataclass
class Link:
    """One directed link src->dst: open or cut, and its delay."""

    src: int
    dst: int
    open: asyncio.Event = field(default_factory=asyncio.Event)
    delay_s: float = 0.0

    def __post_init__(self) -> None:
        self.open.set()


class Proxy:
    def __init__(self, n: int, host: str, proxy_base: int, peer_base: int) -> None:
        self.n, self.host, self.proxy_base, self.peer_base = n, host, proxy_base, peer_base
        self.links = {(s, d): Link(s, d) for s in range(n) for d in range(n) if s != d}
        self._servers: list[asyncio.Server] = []
        # asyncio keeps only weak references to the tasks start_server makes: hold them,
        # or a connection waiting on a cut link may be collected mid-wait.
        self._live: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        for (s, d), link in self.links.items():
            server = await asyncio.start_server(
                functools.partial(self._connection, link),
                self.host,
                proxy_port(self.proxy_base, self.n, s, d),
            )
            self._servers.append(server)

    async def close(self) -> None:
        for server in self._servers:
            server.close()

    async def _connection(
        self, link: Link, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._live.add(task)
        task.add_done_callback(self._live.discard)
        try:
            await link.open.wait()  # a connection made during a cut waits for the heal
            up_reader, up_writer = await asyncio.open_connection(
                self.host, self.peer_base + link.dst
            )
        except OSError:
            writer.close()
            return
        pumps = [
            asyncio.create_task(_pump(link, reader, up_writer)),
            asyncio.create_task(_pump(link, up_reader, writer)),
        ]
        try:  # gRPC never half-closes: one direction ending means the connection is over
            await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for p in pumps:
                p.cancel()
            for w in (writer, up_writer):
                w.close()
            await asyncio.gather(*pumps, return_exceptions=True)

    def command(self, line: str) -> str:
        words = line.split()
        if words == ["heal-all"]:
            for link in self.links.values():
                link.open.set()
                link.delay_s = 0.0
            return "ok"
        try:
            verb, src, dst, *rest = words
            link = self.links[(int(src), int(dst))]
        except (ValueError, KeyError):
            return f"error: cannot parse {line!r}"
        if verb == "cut" and not rest:
            link.open.clear()
        elif verb == "heal" and not rest:
            link.open.set()
        elif verb == "delay" and len(rest) == 1 and 0 <= int(rest[0]) <= DELAY_MS_MAX:
            link.delay_s = int(rest[0]) / 1000
        else:
            return f"error: cannot parse {line!r}"
        return "ok"


async def _pump(link: Link, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Copy one direction, each chunk held while the link is cut and for its delay."""
    queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue(CHUNKS_QUEUED_MAX)

    async def read() -> None:
        while data := await reader.read(CHUNK_BYTES_MAX):
            await queue.put((time.monotonic() + link.delay_s, data))
        await queue.put((0.0, b""))

    async def write() -> None:
        while True:
            due, data = await queue.get()
            if not data:
                break
            await link.open.wait()
            wait = due - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            writer.write(data)
            await writer.drain()
        with contextlib.suppress(OSError):
            writer.write_eof()

    reading = asyncio.create_task(read())
    try:
        await write()
    except OSError:
        pass
    finally:
        reading.cancel()
        with contextlib.suppress(asyncio.CancelledError, OSError):
            await reading


async def _serve(args: argparse.Namespace) -> None:
    proxy = Proxy(args.n, args.host, args.proxy_base, args.peer_base)
    await proxy.start()
    loop = asyncio.get_running_loop()
    stdin = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(stdin), sys.stdin)
    print("ready", flush=True)
    while line := (await stdin.readline()).decode():
        if line.strip():
            print(proxy.command(line), flush=True)
    await proxy.close()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m devtools.chaos.proxy", description=__doc__.split("\n\n")[0]
    )
    p.add_argument("--n", type=int, required=True, help="validators")
    p.add_argument("--host", default="127.0.0.1", help="where the nodes and the proxy listen")
    p.add_argument("--proxy-base", type=int, required=True, help="port of link 0->0")
    p.add_argument("--peer-base", type=int, required=True, help="peer port of node 0")
    asyncio.run(_serve(p.parse_args(argv)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
