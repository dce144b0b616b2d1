from rva.decode.v1 import decode_pb2 as _decode_pb2
from rva.vision.v1 import vision_pb2 as _vision_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class StreamTracksRequest(_message.Message):
    __slots__ = ("camera_ids",)
    CAMERA_IDS_FIELD_NUMBER: _ClassVar[int]
    camera_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, camera_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class StreamTracksResponse(_message.Message):
    __slots__ = ("tracks",)
    TRACKS_FIELD_NUMBER: _ClassVar[int]
    tracks: _vision_pb2.FrameTracks
    def __init__(self, tracks: _Optional[_Union[_vision_pb2.FrameTracks, _Mapping]] = ...) -> None: ...

class GetTrackingStatsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetTrackingStatsResponse(_message.Message):
    __slots__ = ("cameras",)
    CAMERAS_FIELD_NUMBER: _ClassVar[int]
    cameras: _containers.RepeatedCompositeFieldContainer[CameraTrackingStats]
    def __init__(self, cameras: _Optional[_Iterable[_Union[CameraTrackingStats, _Mapping]]] = ...) -> None: ...

class CameraTrackingStats(_message.Message):
    __slots__ = ("camera_id", "frames", "duplicates", "generation", "live_tracks", "last_index")
    CAMERA_ID_FIELD_NUMBER: _ClassVar[int]
    FRAMES_FIELD_NUMBER: _ClassVar[int]
    DUPLICATES_FIELD_NUMBER: _ClassVar[int]
    GENERATION_FIELD_NUMBER: _ClassVar[int]
    LIVE_TRACKS_FIELD_NUMBER: _ClassVar[int]
    LAST_INDEX_FIELD_NUMBER: _ClassVar[int]
    camera_id: str
    frames: int
    duplicates: int
    generation: int
    live_tracks: int
    last_index: int
    def __init__(self, camera_id: _Optional[str] = ..., frames: _Optional[int] = ..., duplicates: _Optional[int] = ..., generation: _Optional[int] = ..., live_tracks: _Optional[int] = ..., last_index: _Optional[int] = ...) -> None: ...

class TracksRecord(_message.Message):
    __slots__ = ("tracks", "source_state", "stream_id", "generation", "final_ended", "decoded_unix_s")
    TRACKS_FIELD_NUMBER: _ClassVar[int]
    SOURCE_STATE_FIELD_NUMBER: _ClassVar[int]
    STREAM_ID_FIELD_NUMBER: _ClassVar[int]
    GENERATION_FIELD_NUMBER: _ClassVar[int]
    FINAL_ENDED_FIELD_NUMBER: _ClassVar[int]
    DECODED_UNIX_S_FIELD_NUMBER: _ClassVar[int]
    tracks: _vision_pb2.FrameTracks
    source_state: _decode_pb2.SourceState
    stream_id: str
    generation: int
    final_ended: _containers.RepeatedCompositeFieldContainer[_vision_pb2.TrackEnd]
    decoded_unix_s: float
    def __init__(self, tracks: _Optional[_Union[_vision_pb2.FrameTracks, _Mapping]] = ..., source_state: _Optional[_Union[_decode_pb2.SourceState, _Mapping]] = ..., stream_id: _Optional[str] = ..., generation: _Optional[int] = ..., final_ended: _Optional[_Iterable[_Union[_vision_pb2.TrackEnd, _Mapping]]] = ..., decoded_unix_s: _Optional[float] = ...) -> None: ...
