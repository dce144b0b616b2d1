from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class EventType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    EVENT_TYPE_UNSPECIFIED: _ClassVar[EventType]
    EVENT_TYPE_TRACK_START: _ClassVar[EventType]
    EVENT_TYPE_TRACK_END: _ClassVar[EventType]
    EVENT_TYPE_ZONE_ENTER: _ClassVar[EventType]
    EVENT_TYPE_ZONE_EXIT: _ClassVar[EventType]
    EVENT_TYPE_LINE_CROSS: _ClassVar[EventType]
    EVENT_TYPE_QUEUE_JOIN: _ClassVar[EventType]
    EVENT_TYPE_QUEUE_SERVED: _ClassVar[EventType]
    EVENT_TYPE_QUEUE_ABANDON: _ClassVar[EventType]
    EVENT_TYPE_SOURCE_STATE: _ClassVar[EventType]
    EVENT_TYPE_HEATMAP_SNAPSHOT: _ClassVar[EventType]
    EVENT_TYPE_ALERT: _ClassVar[EventType]
    EVENT_TYPE_ALERT_UNDELIVERED: _ClassVar[EventType]

class Direction(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DIRECTION_UNSPECIFIED: _ClassVar[Direction]
    DIRECTION_IN: _ClassVar[Direction]
    DIRECTION_OUT: _ClassVar[Direction]
EVENT_TYPE_UNSPECIFIED: EventType
EVENT_TYPE_TRACK_START: EventType
EVENT_TYPE_TRACK_END: EventType
EVENT_TYPE_ZONE_ENTER: EventType
EVENT_TYPE_ZONE_EXIT: EventType
EVENT_TYPE_LINE_CROSS: EventType
EVENT_TYPE_QUEUE_JOIN: EventType
EVENT_TYPE_QUEUE_SERVED: EventType
EVENT_TYPE_QUEUE_ABANDON: EventType
EVENT_TYPE_SOURCE_STATE: EventType
EVENT_TYPE_HEATMAP_SNAPSHOT: EventType
EVENT_TYPE_ALERT: EventType
EVENT_TYPE_ALERT_UNDELIVERED: EventType
DIRECTION_UNSPECIFIED: Direction
DIRECTION_IN: Direction
DIRECTION_OUT: Direction

class Event(_message.Message):
    __slots__ = ("type", "camera", "ts", "track_id", "zone", "line", "queue", "direction", "dwell_s", "enter_ts", "wait_s", "attrs_json", "event_id", "schema_version", "store")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    CAMERA_FIELD_NUMBER: _ClassVar[int]
    TS_FIELD_NUMBER: _ClassVar[int]
    TRACK_ID_FIELD_NUMBER: _ClassVar[int]
    ZONE_FIELD_NUMBER: _ClassVar[int]
    LINE_FIELD_NUMBER: _ClassVar[int]
    QUEUE_FIELD_NUMBER: _ClassVar[int]
    DIRECTION_FIELD_NUMBER: _ClassVar[int]
    DWELL_S_FIELD_NUMBER: _ClassVar[int]
    ENTER_TS_FIELD_NUMBER: _ClassVar[int]
    WAIT_S_FIELD_NUMBER: _ClassVar[int]
    ATTRS_JSON_FIELD_NUMBER: _ClassVar[int]
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    SCHEMA_VERSION_FIELD_NUMBER: _ClassVar[int]
    STORE_FIELD_NUMBER: _ClassVar[int]
    type: EventType
    camera: str
    ts: float
    track_id: int
    zone: str
    line: str
    queue: str
    direction: Direction
    dwell_s: float
    enter_ts: float
    wait_s: float
    attrs_json: str
    event_id: str
    schema_version: int
    store: str
    def __init__(self, type: _Optional[_Union[EventType, str]] = ..., camera: _Optional[str] = ..., ts: _Optional[float] = ..., track_id: _Optional[int] = ..., zone: _Optional[str] = ..., line: _Optional[str] = ..., queue: _Optional[str] = ..., direction: _Optional[_Union[Direction, str]] = ..., dwell_s: _Optional[float] = ..., enter_ts: _Optional[float] = ..., wait_s: _Optional[float] = ..., attrs_json: _Optional[str] = ..., event_id: _Optional[str] = ..., schema_version: _Optional[int] = ..., store: _Optional[str] = ...) -> None: ...
