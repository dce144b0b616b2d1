"""Privacy: people are blurred out of every snapshot the gateway keeps, and data ages out per tenant.

Snapshots (the backgrounds of heatmaps) arrive from edge devices. Whatever the edge did, the
gateway runs its own person detector over the image and blurs every person it finds, together with
any boxes the edge sent, unless the tenant's policy says otherwise. If no detector can be loaded, a
``blur_people`` policy falls back to blurring the whole image: the failure is never the private one.

Retention: the stores keep one physical horizon (day partitions are shared by tenants), set to the
longest tenant window; each tenant's own window is enforced on every read by
:meth:`gateway.tenancy.Tenancy.scope`, which never lets a query start before it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from gateway.images import Box, Tile, blur_all, blur_boxes, decode_image, encode_jpeg, split_tiles, upscale
from gateway.registry import Registry

log = logging.getLogger(__name__)
_FULL_SCORE = 0.05  # whole-image pass: low, since recall is what protects people
_TILE_SCORE = 0.1  # tiles at 2x see more clutter; a little stricter


@dataclass(frozen=True, slots=True)
class FilteredSnapshot:
    """A snapshot after the privacy policy.

    Attributes:
        jpeg: The image as stored.
        size: ``(width, height)``.
        applied: ``blur_people``, ``blur_all`` (chosen, or the fallback) or ``off``.
        people: Boxes blurred (the detector's plus the edge's).

    """

    jpeg: bytes
    size: tuple[int, int]
    applied: str
    people: int


class PrivacyFilter:
    """Applies a tenant's snapshot policy; loads the person detector on first use.

    Args:
        detector: ``default`` (RVA's model), a ``.onnx`` path, or ``off``.

    """

    def __init__(self, detector: str = "default") -> None:
        self.detector_spec = detector
        self._detector: Any = None
        self._loaded = detector == "off"
        self._lock = threading.Lock()

    def _get_detector(self) -> Any:
        with self._lock:
            if not self._loaded:
                self._loaded = True
                try:
                    from rva.config import OnnxDetectorConfig
                    from rva.detect import create_detector

                    self._detector = create_detector(
                        OnnxDetectorConfig(model=self.detector_spec, confidence=_FULL_SCORE, threads=2))
                except Exception as err:  # any failure to load means: no detector, blur everything
                    log.error("privacy: person detector %r unavailable (%s); blurring whole images",
                              self.detector_spec, err)
                    self._detector = None
            return self._detector

    def people(self, image: Any) -> list[Box] | None:
        """Person boxes in an image, or None without a detector.

        Recall matters more than precision here (a missed person is a leak, a blurred bush is not):
        the whole image is searched at a low score threshold, then four overlapping tiles at twice the
        scale find the small, far-away people a single pass misses. Boxes too large to be one person
        (over half the searched area) are dropped.
        """
        detector = self._get_detector()
        if detector is None:
            return None
        h, w = image.shape[:2]
        views = [Tile(0, 0, w, h, 1.0, _FULL_SCORE), *split_tiles(w, h, _TILE_SCORE)]
        images = [image if t.scale == 1.0 else upscale(image, t) for t in views]
        with self._lock:  # one detection at a time keeps memory flat
            found = detector.detect(images)
        boxes: list[Box] = []
        for tile, dets in zip(views, found, strict=True):
            for (x1, y1, x2, y2), score in zip(dets.xyxy.tolist(), dets.confidence.tolist(), strict=True):
                box = (x1 / tile.scale + tile.x, y1 / tile.scale + tile.y, x2 / tile.scale + tile.x,
                       y2 / tile.scale + tile.y)
                if score >= tile.min_score and (box[2] - box[0]) * (box[3] - box[1]) <= 0.5 * tile.w * tile.h:
                    boxes.append(box)
        return boxes

    def apply(self, data: bytes, policy: dict[str, Any], edge_boxes: Sequence[Box] = ()) -> FilteredSnapshot:
        """Decode an uploaded JPEG/PNG and apply the tenant's policy.

        Args:
            data: The uploaded bytes.
            policy: The tenant's ``privacy`` settings (``snapshots``, ``blur_sigma_px``).
            edge_boxes: Person boxes the edge found (blurred too; never instead of the gateway's own).

        Raises:
            Unprocessable: Not a JPEG/PNG, too large or corrupt.

        """
        image = decode_image(data)
        mode = str(policy.get("snapshots", "blur_people"))
        sigma = float(policy.get("blur_sigma_px", 12.0))
        h, w = image.shape[:2]
        if mode == "off":
            return FilteredSnapshot(encode_jpeg(image), (w, h), "off", 0)
        if mode == "blur_people":
            found = self.people(image)
            if found is not None:
                boxes = [*found, *edge_boxes]
                return FilteredSnapshot(encode_jpeg(blur_boxes(image, boxes, sigma)), (w, h), "blur_people",
                                        len(boxes))
        return FilteredSnapshot(encode_jpeg(blur_all(image, sigma)), (w, h), "blur_all", 0)

    def close(self) -> None:
        """Release the detector."""
        if self._detector is not None:
            self._detector.close()


def enforce_retention(registry: Registry, postgres_dsn: str) -> list[str]:
    """Apply the stores' retention with the longest tenant window, and forget old ingest batch records.

    Returns:
        What was dropped, one line each.

    """
    from rva.stores.postgres import PostgresWriter
    from rva.stores.postgres_schema import Retention

    tenants = registry.tenants()
    if not tenants:
        return []
    raw = max(int(t["retention"]["raw_days"]) for t in tenants)
    rollup = max(int(t["retention"]["rollup_days"]) for t in tenants)
    writer = PostgresWriter(postgres_dsn, retention=Retention(raw_days=raw, rollup_days=rollup))
    try:
        done = writer.apply_retention()
    finally:
        writer.close()
    forgotten = registry.forget_batches(raw)
    return [*done, f"forgot {forgotten} ingest batch records older than {raw} days"]
