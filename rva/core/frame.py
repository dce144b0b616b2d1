"""A decoded video frame with the time it belongs to."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt


@dataclass(frozen=True, slots=True)
class Frame:
    """One decoded frame.

    Attributes:
        camera: Camera id from the config.
        index: Sequence number of this frame among those the source delivered (after sampling).
        pts: Presentation time in seconds, from the stream's PTS (monotonic per source; after a
            reconnect it continues from where the previous connection stopped plus the gap).
        image: ``(h, w, 3)`` uint8 BGR pixels.
    """

    camera: str
    index: int
    pts: float
    image: npt.NDArray[np.uint8]

    @property
    def size(self) -> tuple[int, int]:
        """``(width, height)`` in pixels."""
        return int(self.image.shape[1]), int(self.image.shape[0])
