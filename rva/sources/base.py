"""The video source interface: frames and state changes of one camera, in the order they happened."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from enum import StrEnum
from types import TracebackType
from typing import Any

from rva.core import Event, EventType, Frame


class SourceState(StrEnum):
    """Where a source is in its life."""

    CONNECTING = "connecting"
    """Opening the input for the first time."""
    STREAMING = "streaming"
    """Delivering frames."""
    RECONNECTING = "reconnecting"
    """A live input was lost or could not be opened; waiting to try again."""
    ENDED = "ended"
    """No more frames: the file ended, or the caller closed the source."""
    FAILED = "failed"
    """No more frames because of an error (see the status record's ``error``)."""


TERMINAL_STATES = frozenset({SourceState.ENDED, SourceState.FAILED})


@dataclass(frozen=True, slots=True)
class SourceStatus:
    """A state change of one source, as a record the pipeline can log or publish.

    Attributes:
        camera: Camera id from the config.
        state: The state entered.
        ts_wall: Wall-clock time of the change (Unix seconds).
        pts: Source-clock time of the change: the first frame's PTS on STREAMING, the last
            delivered PTS otherwise; None before any frame.
        gap_s: On STREAMING after a reconnect, the wall-clock outage bridged, in seconds; the PTS
            of the first new frame is the last PTS plus this gap.
        error: Why the source is reconnecting or failed, with FFmpeg's reason.
        attempt: Reconnect attempt number (1, 2, ...) on RECONNECTING; 0 otherwise.
        retry_in_s: On RECONNECTING, the backoff delay before the next attempt.
        frames: Frames the consumer had received when this record was read.
        dropped: Frames dropped so far because the consumer lagged (``latest_only`` sources).
        detail: A note worth a log line, e.g. that timestamps are synthesized from frame counts.

    """

    camera: str
    state: SourceState
    ts_wall: float
    pts: float | None = None
    gap_s: float | None = None
    error: str | None = None
    attempt: int = 0
    retry_in_s: float | None = None
    frames: int = 0
    dropped: int = 0
    detail: str | None = None

    def to_event(self) -> Event:
        """Convert to a ``source_state`` :class:`~rva.core.Event` (``ts`` is 0.0 before any frame)."""
        attrs: dict[str, Any] = {"state": str(self.state), "ts_wall": self.ts_wall, "frames": self.frames}
        for key in ("gap_s", "error", "retry_in_s", "detail"):
            if (value := getattr(self, key)) is not None:
                attrs[key] = value
        if self.attempt:
            attrs["attempt"] = self.attempt
        if self.dropped:
            attrs["dropped"] = self.dropped
        return Event(type=EventType.SOURCE_STATE, camera=self.camera, ts=self.pts or 0.0, attrs=attrs)


StatusCallback = Callable[[SourceStatus], None]


class VideoSource(ABC):
    """Frames of one camera, decoded off the caller's thread.

    Read with :meth:`read` (frames and status records interleaved, with a timeout), :meth:`items`
    (the same as an iterator) or plain iteration (frames only; status records go to ``on_status``).
    One consumer thread per source. Close it (or use ``with``) to stop its thread.

    Attributes:
        camera: Camera id from the config.
        on_status: Called in the consumer's thread with each status record met while iterating.

    """

    def __init__(self, camera: str, on_status: StatusCallback | None = None) -> None:
        self.camera = camera
        self.on_status = on_status

    @property
    @abstractmethod
    def state(self) -> SourceState:
        """The current state (may be ahead of the records not yet read)."""

    @property
    @abstractmethod
    def frames_dropped(self) -> int:
        """Frames dropped so far because the consumer lagged behind a live source."""

    @property
    @abstractmethod
    def finished(self) -> bool:
        """True once the terminal record was read (or the source closed): :meth:`read` has nothing left."""

    @property
    def fps(self) -> float | None:
        """Nominal frame rate of the input, as the container declares it (None until known)."""
        return None

    @property
    def total_frames(self) -> int | None:
        """Frames this source will deliver if read to the end (after sampling; an estimate).

        None for live or looping sources, and for files that do not say how many frames they hold.
        """
        return None

    @abstractmethod
    def read(self, timeout: float | None = None) -> Frame | SourceStatus | None:
        """Return the next frame or status record, in the order they happened.

        Args:
            timeout: Seconds to wait; None waits until something comes or the source finishes.

        Returns:
            A :class:`Frame`, a :class:`SourceStatus`, or None when nothing came within ``timeout``
            or the source is finished.

        """

    @abstractmethod
    def add_waker(self, wake: Callable[[], None]) -> None:
        """Register ``wake``, called from the producer thread each time something becomes readable."""

    @abstractmethod
    def close(self) -> None:
        """Stop decoding and release the input. Returns promptly; safe to call twice."""

    def items(self, timeout: float | None = None) -> Iterator[Frame | SourceStatus]:
        """Frames and status records until the source finishes (the last item is ENDED or FAILED).

        Args:
            timeout: Give up waiting for the next item after this many seconds (None: wait).

        Raises:
            TimeoutError: Nothing came within ``timeout``.

        """
        while not self.finished:
            item = self.read(timeout)
            if item is None:
                if self.finished:
                    return
                raise TimeoutError(f"camera {self.camera}: nothing read within {timeout} s")
            yield item

    def __iter__(self) -> Iterator[Frame]:
        for item in self.items():
            if isinstance(item, Frame):
                yield item
            elif self.on_status is not None:
                self.on_status(item)

    def __enter__(self) -> VideoSource:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
