from rva.decode.v1 import decode_pb2 as _decode_pb2
from rva.vision.v1 import vision_pb2 as _vision_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class DetectRequest(_message.Message):
    __slots__ = ("frame",)
    FRAME_FIELD_NUMBER: _ClassVar[int]
    frame: _decode_pb2.VideoFrame
    def __init__(self, frame: _Optional[_Union[_decode_pb2.VideoFrame, _Mapping]] = ...) -> None: ...

class DetectResponse(_message.Message):
    __slots__ = ("result",)
    RESULT_FIELD_NUMBER: _ClassVar[int]
    result: _vision_pb2.FrameDetections
    def __init__(self, result: _Optional[_Union[_vision_pb2.FrameDetections, _Mapping]] = ...) -> None: ...

class GetModelInfoRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetModelInfoResponse(_message.Message):
    __slots__ = ("backend", "names", "labels", "input_height", "input_width")
    class NamesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: int
        value: str
        def __init__(self, key: _Optional[int] = ..., value: _Optional[str] = ...) -> None: ...
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: int
        value: str
        def __init__(self, key: _Optional[int] = ..., value: _Optional[str] = ...) -> None: ...
    BACKEND_FIELD_NUMBER: _ClassVar[int]
    NAMES_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    INPUT_HEIGHT_FIELD_NUMBER: _ClassVar[int]
    INPUT_WIDTH_FIELD_NUMBER: _ClassVar[int]
    backend: str
    names: _containers.ScalarMap[int, str]
    labels: _containers.ScalarMap[int, str]
    input_height: int
    input_width: int
    def __init__(self, backend: _Optional[str] = ..., names: _Optional[_Mapping[int, str]] = ..., labels: _Optional[_Mapping[int, str]] = ..., input_height: _Optional[int] = ..., input_width: _Optional[int] = ...) -> None: ...

class DetectionsRecord(_message.Message):
    __slots__ = ("detections", "source_state", "stream_id", "decoded_unix_s")
    DETECTIONS_FIELD_NUMBER: _ClassVar[int]
    SOURCE_STATE_FIELD_NUMBER: _ClassVar[int]
    STREAM_ID_FIELD_NUMBER: _ClassVar[int]
    DECODED_UNIX_S_FIELD_NUMBER: _ClassVar[int]
    detections: _vision_pb2.FrameDetections
    source_state: _decode_pb2.SourceState
    stream_id: str
    decoded_unix_s: float
    def __init__(self, detections: _Optional[_Union[_vision_pb2.FrameDetections, _Mapping]] = ..., source_state: _Optional[_Union[_decode_pb2.SourceState, _Mapping]] = ..., stream_id: _Optional[str] = ..., decoded_unix_s: _Optional[float] = ...) -> None: ...
