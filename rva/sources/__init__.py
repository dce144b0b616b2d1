"""Video sources: files, network and USB cameras decoded in background threads, as timed frames."""

from rva.sources.base import SourceState, SourceStatus, StatusCallback, VideoSource
from rva.sources.factory import open_source
from rva.sources.multi import MultiSource
from rva.sources.pyav_source import PyAVSource, PyAVSpec, file_spec, stream_spec, usb_spec
from rva.sources.sampling import FrameSampler
from rva.sources.threaded import FrameChannel, ThreadedSource
from rva.sources.timing import Backoff, PtsClock

__all__ = [
    "Backoff",
    "FrameChannel",
    "FrameSampler",
    "MultiSource",
    "PtsClock",
    "PyAVSource",
    "PyAVSpec",
    "SourceState",
    "SourceStatus",
    "StatusCallback",
    "ThreadedSource",
    "VideoSource",
    "file_spec",
    "open_source",
    "stream_spec",
    "usb_spec",
]
