"""Wire forms: protobuf and JSON round trips, and every kind of bad input mapped to its dead-letter reason."""

from __future__ import annotations

import json

import pytest
import stores_scenario as sc

from rva.core.events import Direction, Event, EventType
from rva.events.v1 import events_pb2 as pb
from rva.stores.errors import BadEvent, DeadLetterReason
from rva.stores.records import JSON_CONTENT_TYPE, PROTO_CONTENT_TYPE, StoredEvent, decode, encode

KINDS = sorted({e.type: e for e in sc.ACME_S1}.values(), key=lambda e: e.type)


@pytest.mark.parametrize("content_type", [PROTO_CONTENT_TYPE, JSON_CONTENT_TYPE])
@pytest.mark.parametrize("event", KINDS, ids=lambda e: str(e.type))
def test_round_trip(event: Event, content_type: str) -> None:
    subject, payload, headers = encode("s1", event, content_type)
    assert subject == f"rva.s1.{event.camera}.{event.type}"
    assert headers["Nats-Msg-Id"] == event.event_id("s1")
    record = decode("acme", subject, payload, headers)
    assert record == StoredEvent.of("acme", "s1", event)
    assert record.event_id.hex == event.event_id("s1")


def test_proto_without_content_type_header_is_the_default() -> None:
    subject, payload, _ = encode("s1", KINDS[0])
    assert decode("t", subject, payload, None).event == KINDS[0]


def _proto(**changes: object) -> bytes:
    msg = Event(EventType.LINE_CROSS, "cam1", sc.t0, 1, line="door", direction=Direction.IN).to_proto("s1")
    for key, value in changes.items():
        setattr(msg, key, value)
    return msg.SerializeToString()


def _json(**changes: object) -> bytes:
    _, payload, _ = encode("s1", Event(EventType.ZONE_ENTER, "cam1", sc.t0, 1, zone="A"), JSON_CONTENT_TYPE)
    body = json.loads(payload)
    body.update(changes)
    return json.dumps({k: v for k, v in body.items() if v is not None}).encode()


J = {"Content-Type": JSON_CONTENT_TYPE}
LINE, ZONE = "rva.s1.cam1.line_cross", "rva.s1.cam1.zone_enter"


@pytest.mark.parametrize(
    ("subject", "payload", "headers", "reason", "match"),
    [
        (LINE, _proto(schema_version=2), None, DeadLetterReason.SCHEMA_VERSION, "expected 1, got 2"),
        (ZONE, _json(schema_version=99), J, DeadLetterReason.SCHEMA_VERSION, "got 99"),
        (LINE, b"\xff\xff\xff garbage", None, DeadLetterReason.MALFORMED, "protobuf"),
        (LINE, b"", None, DeadLetterReason.MALFORMED, "UNSPECIFIED"),
        (ZONE, b"{not json", J, DeadLetterReason.MALFORMED, "json"),
        (ZONE, b"[1, 2]", J, DeadLetterReason.MALFORMED, "expected an object"),
        (ZONE, _json(type="teleport"), J, DeadLetterReason.MALFORMED, "teleport"),
        (ZONE, _json(zone=None, event_id=None), J, DeadLetterReason.MALFORMED, "needs zone"),
        (ZONE, _json(ts=-5.0, event_id=None), J, DeadLetterReason.MALFORMED, "ts"),
        (ZONE, _json(ts=1e300, event_id=None), J, DeadLetterReason.MALFORMED, "ts"),
        (ZONE, _json(zone="a\x00b", event_id=None), J, DeadLetterReason.MALFORMED, "NUL"),
        (ZONE, _json(bogus=1), J, DeadLetterReason.MALFORMED, "bogus"),
        (LINE, _proto(direction=0), None, DeadLetterReason.MALFORMED, "direction"),
        ("rva.s2.cam1.line_cross", _proto(), None, DeadLetterReason.MISMATCH, "store"),
        ("rva.s1.cam9.line_cross", _proto(), None, DeadLetterReason.MISMATCH, "camera"),
        ("rva.s1.cam1.zone_exit", _proto(), None, DeadLetterReason.MISMATCH, "type"),
        (LINE, _proto(event_id="0" * 32), None, DeadLetterReason.MISMATCH, "event_id"),
        ("rva.s1.line_cross", _proto(), None, DeadLetterReason.MISMATCH, "subject"),
    ],
)
def test_bad_input_gets_a_reason(subject: str, payload: bytes, headers: dict[str, str] | None,
                                 reason: DeadLetterReason, match: str) -> None:
    with pytest.raises(BadEvent, match=match) as info:
        decode("acme", subject, payload, headers)
    assert info.value.reason is reason


def test_heatmap_snapshot_attrs_are_checked() -> None:
    good = next(e for e in sc.ACME_S1 if e.type is EventType.HEATMAP_SNAPSHOT)
    bad = Event(EventType.HEATMAP_SNAPSHOT, "cam1", good.ts, attrs={**good.attrs, "cells": [99]})
    subject, payload, headers = encode("s1", bad)
    with pytest.raises(BadEvent, match="cells"):
        decode("acme", subject, payload, headers)


def test_proto_enum_knows_the_heatmap_snapshot() -> None:
    assert pb.EventType.Name(pb.EVENT_TYPE_HEATMAP_SNAPSHOT) == "EVENT_TYPE_HEATMAP_SNAPSHOT"
