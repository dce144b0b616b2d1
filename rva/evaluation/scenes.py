"""How wrong the analytics are on a generated scene: the pipeline's events scored against ``truth.json``.

A scene from :mod:`rva.scenes` comes with exact ground truth written in the analytics' own conventions
(foot points, enter/exit inertia, ``min_side_s``, ``join_after_s``). :func:`run_scene` runs the real
pipeline on its H.264 video (detector -> tracker -> analytics, the standalone runner) and
:func:`score_scene` compares the ``events.jsonl`` it wrote with the truth.

Metrics and matching rules:

- **Line count error** ``= sum |counted - true| / sum true`` over every (line, direction): counts only,
  no matching (what a store manager reads).
- **Occupancy MAE**: per zone and analysed frame time ``t``, occupancy is the number of visits with
  ``enter_ts <= t`` and ``end >= t``, i.e. enters up to ``t`` minus exits strictly before ``t``; the mean of
  ``|pipeline - truth|`` over every (frame, zone). A visit's end is its last inside observation: the
  ``zone_exit`` time for the pipeline (its runner closes every visit at the end of the stream), the
  ``last_inside_ts`` for the truth (which equals ``exit_ts`` when the visit closed), so both sides use
  identical conventions and no inertia is counted as presence.
- **Dwell MAE**: track ids and truth ids differ, so visits are matched, per zone, by **temporal IoU** of
  their intervals (each covers its frames, ``[enter, end + 1/fps)``): an optimal one-to-one assignment
  (Hungarian) maximising the summed IoU among pairs with IoU >= :data:`MIN_IOU`. The mean
  ``|dwell - true dwell|`` over matched pairs; unmatched visits on either side are reported as
  ``visits_missed`` / ``visits_spurious`` (they also show in the occupancy error).
- **Queue**: every queue record of the pipeline (``queue_served`` and ``queue_abandon`` events, and
  joins still open, as ``waiting``) is matched to the truth's records of the same queue by temporal IoU of
  ``[join, outcome time]`` in the same way, whatever their outcomes. ``queue_wait_mae_rel = mean |wait -
  true wait| / mean true wait`` over pairs that were both served. Abandonment: a true positive is a
  pipeline abandon matched to a true abandon; precision = TP / pipeline abandons, recall = TP / true
  abandons (1.0 when the denominator is 0: nothing to get wrong). A person still waiting when the scene
  ends is *waiting* in the truth; if the pipeline calls that an abandon it counts as a false positive.

Undefined means (no matched pair) are ``None``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from scipy.optimize import linear_sum_assignment

from rva.config import OutputConfig, RVAConfig, TrackerConfig, load_config
from rva.core.detections import Detections
from rva.core.events import Event, EventType

if TYPE_CHECKING:
    from rva.detect import Detector

#: Least temporal IoU for two visits (or queue records) to be the same person's.
MIN_IOU = 0.3
_EPS = 1e-6


@dataclass(frozen=True, slots=True)
class Interval:
    """A visit or a queue record: who, where, from when to when.

    Attributes:
        area: Zone or queue name.
        who: Track id (pipeline) or person id (truth).
        start: Enter (zone) or join (queue) time, seconds.
        end: Last inside time (zone) or the outcome's time (queue), seconds.
        outcome: ``visit`` for zones; ``served``, ``abandoned`` or ``waiting`` for queues.
    """

    area: str
    who: int
    start: float
    end: float
    outcome: str = "visit"

    @property
    def length_s(self) -> float:
        """Dwell (zones) or wait (queues): ``end - start``."""
        return self.end - self.start


@dataclass(frozen=True, slots=True)
class SceneScores:
    """Errors of the pipeline on one scene (see the module docs for the definitions).

    Attributes:
        seed: The scene's seed.
        people: Cast size.
        line_count_error: Relative line count error over lines and directions.
        occupancy_mae: Mean absolute occupancy error, people, over frames and zones.
        dwell_mae_s: Mean absolute dwell error over matched visits, seconds.
        queue_wait_mae_rel: Mean absolute wait error over matched served people / mean true wait.
        abandon_precision: Matched abandons / pipeline abandons.
        abandon_recall: Matched abandons / true abandons.
        crossings_true: True crossings (all lines and directions).
        crossings_counted: Counted crossings.
        visits_true: True zone visits.
        visits_matched: Of those, matched to a pipeline visit.
        visits_spurious: Pipeline visits matched to none.
        served_true: True served people.
        served_matched: Of those, matched to a pipeline ``queue_served``.
        abandons_true: True abandons.
        abandons_found: Pipeline abandons.
        abandons_matched: Pipeline abandons matched to a true abandon.
    """

    seed: int | None
    people: int
    line_count_error: float | None
    occupancy_mae: float
    dwell_mae_s: float | None
    queue_wait_mae_rel: float | None
    abandon_precision: float
    abandon_recall: float
    crossings_true: int
    crossings_counted: int
    visits_true: int
    visits_matched: int
    visits_spurious: int
    served_true: int
    served_matched: int
    abandons_true: int
    abandons_found: int
    abandons_matched: int

    def row(self) -> dict[str, Any]:
        """JSON-ready mapping, floats rounded to 4 decimals."""
        return {k: round(v, 4) if isinstance(v, float) else v for k, v in asdict(self).items()}


# --- reading ---------------------------------------------------------------------------------------


def read_events(path: Path) -> list[Event]:
    """Read an ``events.jsonl`` written by the runner."""
    with path.open(encoding="utf-8") as fh:
        return [Event.from_dict(json.loads(line)) for line in fh if line.strip()]


def truth_visits(truth: dict[str, Any]) -> list[Interval]:
    """The truth's zone visits, each ending at its last inside time."""
    return [Interval(v["zone"], v["id"], v["enter_ts"], v["last_inside_ts"]) for v in truth["zone_visits"]]


