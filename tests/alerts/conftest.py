"""Real receivers for the alert sinks, on free ports: an HTTP server and an SMTP server (aiosmtpd).

The HTTP receiver records every request (path, headers, raw body) and answers what a test tells it
(``answer(500)``, ``answer(503, 503, then=200)``); the SMTP server keeps every message it accepted and
can refuse the next ones with a reply code (see alert_servers.py). NATS (for the service test) is a real
nats-server.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from alert_servers import Mailbox, Receiver, SmtpServer, handler_for

from rva.stores.servers import LocalServer, start_nats


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    recv = Receiver(server)
    server.RequestHandlerClass = handler_for(recv)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield recv
    server.shutdown()
    server.server_close()
    thread.join(5)


@pytest.fixture
def smtp_server(free_port: Any) -> Iterator[SmtpServer]:
    mailbox = Mailbox()
    controller = Controller(mailbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    yield SmtpServer("127.0.0.1", controller.port, mailbox)
    controller.stop()


@pytest.fixture(scope="session")
def nats_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalServer]:
    server = start_nats(Path(tmp_path_factory.mktemp("nats")))
    yield server
    server.stop()
