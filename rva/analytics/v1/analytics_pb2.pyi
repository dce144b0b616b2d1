from rva.events.v1 import events_pb2 as _events_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class StreamEventsRequest(_message.Message):
    __slots__ = ("camera_ids",)
    CAMERA_IDS_FIELD_NUMBER: _ClassVar[int]
    camera_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, camera_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class StreamEventsResponse(_message.Message):
    __slots__ = ("event",)
    EVENT_FIELD_NUMBER: _ClassVar[int]
    event: _events_pb2.Event
    def __init__(self, event: _Optional[_Union[_events_pb2.Event, _Mapping]] = ...) -> None: ...

class GetSummaryRequest(_message.Message):
    __slots__ = ("camera_ids",)
    CAMERA_IDS_FIELD_NUMBER: _ClassVar[int]
    camera_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, camera_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class GetSummaryResponse(_message.Message):
    __slots__ = ("cameras",)
    CAMERAS_FIELD_NUMBER: _ClassVar[int]
    cameras: _containers.RepeatedCompositeFieldContainer[CameraSummary]
    def __init__(self, cameras: _Optional[_Iterable[_Union[CameraSummary, _Mapping]]] = ...) -> None: ...

class CameraSummary(_message.Message):
    __slots__ = ("camera_id", "frames", "events_published", "tracks_closed_by_restart", "summary_json", "last_index", "index_gaps")
    CAMERA_ID_FIELD_NUMBER: _ClassVar[int]
    FRAMES_FIELD_NUMBER: _ClassVar[int]
    EVENTS_PUBLISHED_FIELD_NUMBER: _ClassVar[int]
    TRACKS_CLOSED_BY_RESTART_FIELD_NUMBER: _ClassVar[int]
    SUMMARY_JSON_FIELD_NUMBER: _ClassVar[int]
    LAST_INDEX_FIELD_NUMBER: _ClassVar[int]
    INDEX_GAPS_FIELD_NUMBER: _ClassVar[int]
    camera_id: str
    frames: int
    events_published: int
    tracks_closed_by_restart: int
    summary_json: str
    last_index: int
    index_gaps: int
    def __init__(self, camera_id: _Optional[str] = ..., frames: _Optional[int] = ..., events_published: _Optional[int] = ..., tracks_closed_by_restart: _Optional[int] = ..., summary_json: _Optional[str] = ..., last_index: _Optional[int] = ..., index_gaps: _Optional[int] = ...) -> None: ...
