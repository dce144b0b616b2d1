"""The live WebSocket on a real uvicorn server: NATS events, Redis metrics, filters, isolation, backpressure."""

from __future__ import annotations

import asyncio
import base64
import gzip
import json
import os
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import nats
import pytest
import redis
import websockets
from gateway_env import CAMERA, JWT_SECRET, fresh_database, reset_stream, seed_tenants, serve, settings_for
from websockets.exceptions import ConnectionClosed

from gateway.app import create_app
from gateway.auth import JwtVerifier
from rva.core.events import Direction, Event, EventType
from rva.stores.publish import publish_fast
from rva.stores.servers import LocalServer


@dataclass
class Live:
    url: str
    settings: Any
    keys: dict[str, str]
    nats_url: str

    def token(self, tenant: str = "acme", role: str = "viewer", **kw: Any) -> str:
        return JwtVerifier(self.settings).mint("ws-tester", tenant, role, **kw)

    def ws(self, store: str, query: str = "") -> str:
        return self.url.replace("http", "ws", 1) + f"/v1/stores/{store}/live/ws" + (f"?{query}" if query else "")

    def ingest(self, store: str, events: list[Event], batch_id: str) -> dict[str, Any]:
        body = {"batch_id": batch_id, "store": store, "events": [e.to_dict() for e in events]}
        r = httpx.post(f"{self.url}/v1/ingest/events", content=gzip.compress(json.dumps(body).encode()), headers={
            "X-API-Key": self.keys[store], "Content-Type": "application/json", "Content-Encoding": "gzip"})
        assert r.status_code == 200, r.text
        return r.json()  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def live(pg_server: LocalServer, redis_server: LocalServer, nats_server: LocalServer) -> Iterator[Live]:
    with redis.Redis.from_url(redis_server.url) as r:
        r.flushall()
    reset_stream(nats_server.url)
    with fresh_database(pg_server) as dsn:
        seed_tenants(dsn)
        settings = settings_for(dsn, redis_server.url, nats_server.url, ws_queue_messages=16, ws_send_timeout_s=1.0,
                                alerts_source="gateway",  # these tests ingest raw events: the rules run here
                                jwt_secret=JWT_SECRET)
        with serve(create_app(settings)) as url:
            keys = {}
            for store, tenant in (("live_a", "acme"), ("live_b", "other")):
                h = {"Authorization": f"Bearer {JwtVerifier(settings).mint('setup', tenant, 'admin')}"}
                assert httpx.post(f"{url}/v1/stores", json={"id": store, "name": store}, headers=h).status_code == 201
                doc = {"cameras": [CAMERA], "alert_rules": [
                    {"name": "crowd", "kind": "occupancy", "camera": "cam1", "target": "entrance", "threshold": 2,
                     "cooldown_s": 3600, "severity": "critical"}]}
                assert httpx.put(f"{url}/v1/stores/{store}/config", json=doc, headers=h).status_code == 200
                keys[store] = httpx.post(f"{url}/v1/stores/{store}/api-keys", json={"name": "edge"},
                                         headers=h).json()["token"]
            yield Live(url, settings, keys, nats_server.url)


def visitors(n: int, start: float, first_track: int = 1) -> list[Event]:
    out = []
    for i in range(n):
        t = first_track + i
        out += [Event(EventType.ZONE_ENTER, "cam1", start + i, t, zone="entrance"),
                Event(EventType.LINE_CROSS, "cam1", start + i + 0.2, t, line="door", direction=Direction.IN)]
    return out


async def recv_until(ws: Any, want: Any, timeout: float = 10.0) -> list[dict[str, Any]]:
    """Messages until ``want(messages)`` is true."""
    got: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while not want(got):
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"timed out; got {[m['type'] for m in got]}")
        got.append(json.loads(await asyncio.wait_for(ws.recv(), left)))
    return got


