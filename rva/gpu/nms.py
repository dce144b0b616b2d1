"""Batched, exact greedy NMS and YOLO head decoding in torch, with static shapes (no host sync inside).

Greedy NMS keeps box ``i`` (boxes in descending score order) iff no *kept* higher-ranked box of its
group overlaps it by more than the IoU threshold. That recursive rule has exactly one solution, and
iterating ``keep <- valid & ~any_j(suppresses[j, i] & keep[j])`` from "all kept" reaches it: after
pass ``t`` the first ``t + 1`` ranks are final, and in practice suppression chains are a few boxes
long, so a handful of passes settle every frame. The passes run on ``(b, K, K)`` masks for the whole
batch at once; a per-frame ``converged`` flag says whether the last pass changed nothing, and
:meth:`DecodedBatch.settle` finishes any frame that needed more (a host sync; rare).

The result is what :class:`rva.detect.yolo.YoloHead` computes on the CPU (same classes, groups,
threshold, tie order, letterbox mapping), as fixed-size tensors ready for one device-to-host copy.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import torch
from torch import Tensor

from rva.core.detections import Detections
from rva.detect.yolo import Letterbox, ModelInfo, YoloHead
from rva.gpu.packed import BOX_COLUMNS, unpack_batch


def suppression_matrix(boxes: Tensor, groups: Tensor, valid: Tensor, iou_threshold: float) -> Tensor:
    """``(b, K, K)`` bool: ``[b, j, i]`` when rank ``j`` would suppress rank ``i`` (``j < i``, same group, IoU above).

    Args:
        boxes: ``(b, K, 4)`` ``x1, y1, x2, y2`` in descending score order.
        groups: ``(b, K)`` integer group per box (boxes only suppress their own group).
        valid: ``(b, K)`` bool; invalid boxes neither suppress nor are kept.
        iou_threshold: Suppress when IoU is strictly above this.

    """
    k = boxes.shape[1]
    lo = torch.maximum(boxes[:, :, None, :2], boxes[:, None, :, :2])
    hi = torch.minimum(boxes[:, :, None, 2:], boxes[:, None, :, 2:])
    inter = (hi - lo).clamp_(min=0).prod(3)
    area = (boxes[:, :, 2:] - boxes[:, :, :2]).clamp(min=0).prod(2)
    union = (area[:, :, None] + area[:, None, :] - inter).clamp_(min=1e-9)
    # Same comparison as rva.detect.yolo.nms_numpy: inter > t * union (no division).
    overlap = inter > iou_threshold * union
    earlier = torch.ones(k, k, dtype=torch.bool, device=boxes.device).triu_(1)
    same = groups[:, :, None] == groups[:, None, :]
    return overlap & same & earlier & valid[:, :, None] & valid[:, None, :]


def greedy_keep(suppress: Tensor, valid: Tensor, passes: int, keep: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """Run ``passes`` fixed-point passes of greedy NMS (see the module docstring).

    Args:
        suppress: ``(b, K, K)`` from :func:`suppression_matrix`.
        valid: ``(b, K)`` bool.
        passes: Passes to run (>= 1).
        keep: State to continue from (default: all valid boxes kept).

    Returns:
        ``keep`` ``(b, K)`` and ``converged`` ``(b,)``: whether the last pass changed nothing.

    """
    keep = valid.clone() if keep is None else keep
    converged = torch.zeros(valid.shape[0], dtype=torch.bool, device=valid.device)
    sup = suppress.to(torch.float16 if suppress.is_cuda else torch.float32)
    for _ in range(max(1, passes)):
        # any_j(suppress[j, i] & keep[j]) as a batched mat-vec: tensor cores on the GPU.
        hit = torch.bmm(keep.unsqueeze(1).to(sup.dtype), sup).squeeze(1) > 0
        new = valid & ~hit
        converged = (new == keep).all(1)
        keep = new
    return keep, converged


def exact_keep(suppress: Tensor, valid: Tensor) -> Tensor:
    """Greedy NMS to convergence (syncs with the device once per few passes)."""
    keep, converged = greedy_keep(suppress, valid, 4)
    while not bool(converged.all()):
        keep, converged = greedy_keep(suppress, valid, 4, keep)
    return keep


def compact(keep: Tensor, rows: Tensor, limit: int) -> tuple[Tensor, Tensor]:
    """Move kept rows to the front, in rank order: ``(b, limit, cols)`` (zero padded) and kept counts ``(b,)``."""
    b, k, cols = rows.shape
    rank = keep.cumsum(1) - 1
    dest = torch.where(keep & (rank < limit), rank, torch.full_like(rank, limit))
    out = torch.zeros(b, limit + 1, cols, dtype=rows.dtype, device=rows.device)
    out.scatter_(1, dest.unsqueeze(2).expand(b, k, cols), rows)
    return out[:, :limit], keep.sum(1)


@dataclass
class DecodedBatch:
    """Detections of a batch as device tensors, before the copy to the host.

    Attributes:
        packed: ``(b, limit, cols)`` float32 rows ``x1, y1, x2, y2, confidence, class_id[, k*(x, y, v)]``
            in frame pixels, kept boxes first in descending score order.
        counts: ``(b,)`` boxes kept per frame (may exceed ``limit``: the rest were cut).
        converged: ``(b,)`` whether the fixed number of NMS passes settled the frame.
        overflow: ``(b,)`` candidates above the threshold that did not fit in ``max_candidates``.

    """

    packed: Tensor
    counts: Tensor
    converged: Tensor
    overflow: Tensor
    suppress: Tensor
    valid: Tensor
    keep: Tensor
    rows: Tensor

    @torch.inference_mode()
    def settle(self) -> int:
        """Finish NMS for frames that did not converge (host sync); returns how many needed it."""
        bad = ~self.converged
        n = int(bad.sum())
        if n:
            keep = exact_keep(self.suppress[bad], self.valid[bad])
            packed, counts = compact(keep, self.rows[bad], self.packed.shape[1])
            self.packed[bad] = packed
            self.counts[bad] = counts
            self.converged[bad] = True
        return n


class BatchDecoder:
    """Decode raw YOLO head output ``(b, 4 + nc [+ k*d], anchors)`` into kept boxes, on the output's device.

    Class mapping, NMS groups (one per RVA label), the ``fallen`` flag, the confidence and IoU
    thresholds and the keypoint layout come from a :class:`~rva.detect.yolo.YoloHead`, so both paths
    agree by construction.
    """

    def __init__(
        self,
        info: ModelInfo,
        class_map: Mapping[str, str],
        fallen_classes: Sequence[str] = (),
        confidence: float = 0.25,
        iou: float = 0.5,
        *,
        max_candidates: int = 512,
        max_detections: int = 100,
        passes: int = 8,
    ) -> None:
        """Check the class map and prepare the lookup tables.

        Args:
            info: The model's classes and keypoint layout.
            class_map: Model class name -> RVA label; unlisted classes are dropped.
            fallen_classes: Model class names meaning a person lying down.
            confidence: Minimum score kept.
            iou: NMS IoU threshold.
            max_candidates: Boxes above ``confidence`` entering NMS per frame, best first
                (Ultralytics' ``max_nms``); the rest are counted in ``overflow``.
            max_detections: Boxes returned per frame after NMS.
            passes: Fixed-point NMS passes run without a host sync.

        Raises:
            ModelError: none of the model's classes is in ``class_map``.

        """
        self.head = YoloHead(info, class_map, fallen_classes, confidence, iou, max_detections)
        self.max_candidates = max_candidates
        self.max_detections = max_detections
        self.passes = passes
        names = info.names
        label_ids = {label: i for i, label in enumerate(sorted(set(self.head.labels.values())))}
        self._columns = np.array(sorted(self.head.labels), np.int64)
        self._group = np.array([label_ids[self.head.labels[c]] for c in self._columns], np.int64)
        self._fallen = np.array([names[c] in fallen_classes for c in range(len(names))], np.bool_)
        self._kpt = info.kpt_shape
        self._tables: dict[torch.device, tuple[Tensor, Tensor]] = {}

    @property
    def columns(self) -> int:
        """Values per packed row."""
        k = self._kpt
        return BOX_COLUMNS + (k[0] * 3 if k else 0)

    def _device_tables(self, device: torch.device) -> tuple[Tensor, Tensor]:
        tables = self._tables.get(device)
        if tables is None:
            tables = (torch.from_numpy(self._columns).to(device), torch.from_numpy(self._group).to(device))
            self._tables[device] = tables
        return tables

    def __call__(self, raw: Tensor, boxes: Tensor) -> DecodedBatch:
        """Decode a batch; no host sync.

        Args:
            raw: ``(b, channels, anchors)`` head output (float32 or float16).
            boxes: ``(b, 5)`` float32 per frame ``scale, pad_x, pad_y, frame_w, frame_h`` (see
                :func:`letterbox_rows`), on ``raw``'s device.

        """
        nc = len(self.head.info.names)
        if raw.dim() != 3 or raw.shape[1] != self.head.channels:
            raise ValueError(f"BatchDecoder: expected (b, {self.head.channels}, anchors), got {tuple(raw.shape)}")
        columns, group_of = self._device_tables(raw.device)
        raw = raw.float()
        scores = raw[:, 4:4 + nc].index_select(1, columns)
        conf, best = scores.max(1)
        k = min(self.max_candidates, raw.shape[2])
        # Stable descending sort: ties keep anchor order, as the CPU path's stable argsort does.
        order = torch.sort(conf, dim=1, descending=True, stable=True).indices[:, :k]
        conf_k = conf.gather(1, order)
        valid = conf_k >= self.head.confidence
        overflow = (conf >= self.head.confidence).sum(1) - valid.sum(1)
        cand = raw.gather(2, order.unsqueeze(1).expand(-1, raw.shape[1], -1))  # (b, C, K)
        cls_idx = best.gather(1, order)
        class_id = columns[cls_idx]
        cx, cy, w, h = cand[:, 0], cand[:, 1], cand[:, 2], cand[:, 3]
        xyxy_in = torch.stack((cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2), 2)
        suppress = suppression_matrix(xyxy_in, group_of[cls_idx], valid, self.head.iou)
        keep, converged = greedy_keep(suppress, valid, self.passes)
        scale, pad_x, pad_y, fw, fh = (boxes[:, i].view(-1, 1) for i in range(5))
        x = ((xyxy_in[..., 0::2] - pad_x.unsqueeze(2)) / scale.unsqueeze(2)).clamp(min=0)
        y = ((xyxy_in[..., 1::2] - pad_y.unsqueeze(2)) / scale.unsqueeze(2)).clamp(min=0)
        x = torch.minimum(x, fw.unsqueeze(2))
        y = torch.minimum(y, fh.unsqueeze(2))
        parts = [x[..., :1], y[..., :1], x[..., 1:], y[..., 1:], conf_k.unsqueeze(2), class_id.unsqueeze(2).float()]
        if self._kpt is not None:
            kk, d = self._kpt
            kp = cand[:, 4 + nc:].view(cand.shape[0], kk, d, -1).permute(0, 3, 1, 2)  # (b, K, k, d)
            kx = (kp[..., 0] - pad_x.unsqueeze(2)) / scale.unsqueeze(2)
            ky = (kp[..., 1] - pad_y.unsqueeze(2)) / scale.unsqueeze(2)
            kv = kp[..., 2] if d >= 3 else torch.ones_like(kx)
            parts.append(torch.stack((kx, ky, kv), 3).flatten(2))
        rows = torch.cat(parts, 2)
        packed, counts = compact(keep, rows, self.max_detections)
        return DecodedBatch(packed, counts, converged, overflow, suppress, valid, keep, rows)

    def unpack(self, packed: npt.NDArray[np.float32], counts: npt.NDArray[np.integer]) -> list[Detections]:
        """Turn host copies of :attr:`DecodedBatch.packed` / ``counts`` into one :class:`Detections` per frame."""
        return unpack_batch(packed, counts, self._kpt, self._fallen)

    @property
    def fallen_table(self) -> npt.NDArray[np.bool_]:
        """Per model class id: whether it means a person lying down."""
        return self._fallen

    @property
    def kpt_shape(self) -> tuple[int, int] | None:
        """``(k, d)`` of a pose model, None for a detector."""
        return self._kpt


def letterbox_rows(boxes: Sequence[Letterbox]) -> Tensor:
    """``(b, 5)`` float32 ``scale, pad_x, pad_y, frame_w, frame_h`` for :meth:`BatchDecoder.__call__`."""
    return torch.tensor([[lb.scale, lb.pad_x, lb.pad_y, lb.frame_w, lb.frame_h] for lb in boxes], dtype=torch.float32)
