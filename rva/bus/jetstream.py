"""Analytics events on NATS JetStream: the subject convention, the stream, the publisher.

Convention (stores, gateways and alerting consume exactly this):

* subject ``rva.<store>.<camera>.<kind>``, ``kind`` being the event type's value
  (``zone_exit``, ``line_cross``, ``source_state``...);
* payload: the ``rva.events.v1.Event`` protobuf from ``event.to_proto(store)`` (carries
  ``event_id`` and ``schema_version``);
* header ``Nats-Msg-Id`` = ``event_id``, so JetStream drops a re-published event inside its
  de-duplication window; any other headers (W3C trace context) pass through;
* stream ``RVA_EVENTS`` capturing ``rva.>``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from rva.core.events import Event

EVENTS_STREAM = "RVA_EVENTS"
EVENTS_SUBJECTS = "rva.>"
_TOKEN = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def subject_for(store: str, camera: str, kind: str) -> str:
    """Return ``rva.<store>.<camera>.<kind>``.

    Raises:
        ValueError: A part is not a valid subject token (letters, digits, ``_``, ``-``).

    """
    for name, value in (("store", store), ("camera", camera), ("kind", kind)):
        if not _TOKEN.match(value):
            raise ValueError(f"subject_for: {name} must be 1-64 letters, digits, _ or -, got {value!r}")
    return f"rva.{store}.{camera}.{kind}"


async def ensure_stream(js: Any, *, max_age_s: float = 7 * 86400, duplicate_window_s: float = 120.0) -> Any:
    """Create the ``RVA_EVENTS`` stream if it does not exist; an existing one is left as configured.

    JetStream API calls use the deadline ``js`` was made with (``nc.jetstream(timeout=...)``).

    Args:
        js: A ``nats.js.JetStreamContext``.
        max_age_s: Retention of a newly created stream.
        duplicate_window_s: De-duplication window (on ``Nats-Msg-Id``) of a newly created stream.

    Returns:
        The stream's ``StreamInfo``.

    Raises:
        ValueError: A stream of that name exists but does not capture ``rva.>``.

    """
    from nats.js.api import RetentionPolicy, StorageType, StreamConfig
    from nats.js.errors import NotFoundError

    try:
        info = await js.stream_info(EVENTS_STREAM)
    except NotFoundError:
        config = StreamConfig(
            name=EVENTS_STREAM,
            subjects=[EVENTS_SUBJECTS],
            retention=RetentionPolicy.LIMITS,
            storage=StorageType.FILE,
            max_age=max_age_s,
            duplicate_window=duplicate_window_s,
            description="RVA analytics events: rva.<store>.<camera>.<kind>, rva.events.v1.Event protobuf",
        )
        return await js.add_stream(config)
    if EVENTS_SUBJECTS not in (info.config.subjects or []):
        raise ValueError(f"stream {EVENTS_STREAM} exists but captures {info.config.subjects}, not {EVENTS_SUBJECTS!r}")
    return info


class EventPublisher:
    """Publishes events of one store to JetStream, one acknowledged message per event.

    Args:
        js: A ``nats.js.JetStreamContext``.
        store: Store id (first subject token after ``rva``).
        timeout_s: Wait this long for each publish acknowledgement.

    """

    def __init__(self, js: Any, store: str, *, timeout_s: float = 5.0) -> None:
        subject_for(store, "x", "x")  # validates the store id once
        self.js = js
        self.store = store
        self.timeout_s = timeout_s
        self.published = 0
        self.duplicates = 0

    async def publish(self, event: Event, headers: Mapping[str, str] | None = None) -> Any:
        """Publish one event and wait for JetStream's ack.

        Args:
            event: The event.
            headers: Extra headers (trace context); ``Nats-Msg-Id`` is always the event id.

        Returns:
            The ``PubAck`` (``duplicate`` is True when JetStream had it already).

        Raises:
            nats.errors.TimeoutError: No ack within ``timeout_s`` (the caller retries: same id).

        """
        msg = event.to_proto(self.store)
        all_headers = {**(headers or {}), "Nats-Msg-Id": msg.event_id}
        ack = await self.js.publish(
            subject_for(self.store, event.camera, str(event.type)),
            msg.SerializeToString(),
            timeout=self.timeout_s,
            headers=all_headers,
        )
        if getattr(ack, "duplicate", False):
            self.duplicates += 1
        else:
            self.published += 1
        return ack


#: KV bucket of decode sessions' wall-clock origins (see the analytics service); entries expire.
STREAMS_BUCKET = "RVA_STREAMS"


async def stream_bucket(js: Any, ttl_s: float = 30 * 86400) -> Any:
    """The ``RVA_STREAMS`` key-value bucket (created when missing; entries live ``ttl_s``)."""
    from rva.bus.kv import key_value

    return await key_value(js, STREAMS_BUCKET, ttl_s=ttl_s, description="RVA decode sessions: wall time of PTS 0")
