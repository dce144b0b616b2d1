from rva.events.v1 import events_pb2 as _events_pb2
from rva.vision.v1 import vision_pb2 as _vision_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ImageEncoding(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    IMAGE_ENCODING_UNSPECIFIED: _ClassVar[ImageEncoding]
    IMAGE_ENCODING_BGR24: _ClassVar[ImageEncoding]
    IMAGE_ENCODING_JPEG: _ClassVar[ImageEncoding]
IMAGE_ENCODING_UNSPECIFIED: ImageEncoding
IMAGE_ENCODING_BGR24: ImageEncoding
IMAGE_ENCODING_JPEG: ImageEncoding

class VideoFrame(_message.Message):
    __slots__ = ("meta", "image", "encoding", "stream_id", "trace_context", "decoded_unix_s")
    class TraceContextEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    META_FIELD_NUMBER: _ClassVar[int]
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    ENCODING_FIELD_NUMBER: _ClassVar[int]
    STREAM_ID_FIELD_NUMBER: _ClassVar[int]
    TRACE_CONTEXT_FIELD_NUMBER: _ClassVar[int]
    DECODED_UNIX_S_FIELD_NUMBER: _ClassVar[int]
    meta: _vision_pb2.FrameMeta
    image: bytes
    encoding: ImageEncoding
    stream_id: str
    trace_context: _containers.ScalarMap[str, str]
    decoded_unix_s: float
    def __init__(self, meta: _Optional[_Union[_vision_pb2.FrameMeta, _Mapping]] = ..., image: _Optional[bytes] = ..., encoding: _Optional[_Union[ImageEncoding, str]] = ..., stream_id: _Optional[str] = ..., trace_context: _Optional[_Mapping[str, str]] = ..., decoded_unix_s: _Optional[float] = ...) -> None: ...

class StreamFramesRequest(_message.Message):
    __slots__ = ("camera_ids",)
    CAMERA_IDS_FIELD_NUMBER: _ClassVar[int]
    camera_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, camera_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class StreamFramesResponse(_message.Message):
    __slots__ = ("frame", "source_state")
    FRAME_FIELD_NUMBER: _ClassVar[int]
    SOURCE_STATE_FIELD_NUMBER: _ClassVar[int]
    frame: VideoFrame
    source_state: SourceState
    def __init__(self, frame: _Optional[_Union[VideoFrame, _Mapping]] = ..., source_state: _Optional[_Union[SourceState, _Mapping]] = ...) -> None: ...

class SourceState(_message.Message):
    __slots__ = ("event", "stream_id", "end_of_stream", "trace_context")
    class TraceContextEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    EVENT_FIELD_NUMBER: _ClassVar[int]
    STREAM_ID_FIELD_NUMBER: _ClassVar[int]
    END_OF_STREAM_FIELD_NUMBER: _ClassVar[int]
    TRACE_CONTEXT_FIELD_NUMBER: _ClassVar[int]
    event: _events_pb2.Event
    stream_id: str
    end_of_stream: bool
    trace_context: _containers.ScalarMap[str, str]
    def __init__(self, event: _Optional[_Union[_events_pb2.Event, _Mapping]] = ..., stream_id: _Optional[str] = ..., end_of_stream: _Optional[bool] = ..., trace_context: _Optional[_Mapping[str, str]] = ...) -> None: ...

class ListCamerasRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListCamerasResponse(_message.Message):
    __slots__ = ("cameras",)
    CAMERAS_FIELD_NUMBER: _ClassVar[int]
    cameras: _containers.RepeatedCompositeFieldContainer[CameraStatus]
    def __init__(self, cameras: _Optional[_Iterable[_Union[CameraStatus, _Mapping]]] = ...) -> None: ...

class CameraStatus(_message.Message):
    __slots__ = ("camera_id", "state", "frames_decoded", "frames_dropped", "buffered", "consumer_attached")
    CAMERA_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    FRAMES_DECODED_FIELD_NUMBER: _ClassVar[int]
    FRAMES_DROPPED_FIELD_NUMBER: _ClassVar[int]
    BUFFERED_FIELD_NUMBER: _ClassVar[int]
    CONSUMER_ATTACHED_FIELD_NUMBER: _ClassVar[int]
    camera_id: str
    state: str
    frames_decoded: int
    frames_dropped: int
    buffered: int
    consumer_attached: bool
    def __init__(self, camera_id: _Optional[str] = ..., state: _Optional[str] = ..., frames_decoded: _Optional[int] = ..., frames_dropped: _Optional[int] = ..., buffered: _Optional[int] = ..., consumer_attached: _Optional[bool] = ...) -> None: ...
