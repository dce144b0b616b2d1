"""A TCP proxy that breaks connections on purpose: the flaky store uplink, reproducible by seed.

Each accepted connection is piped to the upstream. Every reply chunk is cut with probability
``--cut-prob`` (at a random byte of it, zero included) and every request chunk with a third of that;
a cut aborts both sides (RST). A request cut means the server never saw it; a reply cut means the
server did the work and the client never heard: the hard case for exactly-once (the cloud has the
batch, the edge does not know). Keep-alive connections are cut too, not only new ones.
``--delay-ms`` adds latency per chunk.

Run: ``python bench/chaos_proxy.py --listen 127.0.0.1:9000 --upstream 127.0.0.1:8000 --cut-prob 0.3``;
it prints ``listening <port>`` once ready and a count of cuts on SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import signal
import socket
import sys


class ChaosProxy:
    """The proxy (one asyncio server)."""

    def __init__(self, upstream: tuple[str, int], cut_prob: float, delay_s: float, seed: int) -> None:
        self.upstream = upstream
        self.cut_prob = cut_prob
        self.delay_s = delay_s
        self.rng = random.Random(seed)
        self.connections = 0
        self.cuts = 0
        self.reply_cuts = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Pipe one connection, maybe cutting it at each chunk."""
        self.connections += 1
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        except OSError:
            _abort(writer)
            return

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter, reply: bool) -> None:
            while True:
                data = await src.read(65536)
                if not data:
                    break
                if self.delay_s:
                    await asyncio.sleep(self.delay_s)
                # Requests are cut before they reach the server; replies anywhere in the chunk, 0 bytes
                # included: the server has done the work and the client never hears of it.
                if self.rng.random() < (self.cut_prob if reply else self.cut_prob / 3):
                    keep = self.rng.randrange(len(data) + 1) if reply else 0
                    dst.write(data[:keep])
                    with contextlib.suppress(OSError):
                        await dst.drain()
                    self.cuts += 1
                    self.reply_cuts += reply
                    raise ConnectionAbortedError("cut")
                dst.write(data)
                await dst.drain()
            with contextlib.suppress(OSError):
                dst.write_eof()

        tasks = [asyncio.create_task(pipe(reader, up_writer, False)),
                 asyncio.create_task(pipe(up_reader, writer, True))]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
            if any(not t.cancelled() and t.exception() for t in done):
                _abort(writer)
                _abort(up_writer)
            else:
                await asyncio.gather(*tasks, return_exceptions=True)
        except asyncio.CancelledError:  # the server is stopping
            pass
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            for w in (writer, up_writer):
                with contextlib.suppress(Exception):
                    w.close()


def _abort(writer: asyncio.StreamWriter) -> None:
    """Close with RST (SO_LINGER 0), as a dropped NAT mapping or a crashed middlebox would."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    transport = writer.transport
    with contextlib.suppress(Exception):
        transport.abort()


async def serve(args: argparse.Namespace) -> None:
    """Listen until SIGTERM/SIGINT; print the counts then."""
    host, port = args.listen.rsplit(":", 1)
    up_host, up_port = args.upstream.rsplit(":", 1)
    proxy = ChaosProxy((up_host, int(up_port)), args.cut_prob, args.delay_ms / 1000, args.seed)
    server = await asyncio.start_server(proxy.handle, host, int(port))
    print(f"listening {server.sockets[0].getsockname()[1]}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with server:
        await stop.wait()
    print(f"connections {proxy.connections}, cuts {proxy.cuts} ({proxy.reply_cuts} in replies)", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--listen", default="127.0.0.1:0", help="host:port to listen on (port 0: any free one)")
    parser.add_argument("--upstream", required=True, help="host:port to forward to")
    parser.add_argument("--cut-prob", type=float, default=0.3, help="chance a reply chunk is cut (requests: a third)")
    parser.add_argument("--delay-ms", type=float, default=0.0, help="latency added per chunk")
    parser.add_argument("--seed", type=int, default=0)
    asyncio.run(serve(parser.parse_args(argv)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
