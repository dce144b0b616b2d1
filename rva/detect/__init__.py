"""Person detection: a backend-agnostic :class:`Detector` and its pure YOLO pre/post-processing."""

from rva.detect.base import Detector, create_detector

__all__ = ["Detector", "create_detector"]
