from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class FrameMeta(_message.Message):
    __slots__ = ("camera", "index", "pts", "width", "height")
    CAMERA_FIELD_NUMBER: _ClassVar[int]
    INDEX_FIELD_NUMBER: _ClassVar[int]
    PTS_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    camera: str
    index: int
    pts: float
    width: int
    height: int
    def __init__(self, camera: _Optional[str] = ..., index: _Optional[int] = ..., pts: _Optional[float] = ..., width: _Optional[int] = ..., height: _Optional[int] = ...) -> None: ...

class DetectionAttribute(_message.Message):
    __slots__ = ("name", "values")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VALUES_FIELD_NUMBER: _ClassVar[int]
    name: str
    values: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, name: _Optional[str] = ..., values: _Optional[_Iterable[float]] = ...) -> None: ...

class Detections(_message.Message):
    __slots__ = ("xyxy", "confidence", "class_id", "tracker_id", "keypoints_per_detection", "keypoints", "attributes")
    XYXY_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    CLASS_ID_FIELD_NUMBER: _ClassVar[int]
    TRACKER_ID_FIELD_NUMBER: _ClassVar[int]
    KEYPOINTS_PER_DETECTION_FIELD_NUMBER: _ClassVar[int]
    KEYPOINTS_FIELD_NUMBER: _ClassVar[int]
    ATTRIBUTES_FIELD_NUMBER: _ClassVar[int]
    xyxy: _containers.RepeatedScalarFieldContainer[float]
    confidence: _containers.RepeatedScalarFieldContainer[float]
    class_id: _containers.RepeatedScalarFieldContainer[int]
    tracker_id: _containers.RepeatedScalarFieldContainer[int]
    keypoints_per_detection: int
    keypoints: _containers.RepeatedScalarFieldContainer[float]
    attributes: _containers.RepeatedCompositeFieldContainer[DetectionAttribute]
    def __init__(self, xyxy: _Optional[_Iterable[float]] = ..., confidence: _Optional[_Iterable[float]] = ..., class_id: _Optional[_Iterable[int]] = ..., tracker_id: _Optional[_Iterable[int]] = ..., keypoints_per_detection: _Optional[int] = ..., keypoints: _Optional[_Iterable[float]] = ..., attributes: _Optional[_Iterable[_Union[DetectionAttribute, _Mapping]]] = ...) -> None: ...

class FrameDetections(_message.Message):
    __slots__ = ("frame", "detections")
    FRAME_FIELD_NUMBER: _ClassVar[int]
    DETECTIONS_FIELD_NUMBER: _ClassVar[int]
    frame: FrameMeta
    detections: Detections
    def __init__(self, frame: _Optional[_Union[FrameMeta, _Mapping]] = ..., detections: _Optional[_Union[Detections, _Mapping]] = ...) -> None: ...

class TrackEnd(_message.Message):
    __slots__ = ("track_id", "first_ts", "last_ts", "hits")
    TRACK_ID_FIELD_NUMBER: _ClassVar[int]
    FIRST_TS_FIELD_NUMBER: _ClassVar[int]
    LAST_TS_FIELD_NUMBER: _ClassVar[int]
    HITS_FIELD_NUMBER: _ClassVar[int]
    track_id: int
    first_ts: float
    last_ts: float
    hits: int
    def __init__(self, track_id: _Optional[int] = ..., first_ts: _Optional[float] = ..., last_ts: _Optional[float] = ..., hits: _Optional[int] = ...) -> None: ...

class FrameTracks(_message.Message):
    __slots__ = ("frame", "tracked", "started", "ended")
    FRAME_FIELD_NUMBER: _ClassVar[int]
    TRACKED_FIELD_NUMBER: _ClassVar[int]
    STARTED_FIELD_NUMBER: _ClassVar[int]
    ENDED_FIELD_NUMBER: _ClassVar[int]
    frame: FrameMeta
    tracked: Detections
    started: _containers.RepeatedScalarFieldContainer[int]
    ended: _containers.RepeatedCompositeFieldContainer[TrackEnd]
    def __init__(self, frame: _Optional[_Union[FrameMeta, _Mapping]] = ..., tracked: _Optional[_Union[Detections, _Mapping]] = ..., started: _Optional[_Iterable[int]] = ..., ended: _Optional[_Iterable[_Union[TrackEnd, _Mapping]]] = ...) -> None: ...