def event_visits(events: Iterable[Event], end_ts: float) -> list[Interval]:
    """Zone visits from ``zone_enter``/``zone_exit`` events; a visit never exited lasts until ``end_ts``."""
    open_: dict[tuple[str, int, float], Event] = {}
    out = []
    for e in events:
        if e.type is EventType.ZONE_ENTER:
            open_[(str(e.zone), int(e.track_id or 0), round(e.ts, 6))] = e
        elif e.type is EventType.ZONE_EXIT:
            enter = float(e.enter_ts if e.enter_ts is not None else e.ts - (e.dwell_s or 0.0))
            open_.pop((str(e.zone), int(e.track_id or 0), round(enter, 6)), None)
            out.append(Interval(str(e.zone), int(e.track_id or 0), enter, e.ts))
    out += [Interval(z, t, e.ts, end_ts) for (z, t, _), e in open_.items()]
    return out


def truth_queue(truth: dict[str, Any]) -> list[Interval]:
    """The truth's queue records: ``[join, served / abandon / last time in the queue]``."""
    end = {"served": "served_ts", "abandoned": "abandon_ts", "waiting": "last_in_queue_ts"}
    return [Interval(r["queue"], r["id"], r["join_ts"], r[end[r["outcome"]]], r["outcome"]) for r in truth["queue"]]


def event_queue(events: Iterable[Event], end_ts: float) -> list[Interval]:
    """Queue records from events: served, abandoned, and joins with neither (``waiting`` until ``end_ts``)."""
    joins: dict[tuple[str, int], list[float]] = {}
    out = []
    for e in events:
        key = (str(e.queue), int(e.track_id or 0))
        if e.type is EventType.QUEUE_JOIN:
            joins.setdefault(key, []).append(e.ts)
        elif e.type in (EventType.QUEUE_SERVED, EventType.QUEUE_ABANDON):
            start = float(e.enter_ts if e.enter_ts is not None else e.ts - (e.wait_s or 0.0))
            pending = joins.get(key, [])
            if pending:
                pending.pop(int(np.argmin([abs(j - start) for j in pending])))
            outcome = "served" if e.type is EventType.QUEUE_SERVED else "abandoned"
            out.append(Interval(key[0], key[1], start, e.ts, outcome))
    out += [Interval(q, t, j, end_ts, "waiting") for (q, t), js in joins.items() for j in js]
    return out


# --- metrics ---------------------------------------------------------------------------------------


def line_counts_truth(truth: dict[str, Any]) -> dict[tuple[str, str], int]:
    """True crossings per ``(line, direction)``, zeros included for every configured line."""
    counts = {(line, d): 0 for line in truth["geometry"]["lines"] for d in ("in", "out")}
    for c in truth["line_crossings"]:
        counts[(c["line"], c["direction"])] += 1
    return counts


def line_counts_events(events: Iterable[Event]) -> dict[tuple[str, str], int]:
    """Counted crossings per ``(line, direction)`` from ``line_cross`` events."""
    counts: dict[tuple[str, str], int] = {}
    for e in events:
        if e.type is EventType.LINE_CROSS:
            key = (str(e.line), str(e.direction))
            counts[key] = counts.get(key, 0) + 1
    return counts


