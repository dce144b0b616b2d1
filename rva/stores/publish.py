"""Publishing events onto JetStream the way the analytics service does (tests, benches, replays)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

import nats.js.errors
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.api import StreamConfig

from rva.core.events import Event
from rva.stores.records import DLQ_PREFIX, EVENT_SUBJECTS, PROTO_CONTENT_TYPE, encode

DEFAULT_STREAM = "RVA_EVENTS"


async def ensure_stream(js: JetStreamContext, name: str = DEFAULT_STREAM, *, max_age_s: float = 7 * 86400) -> None:
    """Create the events stream if it is missing (event subjects plus ``rva.dlq.*``); leave an existing one.

    Args:
        js: JetStream context.
        name: Stream name.
        max_age_s: How long the stream keeps messages (the replay horizon).

    """
    try:
        await js.stream_info(name)
    except nats.js.errors.NotFoundError:
        subjects = [*EVENT_SUBJECTS, f"{DLQ_PREFIX}.*"]
        await js.add_stream(StreamConfig(name=name, subjects=subjects, max_age=max_age_s, duplicate_window=120.0))


async def publish_events(
    js: JetStreamContext,
    store: str,
    events: Iterable[Event],
    *,
    content_type: str = PROTO_CONTENT_TYPE,
    timeout_s: float = 5.0,
) -> int:
    """Publish events one by one, each acknowledged by JetStream (``Nats-Msg-Id`` = event id).

    Returns:
        How many JetStream stored (re-publishes inside the duplicate window are not stored).

    """
    stored = 0
    for event in events:
        subject, payload, headers = encode(store, event, content_type)
        ack = await js.publish(subject, payload, headers=headers, timeout=timeout_s)
        stored += 0 if ack.duplicate else 1
    return stored


async def publish_fast(
    nc: Client, store: str, events: Iterable[Event], *, content_type: str = PROTO_CONTENT_TYPE
) -> int:
    """Publish on core NATS without waiting for JetStream's acks (benchmarks: the stream still stores them).

    The caller confirms storage from the stream's message count. Returns how many were sent.
    """
    sent = 0
    for event in events:
        subject, payload, headers = encode(store, event, content_type)
        await nc.publish(subject, payload, headers=headers)
        sent += 1
        if sent % 5000 == 0:
            await nc.flush(timeout=30)
            await asyncio.sleep(0)
    await nc.flush(timeout=30)
    return sent
