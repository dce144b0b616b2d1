"""Pure timing helpers of the sources: reconnect backoff and a monotonic clock over PTS segments."""

from __future__ import annotations

import random


class Backoff:
    """Exponential reconnect delays: ``initial``, doubling up to ``maximum``, with jitter.

    The jitter only shortens a delay (each is drawn from ``[(1 - jitter) * d, d]``), so the ceiling is
    never exceeded and many cameras that dropped together do not all knock again at the same instant.

    Example:
        >>> b = Backoff(0.5, 4.0, jitter=0.0)
        >>> [b.next() for _ in range(5)]
        [0.5, 1.0, 2.0, 4.0, 4.0]

    """

    def __init__(
        self, initial: float, maximum: float, *, jitter: float = 0.2, rng: random.Random | None = None
    ) -> None:
        """Create a backoff.

        Args:
            initial: First delay in seconds (> 0).
            maximum: Ceiling in seconds (>= ``initial``).
            jitter: Fraction of each delay that may be shaved off at random, in ``[0, 1)``.
            rng: Random generator (seed it for reproducible delays).

        Raises:
            ValueError: A bound is out of range.

        """
        if not 0 < initial <= maximum:
            raise ValueError(f"expected 0 < initial <= maximum, got initial={initial}, maximum={maximum}")
        if not 0 <= jitter < 1:
            raise ValueError(f"jitter must be in [0, 1), got {jitter}")
        self.initial = initial
        self.maximum = maximum
        self.jitter = jitter
        self._rng = rng or random.Random()
        self._failures = 0

    @property
    def failures(self) -> int:
        """Delays handed out since the last :meth:`reset`."""
        return self._failures

    def next(self) -> float:
        """Return the delay before the next attempt, in seconds."""
        # min() before the power would overflow after ~1000 failures; cap the exponent instead.
        ceiling = min(self.maximum, self.initial * 2.0 ** min(self._failures, 64))
        self._failures += 1
        return ceiling * (1.0 - self.jitter * self._rng.random())

    def reset(self) -> None:
        """Call after a success: the next failure waits ``initial`` again."""
        self._failures = 0


class PtsClock:
    """Maps the PTS of successive connections (or file loops) onto one monotonic source clock.

    Within a segment, output = raw PTS + offset. A new segment (after :meth:`restart`) continues
    from the last output plus the given gap (the wall-clock outage of a live camera) or plus one
    frame interval (a looped file). A frame without PTS is placed one frame interval after the
    previous one (so a stream without any PTS gets ``index / fps``). A PTS that goes backwards or
    repeats inside a segment is spliced on one interval after the last output.

    Example:
        >>> clock = PtsClock(interval=0.1)
        >>> [clock.map(t) for t in (0.0, 0.1, 0.2)]
        [0.0, 0.1, 0.2]
        >>> clock.restart(gap_s=3.0)
        >>> clock.map(0.0)
        3.2

    """

    def __init__(self, interval: float = 0.04) -> None:
        """Create a clock.

        Args:
            interval: Nominal frame interval in seconds, used for missing PTS and splices.

        """
        self.interval = interval
        self.synthesized = 0
        self.splices = 0
        self._offset = 0.0
        self._last: float | None = None
        self._anchor: float | None = None  # last raw PTS seen in this segment
        self._since_anchor = 0  # frames since that PTS (or since the segment began)
        self._pending_gap: float | None = None
        self._new_segment = False

    @property
    def last(self) -> float | None:
        """The last time handed out, if any."""
        return self._last

    def restart(self, gap_s: float | None = None) -> None:
        """Start a new segment: its first frame comes ``gap_s`` (default: one interval) after the last."""
        self._new_segment = True
        self._pending_gap = gap_s
        self._anchor = None
        self._since_anchor = 0

    def map(self, raw: float | None) -> float:
        """Source-clock time of a frame whose stream PTS is ``raw`` seconds (None when missing)."""
        if raw is None:
            self.synthesized += 1
            self._since_anchor += 1
            base = self._anchor if self._anchor is not None else -self.interval
            raw = base + self._since_anchor * self.interval
        else:
            self._anchor, self._since_anchor = raw, 0
        if self._last is None:
            out = raw + self._offset
        elif self._new_segment:
            gap = self._pending_gap if self._pending_gap and self._pending_gap > 0 else self.interval
            self._offset = self._last + gap - raw
            out = self._last + gap
        else:
            out = raw + self._offset
            if out <= self._last:
                self.splices += 1
                self._offset = self._last + self.interval - raw
                out = self._last + self.interval
        self._new_segment = False
        self._last = out
        return out
