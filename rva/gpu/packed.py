"""The packed detection rows the GPU path copies to the host, and their unpacking. NumPy only.

One row per kept box: ``x1, y1, x2, y2, confidence, class_id`` in frame pixels, then, for pose
models, ``k`` keypoints of ``x, y, visibility``. A batch is ``(b, limit, cols)`` with a count per
frame; rows past the count are padding. Torch-free, so CPU worker processes unpack without it.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from rva.core.detections import NO_TRACK, Detections

#: Values per row before the keypoints.
BOX_COLUMNS = 6


def unpack_rows(
    rows: npt.NDArray[np.float32],
    kpt_shape: tuple[int, int] | None,
    fallen: npt.NDArray[np.bool_],
) -> Detections:
    """One frame's kept rows ``(n, cols)`` as untracked :class:`~rva.core.Detections`.

    Args:
        rows: The frame's rows, padding already cut.
        kpt_shape: ``(k, d)`` of a pose model, None for a detector.
        fallen: Per model class id, whether it means a person lying down (``data["fallen"]``).

    """
    class_id = rows[:, 5].astype(np.int64)
    n = len(rows)
    return Detections(
        xyxy=rows[:, :4],
        confidence=rows[:, 4],
        class_id=class_id,
        tracker_id=np.full(n, NO_TRACK, np.int64),
        keypoints=None if kpt_shape is None else rows[:, BOX_COLUMNS:].reshape(n, kpt_shape[0], 3),
        data={"fallen": fallen[class_id]},
    )


def unpack_batch(
    packed: npt.NDArray[np.float32],
    counts: npt.NDArray[np.integer],
    kpt_shape: tuple[int, int] | None,
    fallen: npt.NDArray[np.bool_],
) -> list[Detections]:
    """``(b, limit, cols)`` rows and ``(b,)`` counts as one :class:`~rva.core.Detections` per frame."""
    kept = np.minimum(counts, packed.shape[1])
    return [unpack_rows(packed[i, : kept[i]], kpt_shape, fallen) for i in range(len(packed))]
