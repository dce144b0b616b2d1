"""Files, network streams and V4L2 cameras decoded by FFmpeg through PyAV, in a background thread.

FFmpeg options that bound network waits differ by protocol; measured with PyAV 18.1 (FFmpeg 8.1):

- RTSP: ``timeout`` (microseconds) bounds socket I/O, including a server that accepts and never
  answers. ``stimeout`` is gone since FFmpeg 5 and ``rw_timeout`` is ignored by the RTSP demuxer.
- HTTP: ``timeout`` and ``rw_timeout`` both work. RTMP: ``timeout`` means *listen* (it binds the
  port!), so it must never be passed; ``rw_timeout`` does not bound the handshake.
- PyAV's own ``timeout=(open_s, read_s)`` aborts any blocking FFmpeg call through the interrupt
  callback, whatever the protocol. It is the hard bound here; the FFmpeg options are a second one.
"""

from __future__ import annotations

import logging
import math
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from fractions import Fraction

import av
import av.container
import numpy as np
import numpy.typing as npt

from rva.assets import AssetError, sample_video
from rva.config import FileSource, StreamSource, UsbSource
from rva.errors import SourceError
from rva.sources.base import SourceState, StatusCallback
from rva.sources.sampling import FrameSampler
from rva.sources.threaded import ThreadedSource
from rva.sources.timing import Backoff, PtsClock

log = logging.getLogger(__name__)

# Consecutive packets the decoder rejects before a file counts as failed (a live stream reconnects).
MAX_CONSECUTIVE_DECODE_ERRORS = 25
# Live streams: how much of the stream FFmpeg reads to learn its codec before the first frame.
# The default (up to 5 s) delays every (re)connect by ~3 s on a 10 fps H.264 camera; 1 s suffices.
LIVE_ANALYZE_DURATION_US = 1_000_000
# rtsp://user:password@host/... : camera URLs carry secrets; never log them.
_CREDENTIALS = re.compile(r"//[^/\s]*@")


@dataclass(frozen=True, slots=True)
class PyAVSpec:
    """How to open and read one input with FFmpeg.

    Attributes:
        target: File path, URL or device node.
        kind: Word used in messages ("video file", "stream", "camera").
        format: FFmpeg input format (``v4l2``); None lets FFmpeg probe.
        options: FFmpeg demuxer/protocol options.
        live: Reconnect with backoff when the input is lost; never raise at open.
        loop: Start a file again at its end.
        realtime: Pace frames at their PTS, like a live camera.
        latest_only: Drop the oldest queued frame (counted) instead of blocking when the consumer lags.
        open_timeout_s: Bound on opening (live only).
        read_timeout_s: Bound on waiting for the next packet (live only).
        backoff_initial_s: First reconnect delay.
        backoff_max_s: Reconnect delay ceiling.
        queue_size: Decoded frames that may wait for the consumer.
        thread_type: FFmpeg decoder threading: "AUTO" (frame + slice) or "SLICE".

    """

    target: str
    kind: str = "video file"
    format: str | None = None
    options: Mapping[str, str] = field(default_factory=dict)
    live: bool = False
    loop: bool = False
    realtime: bool = False
    latest_only: bool = False
    open_timeout_s: float = 10.0
    read_timeout_s: float = 10.0
    backoff_initial_s: float = 0.5
    backoff_max_s: float = 10.0
    queue_size: int = 4
    thread_type: str = "AUTO"

    @property
    def display(self) -> str:
        """``target`` fit for logs and records: a URL's user and password are masked."""
        return _CREDENTIALS.sub("//***@", self.target)


def _reason(err: BaseException) -> str:
    """FFmpeg's reason without PyAV's ``[Errno n] ...: 'path'`` wrapping."""
    strerror = getattr(err, "strerror", None)
    return str(strerror) if strerror else f"{type(err).__name__}: {err}"


def _frame_interval(stream: av.video.stream.VideoStream) -> float | None:
    # guessed_rate first: raw H.264 reports average_rate 25 but carries its real rate in the SPS.
    for rate in (stream.guessed_rate, stream.average_rate, stream.base_rate):
        if rate:
            return float(1 / Fraction(rate))
    return None