def test_events_metrics_and_alerts_arrive_live(live: Live) -> None:
    async def run() -> list[dict[str, Any]]:
        headers = {"Authorization": f"Bearer {live.token()}"}
        async with websockets.connect(live.ws("live_a"), additional_headers=headers) as ws:
            hello = json.loads(await ws.recv())
            assert hello == {"type": "hello", "store": "live_a", "tenant": "acme",
                             "filters": {"types": None, "cameras": None}}
            await asyncio.to_thread(live.ingest, "live_a", visitors(3, time.time() - 5), "ws-1")

            def done(msgs: list[dict[str, Any]]) -> bool:
                events = [m for m in msgs if m["type"] == "event"]
                occ = [o["count"] for m in msgs if m["type"] == "metrics" for o in m["occupancy"]
                       if o["zone"] == "entrance"]
                return len(events) >= 6 and 3 in occ and any(m["type"] == "alert" for m in msgs)

            return await recv_until(ws, done)

    msgs = asyncio.run(run())
    events = [m["event"] for m in msgs if m["type"] == "event"]
    assert sorted(e["type"] for e in events) == ["line_cross"] * 3 + ["zone_enter"] * 3
    metrics = [m for m in msgs if m["type"] == "metrics"][-1]
    assert {"occupancy", "queues", "lines", "recent", "ts"} <= set(metrics)
    assert metrics["queues"] == [] or "wait_estimate_s" in metrics["queues"][0]
    alert = next(m["alert"] for m in msgs if m["type"] == "alert")
    assert alert["rule"] == "crowd" and alert["value"] == 3 and alert["severity"] == "critical"
    r = httpx.get(f"{live.url}/v1/stores/live_a/alerts", headers={"Authorization": f"Bearer {live.token()}"})
    assert [a["rule"] for a in r.json()] == ["crowd"]  # once: the cooldown holds it back


def test_filters_and_browser_style_auth(live: Live) -> None:
    async def run() -> list[dict[str, Any]]:
        protocols = ["rva.v1", f"bearer.{live.token()}"]
        async with websockets.connect(live.ws("live_a", "types=line_cross"), subprotocols=protocols) as ws:
            assert ws.subprotocol == "rva.v1"  # the token is never echoed back
            await recv_until(ws, lambda m: m and m[0]["type"] == "hello")
            await asyncio.to_thread(live.ingest, "live_a", visitors(2, time.time() - 3, 100), "ws-2")
            return await recv_until(ws, lambda m: sum(x["type"] == "event" for x in m) >= 2)

    events = [m["event"] for m in asyncio.run(run()) if m["type"] == "event"]
    assert [e["type"] for e in events] == ["line_cross", "line_cross"]


def test_tenants_only_hear_their_own_stores(live: Live) -> None:
    async def run() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        a = await websockets.connect(live.ws("live_a"), additional_headers={
            "Authorization": f"Bearer {live.token('acme')}"})
        b = await websockets.connect(live.ws("live_b"), additional_headers={
            "Authorization": f"Bearer {live.token('other')}"})
        await a.recv(), await b.recv()
        # a message on acme's subject that claims another tenant (as a foreign store of the same id would) is dropped
        nc = await nats.connect(live.nats_url)
        spoof = Event(EventType.ZONE_ENTER, "cam1", time.time(), 999, zone="entrance")
        from rva.stores.records import encode

        subject, payload, headers = encode("live_a", spoof)
        await nc.publish(subject, payload, headers={**headers, "Rva-Tenant": "other"})
        await publish_fast(nc, "live_a", visitors(2, time.time() - 2, 200))
        await nc.close()
        got_a = await recv_until(a, lambda m: sum(x["type"] == "event" for x in m) >= 4)
        got_b: list[dict[str, Any]] = []
        try:
            while True:
                got_b.append(json.loads(await asyncio.wait_for(b.recv(), 1.0)))
        except TimeoutError:
            pass
        await a.close()
        await b.close()
        return got_a, got_b

    got_a, got_b = asyncio.run(run())
    assert 999 not in [m["event"].get("track_id") for m in got_a if m["type"] == "event"]
    assert [m for m in got_b if m["type"] == "event"] == []


@pytest.mark.parametrize(("store", "headers", "code"), [
    ("live_a", {}, 4401),
    ("live_a", {"Authorization": "Bearer nonsense"}, 4401),
    ("live_b", "acme", 4404),
    ("live_a", "device", 4403),
])
def test_refused_connections_close_with_a_reason(live: Live, store: str, headers: Any, code: int) -> None:
    if headers == "acme":
        headers = {"Authorization": f"Bearer {live.token('acme')}"}
    elif headers == "device":
        headers = {"X-API-Key": live.keys["live_a"]}

    async def run() -> Any:
        async with websockets.connect(live.ws(store), additional_headers=headers) as ws:
            with pytest.raises(ConnectionClosed) as err:
                await asyncio.wait_for(ws.recv(), 5)
            return err.value

    closed = asyncio.run(run())
    assert closed.rcvd.code == code and closed.rcvd.reason


