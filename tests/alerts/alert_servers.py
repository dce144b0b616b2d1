"""The real receivers the alert tests deliver to: an HTTP server that records requests, an SMTP mailbox.

Kept out of conftest.py so test modules can import the types by a name no other test folder uses.
"""

from __future__ import annotations

import email
import email.policy
import threading
import time
from dataclasses import dataclass, field
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Request:
    """One request the receiver got."""

    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """An HTTP server in a thread: records requests, answers the statuses it was told (then ``then``)."""

    server: ThreadingHTTPServer
    requests: list[Request] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)
    then: int = 200
    retry_after: str | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def answer(self, *statuses: int, then: int | None = None, retry_after: str | None = None) -> None:
        """Answer ``statuses`` in turn, then ``then`` for ever (a single status: that one for ever)."""
        if then is None and len(statuses) == 1:
            statuses, then = (), statuses[0]
        with self.lock:
            self.statuses, self.then, self.retry_after = list(statuses), 200 if then is None else then, retry_after

    def next_status(self) -> int:
        with self.lock:
            return self.statuses.pop(0) if self.statuses else self.then


def handler_for(receiver: Receiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            with receiver.lock:
                receiver.requests.append(Request(self.path, dict(self.headers.items()), body))
            status = receiver.next_status()
            reply = b"ok" if status < 300 else b"receiver says no"
            self.send_response(status)
            if receiver.retry_after is not None and status >= 300:
                self.send_header("Retry-After", receiver.retry_after)
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

        def log_message(self, format: str, *args: Any) -> None:  # keep the test output clean
            pass

    return Handler


class Mailbox:
    """aiosmtpd handler: keeps accepted messages; refuses the next ``refusals`` with a reply."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.envelopes: list[tuple[str, list[str]]] = []
        self.refusals: list[str] = []
        self.attempts = 0
        self.accepted_at: list[float] = []  # time.monotonic() of each accepted message

    def refuse(self, *replies: str) -> None:
        """Answer DATA with these replies (e.g. ``"451 4.3.0 try later"``) before accepting again."""
        self.refusals = list(replies)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.attempts += 1
        if self.refusals:
            return self.refusals.pop(0)
        msg = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(msg, EmailMessage)
        self.messages.append(msg)
        self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        self.accepted_at.append(time.monotonic())
        return "250 Message accepted for delivery"


@dataclass
class SmtpServer:
    host: str
    port: int
    mailbox: Mailbox