def line_count_error(counted: dict[tuple[str, str], int], true: dict[tuple[str, str], int]) -> float | None:
    """``sum |counted - true| / sum true`` over every (line, direction) in either; None if nothing is true."""
    total = sum(true.values())
    if total == 0:
        return None
    keys = set(counted) | set(true)
    return sum(abs(counted.get(k, 0) - true.get(k, 0)) for k in keys) / total


def occupancy(visits: Sequence[Interval], zones: Sequence[str], times: Sequence[float]) -> np.ndarray:
    """Occupancy ``(len(zones), len(times))``: visits with ``start <= t <= end`` per zone and time."""
    t = np.asarray(times, np.float64)
    out = np.zeros((len(zones), t.size), np.int64)
    row = {z: i for i, z in enumerate(zones)}
    for v in visits:
        if v.area in row:
            out[row[v.area]] += (t >= v.start - _EPS) & (t <= v.end + _EPS)
    return out


def occupancy_mae(
    found: Sequence[Interval], true: Sequence[Interval], zones: Sequence[str], times: Sequence[float]
) -> float:
    """Mean ``|pipeline occupancy - true occupancy|`` over every (zone, time)."""
    if not zones or not len(times):
        return 0.0
    return float(np.mean(np.abs(occupancy(found, zones, times) - occupancy(true, zones, times))))


def temporal_iou(a: Interval, b: Interval, frame_s: float) -> float:
    """IoU of two intervals, each covering its frames: ``[start, end + frame_s)``."""
    inter = min(a.end, b.end) + frame_s - max(a.start, b.start)
    union = max(a.end, b.end) + frame_s - min(a.start, b.start)
    return max(inter, 0.0) / union if union > 0 else 0.0


def match_intervals(
    found: Sequence[Interval], true: Sequence[Interval], frame_s: float, min_iou: float = MIN_IOU
) -> list[tuple[int, int]]:
    """One-to-one matches ``(found index, true index)`` within each area, maximising summed temporal IoU.

    Args:
        found: The pipeline's intervals.
        true: The truth's intervals.
        frame_s: Length of one frame, seconds (an interval covers its last frame).
        min_iou: Pairs below this IoU are never matched.

    Returns:
        The matched pairs, sorted.

    """
    pairs: list[tuple[int, int]] = []
    for area in sorted({v.area for v in true} & {v.area for v in found}):
        fi = [i for i, v in enumerate(found) if v.area == area]
        ti = [j for j, v in enumerate(true) if v.area == area]
        iou = np.array([[temporal_iou(found[i], true[j], frame_s) for j in ti] for i in fi])
        ok = iou >= min_iou
        rows, cols = linear_sum_assignment(np.where(ok, iou, -1.0), maximize=True)
        pairs += [(fi[r], ti[c]) for r, c in zip(rows, cols, strict=True) if ok[r, c]]
    return sorted(pairs)


def _mean(values: Sequence[float]) -> float | None:
    return float(np.mean(values)) if len(values) else None


def score_scene(truth: dict[str, Any], events: Sequence[Event], times: Sequence[float] | None = None) -> SceneScores:
    """Score a pipeline run's events against the scene's truth.

    Args:
        truth: The scene's ``truth.json`` document.
        events: Everything the pipeline emitted for the scene's camera.
        times: Frame times to compare occupancy at (default: the truth's ``i / fps``).

    Returns:
        The scores (see the module docs).

    """
    fps, n = float(truth["fps"]), int(truth["frame_count"])
    frame_s = 1.0 / fps
    times = [i / fps for i in range(n)] if times is None else times
    end_ts = (n - 1) / fps
    true_lines, counted = line_counts_truth(truth), line_counts_events(events)

    zones = list(truth["geometry"]["zones"])
    tv, fv = truth_visits(truth), event_visits(events, end_ts)
    visit_pairs = match_intervals(fv, tv, frame_s)
    dwell = [abs(fv[i].length_s - tv[j].length_s) for i, j in visit_pairs]

    tq, fq = truth_queue(truth), event_queue(events, end_ts)
    queue_pairs = match_intervals(fq, tq, frame_s)
    served = [(fq[i], tq[j]) for i, j in queue_pairs if fq[i].outcome == tq[j].outcome == "served"]
    true_served = [r.length_s for r in tq if r.outcome == "served"]
    mean_wait = _mean(true_served)
    wait_err = _mean([abs(f.length_s - t.length_s) for f, t in served])
    tp = sum(1 for i, j in queue_pairs if fq[i].outcome == tq[j].outcome == "abandoned")
    n_found = sum(1 for r in fq if r.outcome == "abandoned")
    n_true = sum(1 for r in tq if r.outcome == "abandoned")
    return SceneScores(
        seed=truth.get("seed"),
        people=len(truth["people"]),
        line_count_error=line_count_error(counted, true_lines),
        occupancy_mae=occupancy_mae(fv, tv, zones, times),
        dwell_mae_s=_mean(dwell),
        queue_wait_mae_rel=None if wait_err is None or not mean_wait else wait_err / mean_wait,
        abandon_precision=tp / n_found if n_found else 1.0,
        abandon_recall=tp / n_true if n_true else 1.0,
        crossings_true=sum(true_lines.values()),
        crossings_counted=sum(counted.values()),
        visits_true=len(tv),
        visits_matched=len(visit_pairs),
        visits_spurious=len(fv) - len(visit_pairs),
        served_true=len(true_served),
        served_matched=len(served),
        abandons_true=n_true,
        abandons_found=n_found,
        abandons_matched=tp,
    )