class RawClient:
    """A WebSocket client that does the handshake by hand and then reads nothing until told to."""

    def __init__(self, url: str, path: str, token: str) -> None:
        host, port = url.removeprefix("http://").split(":")
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # a phone on a bad link: tiny window
        self.sock.connect((host, int(port)))
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall((f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
                           f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
                           f"Authorization: Bearer {token}\r\n\r\n").encode())
        head = b""
        while b"\r\n\r\n" not in head:
            head += self.sock.recv(1)
        assert head.startswith(b"HTTP/1.1 101"), head

    def drain(self, timeout: float = 20.0) -> tuple[int, int | None, str]:
        """Read every frame until the connection ends: (text messages, close code, close reason)."""
        self.sock.settimeout(timeout)
        buf = bytearray()
        texts, code, reason = 0, None, ""
        while True:
            try:
                chunk = self.sock.recv(1 << 16)
            except (TimeoutError, ConnectionResetError):
                chunk = b""
            if not chunk:
                return texts, code, reason
            buf += chunk
            while len(buf) >= 2:
                opcode, length, offset = buf[0] & 0x0F, buf[1] & 0x7F, 2
                if length == 126:
                    length, offset = int.from_bytes(buf[2:4], "big"), 4
                elif length == 127:
                    length, offset = int.from_bytes(buf[2:10], "big"), 10
                if len(buf) < offset + length:
                    break
                payload = bytes(buf[offset : offset + length])
                del buf[: offset + length]
                if opcode == 1:
                    texts += 1
                elif opcode == 8:
                    code, reason = int.from_bytes(payload[:2], "big"), payload[2:].decode()
                    return texts, code, reason


def test_a_slow_client_is_dropped_and_nobody_else_waits(live: Live) -> None:
    n = 3000

    async def run() -> tuple[int, tuple[int, int | None, str], float, dict[str, Any]]:
        headers = {"Authorization": f"Bearer {live.token()}"}
        fast = await websockets.connect(live.ws("live_a", "types=track_start"), additional_headers=headers)
        slow = RawClient(live.url, "/v1/stores/live_a/live/ws?types=track_start", live.token())
        await fast.recv()

        async def read_fast() -> int:
            got = 0
            while got < n:
                msg = json.loads(await asyncio.wait_for(fast.recv(), 20))
                got += msg["type"] == "event"
            return got

        reader = asyncio.create_task(read_fast())
        nc = await nats.connect(live.nats_url)
        base = time.time() - 60
        pad = {"note": "x" * 4000}  # 12 MB in all: more than the kernel buffers between them hold
        started = time.monotonic()
        await publish_fast(nc, "live_a", [Event(EventType.TRACK_START, "cam1", base + i * 1e-3, 10_000 + i, attrs=pad)
                                          for i in range(n)])
        await nc.close()
        got = await reader
        fast_s = time.monotonic() - started
        await asyncio.sleep(5.0)  # the drop's close gets its time (longer on a loaded box)
        slow_seen = await asyncio.to_thread(slow.drain)
        status = httpx.get(f"{live.url}/v1/status", headers={
            "Authorization": f"Bearer {live.token('operator', 'admin')}"}).json()
        await fast.close()
        return got, slow_seen, fast_s, status

    got, (slow_texts, code, reason), fast_s, status = asyncio.run(run())
    assert got == n  # the fast client missed nothing
    assert status["live"]["dropped_slow"] == 1
    assert slow_texts < n  # the slow one was cut off part-way ...
    # ... and told why, once it reads again. On a loaded box the server's close handshake can time out
    # and abort the socket before the slow reader reaches the close frame (seen in CI-like runs); the
    # drop itself is asserted above through the server's counter.
    assert code in (4008, None)
    if code is not None:
        assert "slow consumer" in reason
    assert fast_s < 15
