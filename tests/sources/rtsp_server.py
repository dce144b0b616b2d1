"""A minimal RTSP server for tests: streams a video file as live H.264 over RTSP (RTP interleaved on TCP).

Run as a process: ``python rtsp_server.py --port 8554 --video vtest.avi``; it prints ``READY <port>``
once listening. Each client that sends PLAY gets its own libx264 encoder (PyAV) starting on an IDR
frame, paced at the file's frame rate and looped forever, packetized by FFmpeg's own RTP muxer and
sent as RFC 2326 interleaved frames (``$``, channel, length). It speaks just enough RTSP
(OPTIONS, DESCRIBE, SETUP, PLAY, GET_PARAMETER, TEARDOWN) for FFmpeg's RTSP client, which is what the
sources under test use. Debian's ffmpeg cannot serve RTSP itself, so no system package is needed.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import itertools
import socket
import threading
import time
from fractions import Fraction
from pathlib import Path

import av

SDP = (
    "v=0\r\n"
    "o=- 0 0 IN IP4 127.0.0.1\r\n"
    "s=RVA test stream\r\n"
    "c=IN IP4 0.0.0.0\r\n"
    "t=0 0\r\n"
    "a=control:*\r\n"
    "m=video 0 RTP/AVP 96\r\n"
    "a=rtpmap:96 H264/90000\r\n"
    "a=fmtp:96 packetization-mode=1\r\n"
    "a=control:trackID=0\r\n"
)


class _Interleaved(io.RawIOBase):
    """File-like sink for FFmpeg's RTP muxer: each write is one RTP/RTCP packet, sent interleaved."""

    def __init__(self, session: _Session) -> None:
        self._session = session

    def writable(self) -> bool:
        return True

    def write(self, data: bytes | bytearray | memoryview) -> int:  # type: ignore[override]
        pkt = bytes(data)
        # RTCP packet types are 200..204; they travel on the odd channel.
        channel = 1 if 200 <= pkt[1] <= 204 else 0
        self._session.send(b"$" + bytes([channel]) + len(pkt).to_bytes(2, "big") + pkt)
        return len(pkt)


class _Session:
    def __init__(self, conn: socket.socket, video: Path, fps: float) -> None:
        self.conn = conn
        self.video = video
        self.fps = fps
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.session_id = f"{id(self) & 0xFFFFFFF:08X}"

    def send(self, data: bytes) -> None:
        with self.lock:
            self.conn.sendall(data)

    def serve(self) -> None:
        reader = self.conn.makefile("rb")
        try:
            while not self.stop.is_set():
                first = reader.read(1)
                if not first:
                    return
                if first == b"$":  # interleaved RTCP receiver report from the client: discard
                    header = reader.read(3)
                    reader.read(int.from_bytes(header[1:3], "big"))
                    continue
                lines = [first + reader.readline()]
                while lines[-1] not in (b"\r\n", b"\n", b""):
                    lines.append(reader.readline())
                headers = {}
                for raw in lines[1:-1]:
                    key, _, value = raw.decode().partition(":")
                    headers[key.strip().lower()] = value.strip()
                if n := int(headers.get("content-length", "0")):
                    reader.read(n)
                self.respond(lines[0].decode().split(), headers)
        except OSError:
            return
        finally:
            self.stop.set()
            self.conn.close()

    def respond(self, request: list[str], headers: dict[str, str]) -> None:
        method, url = request[0], request[1]
        extra: list[str] = []
        body = ""
        status = "200 OK"
        if method == "OPTIONS":
            extra.append("Public: OPTIONS, DESCRIBE, SETUP, PLAY, GET_PARAMETER, TEARDOWN")
        elif method == "DESCRIBE":
            extra += ["Content-Type: application/sdp", f"Content-Base: {url.rstrip('/')}/"]
            body = SDP
        elif method == "SETUP":
            if "TCP" in headers.get("transport", ""):
                extra.append("Transport: RTP/AVP/TCP;unicast;interleaved=0-1")
                extra.append(f"Session: {self.session_id};timeout=60")
            else:
                status = "461 Unsupported Transport"
        elif method == "PLAY":
            extra += [f"Session: {self.session_id}", "Range: npt=0.000-"]
        elif method == "TEARDOWN":
            self.stop.set()
        elif method not in ("GET_PARAMETER", "SET_PARAMETER"):
            status = "405 Method Not Allowed"
        head = [f"RTSP/1.0 {status}", f"CSeq: {headers.get('cseq', '0')}", *extra]
        if body:
            head.append(f"Content-Length: {len(body)}")
        self.send(("\r\n".join(head) + "\r\n\r\n" + body).encode())
        if method == "PLAY" and status.startswith("200"):
            threading.Thread(target=self.stream, daemon=True).start()

    def stream(self) -> None:
        out = av.open(_Interleaved(self), "w", format="rtp", options={"packetsize": "1400"}, buffer_size=1500)
        enc = out.add_stream(
            "libx264", rate=Fraction(self.fps).limit_denominator(1000),
            options={"preset": "ultrafast", "tune": "zerolatency", "g": str(round(self.fps)), "bf": "0"},
        )
        enc.pix_fmt = "yuv420p"
        with av.open(str(self.video)) as probe:
            enc.width = probe.streams.video[0].codec_context.width
            enc.height = probe.streams.video[0].codec_context.height
        t0 = time.monotonic()
        tb = Fraction(1, 1000)
        sent = itertools.count()
        try:
            while True:  # loop the file forever, like a camera that never stops
                with av.open(str(self.video)) as src:
                    for frame in src.decode(video=0):
                        k = next(sent)
                        if self.stop.wait(max(t0 + k / self.fps - time.monotonic(), 0.0)):
                            return
                        out_frame = frame.reformat(format="yuv420p")
                        out_frame.pts, out_frame.time_base = round(k * 1000 / self.fps), tb
                        for packet in enc.encode(out_frame):
                            out.mux(packet)
        except OSError:
            self.stop.set()
        finally:
            with contextlib.suppress(OSError, ValueError):  # the client may be gone already
                out.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--video", type=Path, required=True)
    parser.add_argument("--fps", type=float, default=10.0)
    args = parser.parse_args()
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    # A restarted server must rebind at once, while the killed one's connections sit in TIME_WAIT.
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", args.port))
    listener.listen(8)
    print(f"READY {args.port}", flush=True)
    while True:
        conn, _ = listener.accept()
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        threading.Thread(target=_Session(conn, args.video, args.fps).serve, daemon=True).start()


if __name__ == "__main__":
    main()