class PyAVSource(ThreadedSource):
    """One FFmpeg input decoded in a background thread; frames are BGR, timed by PTS.

    Files open in the constructor, so a missing or unreadable file raises :class:`SourceError` there.
    Live inputs open in the thread: failures become RECONNECTING records with backoff, never an
    exception, and never block another source.
    """

    def __init__(
        self,
        camera: str,
        spec: PyAVSpec,
        *,
        analysis_fps: float | None = None,
        on_status: StatusCallback | None = None,
        backoff: Backoff | None = None,
    ) -> None:
        """Open (files) or start connecting (live) and start the decode thread.

        Args:
            camera: Camera id.
            spec: What to open and how.
            analysis_fps: Keep about this many frames per second, chosen by PTS (None: all).
            on_status: Receives status records met while iterating frames.
            backoff: Reconnect delays (default: from ``spec``, with jitter).

        Raises:
            SourceError: A file cannot be opened, is not a video, or has no video stream.

        """
        super().__init__(
            camera, queue_size=spec.queue_size, drop_oldest=spec.latest_only, on_status=on_status
        )
        self.spec = spec
        self.decode_errors = 0
        self._sampler = FrameSampler(analysis_fps) if analysis_fps else None
        self._clock = PtsClock()
        self._backoff = backoff or Backoff(spec.backoff_initial_s, spec.backoff_max_s)
        self._last_frame_wall: float | None = None  # monotonic time of the last decoded frame
        self._pace: tuple[float, float] | None = None  # (monotonic, pts) origin of realtime pacing
        self._warned_pts = False
        self._fps: float | None = None
        self._frames_in_file: int | None = None
        self._pending = None if spec.live else self._open()
        self._start()

    @property
    def timestamps_synthesized(self) -> int:
        """Frames whose stream carried no PTS, timed as previous PTS + one frame interval."""
        return self._clock.synthesized

    @property
    def fps(self) -> float | None:
        """Nominal frame rate of the input (known once opened)."""
        return self._fps

    @property
    def total_frames(self) -> int | None:
        """Frames a non-looping file will deliver: its frame count, thinned by ``analysis_fps``."""
        if self.spec.live or self.spec.loop or not self._frames_in_file:
            return None
        if self._sampler is None or self._fps is None:
            return self._frames_in_file
        return math.ceil(self._frames_in_file * min(1.0, self._sampler.target_fps / self._fps))

    def _open(self) -> av.container.InputContainer:
        spec = self.spec
        timeout = (spec.open_timeout_s, spec.read_timeout_s) if spec.live else None
        try:
            container = av.open(spec.target, format=spec.format, options=dict(spec.options), timeout=timeout)
        except (av.FFmpegError, OSError) as err:
            raise SourceError(f"cannot open {spec.kind} {spec.display}: {_reason(err)}") from None
        if not container.streams.video:
            container.close()
            raise SourceError(f"cannot open {spec.kind} {spec.display}: it has no video stream")
        stream = container.streams.video[0]
        stream.thread_type = spec.thread_type
        interval = _frame_interval(stream)
        self._fps = 1 / interval if interval else None
        self._frames_in_file = stream.frames or None
        return container

    def _produce(self) -> None:
        spec = self.spec
        container, self._pending = self._pending, None
        lost = False  # a live input was lost: the next first frame bridges a gap
        if spec.live:
            self._emit(SourceState.CONNECTING)
        while not self._stop.is_set():
            if container is None:
                try:
                    container = self._open()
                except SourceError as err:
                    if not spec.live:
                        self._emit(SourceState.FAILED, error=str(err))
                        return
                    if not self._wait_to_retry(str(err)):
                        return
                    continue
            try:
                error = self._pump(container, lost)
            finally:
                container.close()
                container = None
            if self._stop.is_set():
                return
            if not spec.live:
                if error is not None:
                    error = f"{spec.kind} {spec.display}: {error}"
                    self._emit(SourceState.FAILED, error=error, detail=self._summary())
                    return
                if not spec.loop:
                    self._emit(SourceState.ENDED, detail=self._summary())
                    return
                self._clock.restart()
                continue
            lost = True
            if not self._wait_to_retry(error or f"{spec.kind} ended"):
                return

    def _wait_to_retry(self, error: str) -> bool:
        """Announce RECONNECTING and sleep the backoff; False if closed meanwhile."""
        delay = self._backoff.next()
        self._emit(SourceState.RECONNECTING, error=error, attempt=self._backoff.failures, retry_in_s=delay)
        return not self._stop.wait(delay)

    def _pump(self, container: av.container.InputContainer, lost: bool) -> str | None:
        """Decode one connection until EOF (None), an error (its reason) or a stop (None)."""
        stream = container.streams.video[0]
        self._clock.interval = _frame_interval(stream) or self._clock.interval
        first = True
        consecutive_errors = 0
        try:
            for packet in container.demux(stream):
                if self._stop.is_set():
                    return None
                try:
                    frames = packet.decode()
                except av.InvalidDataError as err:
                    self.decode_errors += 1
                    consecutive_errors += 1
                    if consecutive_errors >= MAX_CONSECUTIVE_DECODE_ERRORS:
                        return f"{consecutive_errors} undecodable packets in a row ({_reason(err)})"
                    continue
                consecutive_errors = 0
                for frame in frames:
                    now = time.monotonic()
                    gap = None
                    if first and lost and self._last_frame_wall is not None:
                        # pts continues from the last one plus the outage, measured on the wall clock.
                        gap = now - self._last_frame_wall
                        self._clock.restart(gap)
                    pts = self._clock.map(frame.time)
                    self._last_frame_wall = now
                    if frame.time is None:
                        self._note_missing_pts()
                    if first and self._state is not SourceState.STREAMING:
                        self._backoff.reset()
                        self._emit(SourceState.STREAMING, pts=pts, gap_s=gap)
                    first = False
                    if not self._keep(frame, pts, now):
                        return None
        except (av.FFmpegError, OSError) as err:
            return _reason(err)
        return None

    def _keep(self, frame: av.VideoFrame, pts: float, now: float) -> bool:
        """Sample, pace and queue one decoded frame; False once closed."""
        if self._sampler is not None and not self._sampler.keep(pts):
            return True
        if self.spec.realtime:
            if self._pace is None:
                self._pace = (now, pts)
            if self._stop.wait(max(0.0, self._pace[0] + (pts - self._pace[1]) - time.monotonic())):
                return False
        image: npt.NDArray[np.uint8] = frame.to_ndarray(format="bgr24")  # type: ignore[assignment]
        return self._deliver(pts, image)

    def _note_missing_pts(self) -> None:
        if not self._warned_pts:
            self._warned_pts = True
            log.warning(
                "camera %s: %s %s has frames without PTS; timing them one frame interval (%g s) apart",
                self.camera, self.spec.kind, self.spec.display, self._clock.interval,
            )

    def _summary(self) -> str | None:
        """Note for the terminal record: frames timed without PTS, packets that failed to decode."""
        notes = []
        if self._clock.synthesized:
            notes.append(f"{self._clock.synthesized} frames had no PTS and were timed by frame interval")
        if self.decode_errors:
            notes.append(f"{self.decode_errors} packets failed to decode")
        return "; ".join(notes) or None


