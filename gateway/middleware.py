"""One ASGI middleware for what every HTTP response needs: body limits, security headers, request ids.

Body limits are enforced twice: a declared ``Content-Length`` over the limit is refused before the
body is read, and a chunked body is counted as it streams in and cut off the moment it passes the
limit. Either way the answer is 413 and no route runs.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable
from typing import Any

Scope = dict[str, Any]
Receive = Callable[[], Any]
Send = Callable[[dict[str, Any]], Any]

_SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
]
_CSP = (b"content-security-policy", b"default-src 'self'; img-src 'self' blob: data:; style-src 'self'; "
        b"script-src 'self'; connect-src 'self' ws: wss:; frame-ancestors 'none'; base-uri 'none'")


class GatewayMiddleware:
    """Limits request bodies and decorates responses.

    Args:
        app: The wrapped ASGI app.
        limit_for: ``(method, path) -> max body bytes``.

    """

    def __init__(self, app: Any, limit_for: Callable[[str, str], int]) -> None:
        self.app = app
        self.limit_for = limit_for

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Handle one ASGI connection."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope["method"], scope["path"])
        headers = dict(scope.get("headers") or [])
        request_id = headers.get(b"x-request-id", b"")[:64].decode("latin-1") or secrets.token_hex(8)
        declared = headers.get(b"content-length")
        if declared is not None:
            try:
                too_big = int(declared) > limit
            except ValueError:
                too_big = False  # the server refuses a malformed Content-Length itself
            if too_big:
                await _reply_413(send, limit, request_id)
                return
        # Read the whole body first (it is bounded by the limit): a body over the limit is refused here,
        # before any route runs, whatever the route would have done with a read error.
        chunks: list[bytes] = []
        received = 0
        more = True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                break  # the client went away; let the app see it
            chunk = message.get("body", b"")
            received += len(chunk)
            if received > limit:
                await _reply_413(send, limit, request_id)
                return
            chunks.append(chunk)
            more = message.get("more_body", False)
        body = b"".join(chunks)
        replayed = False

        async def replay_receive() -> dict[str, Any]:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            result: dict[str, Any] = await receive()
            return result

        async def decorated_send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                extra = [(b"x-request-id", request_id.encode("latin-1")), *_SECURITY_HEADERS]
                path = scope["path"]
                if path.startswith("/dashboard"):
                    extra.append(_CSP)
                if path.startswith("/v1") or path.startswith("/graphql"):
                    extra.append((b"cache-control", b"no-store"))
                state = scope.get("state") or {}
                extra += [(k.lower().encode(), v.encode()) for k, v in state.get("rate_limit_headers", {}).items()]
                present = {bytes(k).lower() for k, _ in message.get("headers", [])}
                extra = [(k, v) for k, v in extra if k not in present]
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        await self.app(scope, replay_receive, decorated_send)


async def _reply_413(send: Send, limit: int, request_id: str) -> None:
    body = json.dumps({"error": "payload_too_large", "detail": f"request body over {limit} bytes"}).encode()
    await send({"type": "http.response.start", "status": 413, "headers": [
        (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"), (b"x-request-id", request_id.encode("latin-1")), *_SECURITY_HEADERS]})
    await send({"type": "http.response.body", "body": body})
