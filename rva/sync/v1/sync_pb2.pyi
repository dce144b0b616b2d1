from rva.events.v1 import events_pb2 as _events_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class UplinkState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    UPLINK_STATE_UNSPECIFIED: _ClassVar[UplinkState]
    UPLINK_STATE_ONLINE: _ClassVar[UplinkState]
    UPLINK_STATE_BACKOFF: _ClassVar[UplinkState]
    UPLINK_STATE_OUTBOX_FULL: _ClassVar[UplinkState]
UPLINK_STATE_UNSPECIFIED: UplinkState
UPLINK_STATE_ONLINE: UplinkState
UPLINK_STATE_BACKOFF: UplinkState
UPLINK_STATE_OUTBOX_FULL: UplinkState

class EventBatch(_message.Message):
    __slots__ = ("batch_id", "store", "first_sequence", "last_sequence", "events")
    BATCH_ID_FIELD_NUMBER: _ClassVar[int]
    STORE_FIELD_NUMBER: _ClassVar[int]
    FIRST_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    LAST_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    batch_id: str
    store: str
    first_sequence: int
    last_sequence: int
    events: _containers.RepeatedCompositeFieldContainer[_events_pb2.Event]
    def __init__(self, batch_id: _Optional[str] = ..., store: _Optional[str] = ..., first_sequence: _Optional[int] = ..., last_sequence: _Optional[int] = ..., events: _Optional[_Iterable[_Union[_events_pb2.Event, _Mapping]]] = ...) -> None: ...

class GetSyncStatusRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetSyncStatusResponse(_message.Message):
    __slots__ = ("uplink", "outbox_events", "outbox_bytes", "last_upload_unix_s", "events_dropped")
    UPLINK_FIELD_NUMBER: _ClassVar[int]
    OUTBOX_EVENTS_FIELD_NUMBER: _ClassVar[int]
    OUTBOX_BYTES_FIELD_NUMBER: _ClassVar[int]
    LAST_UPLOAD_UNIX_S_FIELD_NUMBER: _ClassVar[int]
    EVENTS_DROPPED_FIELD_NUMBER: _ClassVar[int]
    uplink: UplinkState
    outbox_events: int
    outbox_bytes: int
    last_upload_unix_s: float
    events_dropped: int
    def __init__(self, uplink: _Optional[_Union[UplinkState, str]] = ..., outbox_events: _Optional[int] = ..., outbox_bytes: _Optional[int] = ..., last_upload_unix_s: _Optional[float] = ..., events_dropped: _Optional[int] = ...) -> None: ...

class FlushRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class FlushResponse(_message.Message):
    __slots__ = ("events_uploaded", "outbox_events")
    EVENTS_UPLOADED_FIELD_NUMBER: _ClassVar[int]
    OUTBOX_EVENTS_FIELD_NUMBER: _ClassVar[int]
    events_uploaded: int
    outbox_events: int
    def __init__(self, events_uploaded: _Optional[int] = ..., outbox_events: _Optional[int] = ...) -> None: ...

class GetVersionsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetVersionsResponse(_message.Message):
    __slots__ = ("config_version", "model_version")
    CONFIG_VERSION_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    config_version: str
    model_version: str
    def __init__(self, config_version: _Optional[str] = ..., model_version: _Optional[str] = ...) -> None: ...

class WatchUpdatesRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class WatchUpdatesResponse(_message.Message):
    __slots__ = ("kind", "version", "previous_version", "rolled_back", "error")
    KIND_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_VERSION_FIELD_NUMBER: _ClassVar[int]
    ROLLED_BACK_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    kind: str
    version: str
    previous_version: str
    rolled_back: bool
    error: str
    def __init__(self, kind: _Optional[str] = ..., version: _Optional[str] = ..., previous_version: _Optional[str] = ..., rolled_back: _Optional[bool] = ..., error: _Optional[str] = ...) -> None: ...
