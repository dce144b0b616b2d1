"""A service whose NATS is not there gives up within its deadline, naming the URL (not hanging forever)."""

import asyncio
import time

import pytest

from rva.service_config import NatsConfig
from rva.stores.servers import free_port
from services.common.work import connect


def test_connect_gives_up_within_the_deadline() -> None:
    url = f"nats://127.0.0.1:{free_port()}"
    t0 = time.monotonic()
    with pytest.raises(ConnectionError, match=f"cannot connect to NATS at {url} within 2"):
        asyncio.run(connect(NatsConfig(url=url, connect_timeout_s=1.0), "test", deadline_s=2.0))
    assert time.monotonic() - t0 < 6.0