# --- running the pipeline ----------------------------------------------------------------------------


def scene_config(scene_dir: Path, tracker: TrackerConfig | None = None) -> RVAConfig:
    """The scene's ``config.yaml`` with no annotated video or heatmap (and optionally another tracker)."""
    cfg = load_config(scene_dir / "config.yaml")
    update: dict[str, Any] = {"output": OutputConfig(annotated_video=False, heatmap_png=False)}
    if tracker is not None:
        update["tracker"] = tracker
    return cfg.model_copy(update=update)


def run_scene(
    scene_dir: Path, out_dir: Path, detector: Detector | None = None, tracker: TrackerConfig | None = None
) -> list[Event]:
    """Run the standalone runner (detector -> tracker -> analytics) on a scene's video; return its events.

    Args:
        scene_dir: A folder written by :func:`rva.scenes.generate_scene`.
        out_dir: Where the runner writes ``events.jsonl`` and ``summary.json``.
        detector: A ready detector to share between scenes (default: built from the config).
        tracker: Tracker settings (default: the config's, i.e. :class:`~rva.config.TrackerConfig`'s defaults).

    Returns:
        The events the runner wrote.

    """
    from rva.pipeline.runner import StandaloneRunner

    StandaloneRunner(scene_config(scene_dir, tracker), out_dir, detector=detector).run()
    return read_events(out_dir / "events.jsonl")


def detect_video(video: Path, detector: Detector) -> list[Detections]:
    """Run a detector on every frame of a video, in order (to replay trackers and analytics on them)."""
    from rva.scenes.background import read_frames

    return [detector.detect([image])[0] for _, image in read_frames(video)]


def save_detections(path: Path, frames: Sequence[Detections]) -> None:
    """Store per-frame boxes, scores and classes in one ``.npz`` (what the tracker and analytics use)."""
    counts = np.array([len(d) for d in frames], np.int64)
    cat = Detections.merge(list(frames)) if frames else Detections.empty()
    np.savez_compressed(path, counts=counts, xyxy=cat.xyxy, confidence=cat.confidence, class_id=cat.class_id)


def load_detections(path: Path) -> list[Detections]:
    """Inverse of :func:`save_detections`."""
    with np.load(path) as z:
        splits = np.cumsum(z["counts"])[:-1]
        return [
            Detections.from_arrays(b, c, k)
            for b, c, k in zip(
                np.split(z["xyxy"], splits), np.split(z["confidence"], splits), np.split(z["class_id"], splits),
                strict=True,
            )
        ]


def replay_scene(config: RVAConfig, frames: Sequence[Detections], fps: float) -> list[Event]:
    """Run tracker and analytics on stored detections, frame ``i`` at ``i / fps``.

    What the runner does after detection: :class:`~rva.pipeline.camera.CameraPipeline` per frame, then its
    end-of-stream ``finish``.
    """
    from rva.pipeline.camera import CameraPipeline

    camera = config.cameras[0]
    assert camera.frame_size is not None
    pipeline = CameraPipeline(camera, config.tracker, camera.frame_size)
    events: list[Event] = []
    for i, dets in enumerate(frames):
        events += pipeline.step(dets, i / fps).events
    return events + pipeline.finish()
