"""What one peer message costs in CPU: a ``Peer.Connect`` stream over mutual TLS on
loopback, as validators run it (the same proto, credentials and channel options).

A sender process paces ``--messages`` frames of ``--batch`` messages of ``--bytes`` each at
``--rate`` frames per second to a receiver process, and each reports its own CPU time
(user + system, every thread: gRPC's included) per message. The sender's figure has the
CPU of its pacing loop alone (the same loop, nothing sent) subtracted. Paced frames, not a
flood, because a validator's messages come one at a time (a vote, a certificate): each
wakes gRPC's threads and the event loop, and that hand-over is most of the cost. Batching
(``--batch``) shows what messages that share a frame save.

    .venv/bin/python -m devtools.bench.transport [--messages 3000] [--rate 1000] [--batch 1]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import grpc

from node.ceremony import TLS_CERT_FILE, TLS_KEY_FILE, keygen_validator
from node.runtime._grpc import Ctx
from node.runtime._transport import (
    PEER_SERVER_OPTIONS,
    peer_channel_credentials,
    peer_channel_options,
    peer_server_credentials,
)
from node.wire import peer_pb2 as peer_pb
from node.wire import peer_pb2_grpc as peer_grpc

__all__ = ["main"]

_NAME = "node-00"
_START_TIMEOUT_S = 30.0


def _cpu_s() -> float:
    return time.process_time()  # every thread of the process, in nanoseconds (os.times: 10 ms)


class _Receiver(peer_grpc.PeerServicer):
    """Counts messages; prints its CPU per message once ``expected`` have arrived."""

    def __init__(self, expected: int, done: asyncio.Event) -> None:
        self._expected, self._done = expected, done

    async def Connect(
        self, request_iterator: AsyncIterator[peer_pb.PeerFrame], context: Ctx
    ) -> None:
        await context.write(peer_pb.PeerHello(chain_id="bench", validator=0, committed_height=0))
        got, first = 0, 0.0
        async for frame in request_iterator:
            if got == 0:
                first = _cpu_s()  # from the first frame on: the handshake is not per message
            got += len(frame.messages)
            await asyncio.sleep(0)  # as PeerService yields after each message
            if got >= self._expected:
                per = (_cpu_s() - first) / max(1, got - len(frame.messages)) * 1e6
                print(f"receiver: {per:.1f} us CPU per message", flush=True)
                self._done.set()
                return


async def _serve(directory: Path, port: int, expected: int) -> None:
    cert = (directory / TLS_CERT_FILE).read_bytes()
    key = (directory / TLS_KEY_FILE).read_bytes()
    done = asyncio.Event()
    server = grpc.aio.server(options=PEER_SERVER_OPTIONS)
    peer_grpc.add_PeerServicer_to_server(_Receiver(expected, done), server)
    server.add_secure_port(f"127.0.0.1:{port}", peer_server_credentials(key, cert, cert))
    await server.start()
    print("ready", flush=True)
    await done.wait()
    await server.stop(grace=1.0)


async def _pace(frames: int, rate: float, send: Callable[[], None] | None = None) -> float:
    """Run the pacing loop ``frames`` times (calling ``send`` if given): its CPU seconds."""
    gap = 1.0 / rate
    loop = asyncio.get_running_loop()
    start_cpu, t = _cpu_s(), loop.time()
    for _ in range(frames):
        if send is not None:
            send()
        t += gap
        await asyncio.sleep(max(0.0, t - loop.time()))
    return _cpu_s() - start_cpu


async def _send(directory: Path, port: int, args: argparse.Namespace) -> None:
    cert = (directory / TLS_CERT_FILE).read_bytes()
    key = (directory / TLS_KEY_FILE).read_bytes()
    frames = args.messages // args.batch
    idle = await _pace(frames, args.rate)
    queue: asyncio.Queue[peer_pb.PeerFrame | None] = asyncio.Queue()
    frame = peer_pb.PeerFrame(messages=[os.urandom(args.bytes)] * args.batch)

    async def requests() -> AsyncIterator[peer_pb.PeerFrame]:
        while (f := await queue.get()) is not None:
            yield f

    creds = peer_channel_credentials(cert, key, cert)
    async with grpc.aio.secure_channel(
        f"127.0.0.1:{port}", creds, peer_channel_options(_NAME)
    ) as channel:
        call = peer_grpc.PeerStub(channel).Connect(requests())
        await call.read()  # the hello: connected
        busy = await _pace(frames, args.rate, lambda: queue.put_nowait(frame))
        queue.put_nowait(None)
        await call.read()  # the receiver ends the call once it has every message
    sent = frames * args.batch
    print(
        f"sender: {(busy - idle) / sent * 1e6:.1f} us CPU per message "
        f"({busy / sent * 1e6:.1f} with its pacing loop's {idle / sent * 1e6:.1f})",
        flush=True,
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m devtools.bench.transport",
        description="CPU per peer message: a paced Peer.Connect stream over mTLS on loopback.",
    )
    p.add_argument("--messages", type=int, default=3000, help="messages to send (default 3000)")
    p.add_argument("--rate", type=float, default=1000.0, help="frames per second (default 1000)")
    p.add_argument("--batch", type=int, default=1, help="messages per frame (default 1)")
    p.add_argument("--bytes", type=int, default=300, help="bytes per message (default 300)")
    p.add_argument("--serve", nargs=2, metavar=("DIR", "PORT"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.messages < 2 or args.batch < 1 or args.rate <= 0 or args.bytes < 1:
        p.error("--messages must be at least 2; --batch, --rate and --bytes positive")
    if args.serve is not None:
        asyncio.run(_serve(Path(args.serve[0]), int(args.serve[1]), args.messages))
        return 0
    with tempfile.TemporaryDirectory(prefix="bench-transport-") as tmp:
        port = _free_port()
        # port + 1: the client port, which must differ and is not used here
        keygen_validator(Path(tmp) / "tls", _NAME, "127.0.0.1", port, port + 1)
        cmd = [sys.executable, "-m", "devtools.bench.transport", "--serve", f"{tmp}/tls", str(port)]
        cmd += ["--messages", str(args.messages // args.batch * args.batch)]
        receiver = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
        try:
            assert receiver.stdout is not None
            if receiver.stdout.readline().strip() != "ready":
                print("the receiver did not start", file=sys.stderr)
                return 1
            print(
                f"{args.messages} messages of {args.bytes} bytes, {args.batch} per frame, "
                f"{args.rate:g} frames/s",
                flush=True,
            )
            asyncio.run(_send(Path(tmp) / "tls", port, args))
            out, _ = receiver.communicate(timeout=_START_TIMEOUT_S)
            print(out, end="")
        finally:
            if receiver.poll() is None:
                receiver.kill()
                receiver.wait()
        return receiver.returncode


if __name__ == "__main__":
    sys.exit(main())