def file_spec(cfg: FileSource) -> PyAVSpec:
    """Spec of a video file; ``path: sample`` is the bundled demo clip.

    A realtime file stands in for a live camera, so it also drops (and counts) frames the consumer
    is too slow for, instead of slowing down.

    Raises:
        SourceError: ``sample`` was asked for and cannot be fetched.

    """
    path = cfg.path
    if path == "sample":
        try:
            path = str(sample_video())
        except AssetError as err:
            raise SourceError(f"cannot get the sample video: {err}") from None
    return PyAVSpec(
        target=path, kind="video file", loop=cfg.loop, realtime=cfg.realtime, latest_only=cfg.realtime
    )


def stream_spec(cfg: StreamSource) -> PyAVSpec:
    """Spec of a network camera (RTSP/RTMP/HTTP...), with the timeout options its protocol honours."""
    read_us = str(round(cfg.read_timeout_s * 1_000_000))
    options = {"analyzeduration": str(LIVE_ANALYZE_DURATION_US)}
    scheme = cfg.url.split("://", 1)[0].lower()
    if scheme in ("rtsp", "rtsps"):
        options |= {"rtsp_transport": cfg.rtsp_transport, "timeout": read_us}
    elif not scheme.startswith("rtmp"):
        options["rw_timeout"] = read_us
    return PyAVSpec(
        target=cfg.url, kind="stream", options=options, live=True, latest_only=cfg.latest_only,
        open_timeout_s=cfg.open_timeout_s, read_timeout_s=cfg.read_timeout_s,
        backoff_initial_s=cfg.backoff_initial_s, backoff_max_s=cfg.backoff_max_s,
        queue_size=2 if cfg.latest_only else 4,
        # Frame threading holds one frame per decoder thread before output: on a live view that is lag.
        thread_type="SLICE",
    )


def usb_spec(cfg: UsbSource) -> PyAVSpec:
    """Spec of a V4L2 camera; unplugged or busy, it reconnects like a network camera."""
    options: dict[str, str] = {}
    if cfg.width and cfg.height:
        options["video_size"] = f"{cfg.width}x{cfg.height}"
    if cfg.fps:
        options["framerate"] = f"{cfg.fps:g}"
    return PyAVSpec(
        target=cfg.device, kind="camera", format="v4l2", options=options, live=True, latest_only=True,
        open_timeout_s=5.0, read_timeout_s=5.0, queue_size=2, thread_type="SLICE",
    )
