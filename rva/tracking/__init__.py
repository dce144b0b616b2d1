"""Multi-object tracking: ByteTrack over NumPy, one tracker per camera."""

from rva.tracking.bytetrack import ByteTracker, TrackEnd, TrackerOutput
from rva.tracking.kalman import BoxKalmanFilter
from rva.tracking.matching import assign, iou_matrix

__all__ = ["BoxKalmanFilter", "ByteTracker", "TrackEnd", "TrackerOutput", "assign", "iou_matrix"]
