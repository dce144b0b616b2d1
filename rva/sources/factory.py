"""Build the right source for a camera's config."""

from __future__ import annotations

from rva.config import CameraConfig, FileSource, StreamSource, UsbSource
from rva.sources.base import StatusCallback, VideoSource
from rva.sources.pyav_source import PyAVSource, file_spec, stream_spec, usb_spec


def open_source(camera: CameraConfig, on_status: StatusCallback | None = None) -> VideoSource:
    """Open the source a camera's config describes and start decoding it.

    Files open here, so a bad path fails at start; live cameras connect in the background and
    report their state as records instead of raising.

    Args:
        camera: The camera's config; ``camera.analysis_fps`` sets frame sampling.
        on_status: Receives status records met while iterating frames.

    Returns:
        A started source; close it (or use ``with``) when done.

    Raises:
        SourceError: A file is missing, unreadable or not a video.

    """
    cfg = camera.source
    if isinstance(cfg, FileSource):
        spec = file_spec(cfg)
    elif isinstance(cfg, StreamSource):
        spec = stream_spec(cfg)
    elif isinstance(cfg, UsbSource):
        spec = usb_spec(cfg)
    else:  # pragma: no cover - the config union is closed
        raise TypeError(f"unknown source type {type(cfg).__name__}")
    return PyAVSource(camera.id, spec, analysis_fps=camera.analysis_fps, on_status=on_status)
