"""The standalone (single-box) runner: sources -> detector -> per-camera tracking and analytics -> files.

Decode runs in each source's own thread, so it overlaps inference here; one dead camera never
stalls another. Outputs are published atomically at the end (see :mod:`rva.pipeline.outputs`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2

from rva.alerts import AlertEngine
from rva.config import RVAConfig
from rva.core import Event, EventType, Frame
from rva.detect import Detector, create_detector
from rva.pipeline.annotate import SceneBackground, draw_header, draw_scene, draw_tracks, render_heatmap
from rva.pipeline.camera import CameraPipeline
from rva.pipeline.outputs import EventLog, VideoWriter, write_json_atomic
from rva.sources import MultiSource, SourceStatus, VideoSource, open_source

ProgressFn = Callable[[str, int], None]


@dataclass
class _CameraOutputs:
    pipeline: CameraPipeline
    video: VideoWriter | None
    background: SceneBackground = field(default_factory=SceneBackground)
    frames: int = 0
    first_pts: float | None = None
    last_pts: float = 0.0


@dataclass
class StageTimes:
    """Wall time spent per stage, seconds."""

    detect: float = 0.0
    track_analytics: float = 0.0
    annotate_encode: float = 0.0
    waiting_for_frames: float = 0.0

    def as_ms_per_frame(self, frames: int) -> dict[str, float]:
        """Mean milliseconds per processed frame for each stage."""
        n = max(frames, 1)
        return {
            "detect": round(self.detect / n * 1000, 2),
            "track_analytics": round(self.track_analytics / n * 1000, 2),
            "annotate_encode": round(self.annotate_encode / n * 1000, 2),
            "waiting_for_frames": round(self.waiting_for_frames / n * 1000, 2),
        }


def _name(base: str, ext: str, camera: str, many: bool) -> str:
    return f"{base}-{camera}.{ext}" if many else f"{base}.{ext}"


class StandaloneRunner:
    """Runs every configured camera in one process and writes the results to ``out_dir``.

    Args:
        config: The validated configuration.
        out_dir: Where ``summary.json``, ``events.jsonl``, ``heatmap.png`` and ``annotated.mp4`` go.
        detector: A ready detector (tests share one); built from ``config.detector`` when omitted.
        max_frames: Stop each camera after this many analysed frames (None: until the sources end).
        progress: Called as ``progress(camera, frames_done)`` after each frame.
    """

    def __init__(
        self,
        config: RVAConfig,
        out_dir: Path,
        *,
        detector: Detector | None = None,
        max_frames: int | None = None,
        progress: ProgressFn | None = None,
    ) -> None:
        self.config = config
        self.out_dir = Path(out_dir)
        self.max_frames = max_frames
        self.progress = progress
        self._detector = detector
        self._owns_detector = detector is None
        self.sources: dict[str, VideoSource] = {}
        self.source_states: dict[str, SourceStatus] = {}
        self.times = StageTimes()
        self._stop = threading.Event()
        alerts = config.alerts
        self.alerts = AlertEngine(config.store, alerts.rules, upright_s=alerts.upright_s) if alerts.rules else None
        self.alert_counts: dict[str, dict[str, Any]] = {}

    def stop(self) -> None:
        """Ask a running :meth:`run` to finish after the current frame (thread-safe)."""
        self._stop.set()

    def _all_reached(self, state: dict[str, _CameraOutputs], cams: dict[str, Any]) -> bool:
        """Every camera analysed ``max_frames`` frames, or finished its source."""
        assert self.max_frames is not None
        return all(
            (cid in state and state[cid].frames >= self.max_frames) or self.sources[cid].finished for cid in cams
        )

    def open_sources(self) -> dict[str, VideoSource]:
        """Open every camera's source (raises :class:`~rva.errors.SourceError` for a bad file)."""
        if not self.sources:
            for cam in self.config.cameras:
                self.sources[cam.id] = open_source(cam)
        return self.sources

    def run(self) -> dict[str, Any]:
        """Process until every source ends (or ``max_frames``, or Ctrl-C); return the summary."""
        self.out_dir.mkdir(parents=True, exist_ok=True)
        summary_path = self.out_dir / "summary.json"
        summary_path.unlink(missing_ok=True)
        sources = self.open_sources()
        detector = self._detector or create_detector(self.config.detector)
        cams = {c.id: c for c in self.config.cameras}
        many = len(cams) > 1
        state: dict[str, _CameraOutputs] = {}
        log = EventLog(self.out_dir / "events.jsonl")
        interrupted = False
        self._stop.clear()
        started = time.perf_counter()
        try:
            with MultiSource(list(sources.values())) as multi:
                while not multi.finished and not self._stop.is_set():
                    t_wait = time.perf_counter()
                    got = multi.read(timeout=0.2)
                    self.times.waiting_for_frames += time.perf_counter() - t_wait
                    if got is None:
                        continue
                    _camera, item = got
                    if isinstance(item, SourceStatus):
                        self.source_states[item.camera] = item
                        event = item.to_event()
                        log.write([event, *(self.alerts.on_event(event) if self.alerts else [])])
                        continue
                    self._process(item, cams, state, detector, log, many)
                    if self.max_frames is not None and self._all_reached(state, cams):
                        break
        except KeyboardInterrupt:
            interrupted = True  # Ctrl-C on a live run: finish cleanly and keep everything so far
        except BaseException:
            log._close()
            for st in state.values():
                if st.video is not None:
                    st.video._close()
            raise
        finally:
            for src in sources.values():
                src.close()
            if self._owns_detector:
                detector.close()
        wall = time.perf_counter() - started
        for st in state.values():
            final = st.pipeline.finish()
            log.write(final)
            self._count_alerts(final)
        log.commit()
        for st in state.values():
            if st.video is not None:
                st.video.commit()
        summary = self._summary(state, wall, interrupted, log.count)
        self._write_heatmaps(state, many)
        write_json_atomic(summary_path, summary)
        return summary

    # --- per frame ------------------------------------------------------------------------------

    def _process(
        self,
        frame: Frame,
        cams: dict[str, Any],
        state: dict[str, _CameraOutputs],
        detector: Detector,
        log: EventLog,
        many: bool,
    ) -> None:
        st = state.get(frame.camera)
        if st is None:
            cam = cams[frame.camera]
            video = None
            if self.config.output.annotated_video:
                fps = self._fps_hint(frame.camera)
                video = VideoWriter(self.out_dir / _name("annotated", "mp4", frame.camera, many), fps, frame.size)
            pipeline = CameraPipeline(cam, self.config.tracker, frame.size, self.alerts)
            st = state[frame.camera] = _CameraOutputs(pipeline, video)
        if self.max_frames is not None and st.frames >= self.max_frames:
            return
        t0 = time.perf_counter()
        detections = detector.detect([frame.image])[0]
        t1 = time.perf_counter()
        step = st.pipeline.step(detections, frame.pts)
        t2 = time.perf_counter()
        log.write(step.events)
        self._count_alerts(step.events)
        st.background.add(frame.image)
        if st.video is not None:
            img = draw_scene(frame.image, st.pipeline.camera, st.pipeline.analytics.live())
            draw_tracks(img, step.tracked)
            draw_header(img, f"{frame.camera}  t={frame.pts:7.1f}s  people={len(step.tracked)}")
            st.video.write(img, frame.pts)
        t3 = time.perf_counter()
        self.times.detect += t1 - t0
        self.times.track_analytics += t2 - t1
        self.times.annotate_encode += t3 - t2
        st.frames += 1
        st.first_pts = frame.pts if st.first_pts is None else st.first_pts
        st.last_pts = frame.pts
        if self.progress is not None:
            self.progress(frame.camera, st.frames)

    def _count_alerts(self, events: list[Event]) -> None:
        for e in events:
            if e.type is EventType.ALERT:
                rule = str(e.attrs.get("rule"))
                row = self.alert_counts.setdefault(rule, {"kind": e.attrs.get("kind"), "severity":
                                                          e.attrs.get("severity"), "fired": 0, "first_ts": e.ts})
                row["fired"] += 1

    def _fps_hint(self, camera: str) -> float:
        fps = self.sources[camera].fps
        cam_fps = next(c.analysis_fps for c in self.config.cameras if c.id == camera)
        return float(cam_fps or fps or 25.0)

    # --- results --------------------------------------------------------------------------------

    def _summary(
        self, state: dict[str, _CameraOutputs], wall: float, interrupted: bool, events: int
    ) -> dict[str, Any]:
        frames = sum(s.frames for s in state.values())
        seconds = sum((s.last_pts - (s.first_pts or 0.0)) for s in state.values() if s.frames)
        per_camera: dict[str, Any] = {}
        merged: dict[str, dict[str, Any]] = {"lines": {}, "zones": {}, "queues": {}}
        many = len(self.config.cameras) > 1
        for cam_id in (c.id for c in self.config.cameras):
            status = self.source_states.get(cam_id)
            source = {
                "state": str(status.state) if status else "unknown",
                "error": status.error if status else None,
                "frames_dropped": self.sources[cam_id].frames_dropped,
            }
            st = state.get(cam_id)
            if st is None:  # never delivered a frame (e.g. a camera that stayed unreachable)
                per_camera[cam_id] = {"source": source, "frames": 0}
                continue
            cam_summary = st.pipeline.analytics.summary()
            per_camera[cam_id] = {
                "source": source,
                "frames": st.frames,
                "seconds": round(st.last_pts - (st.first_pts or 0.0), 3),
                "tracks": st.pipeline.confirmed_tracks,
                **cam_summary,
            }
            for kind in merged:
                for name, value in cam_summary.get(kind, {}).items():
                    merged[kind][f"{cam_id}/{name}" if many else name] = value
        return {
            "complete": not interrupted,
            "store": self.config.store,
            "frames": frames,
            "seconds": round(seconds, 3),
            "wall_s": round(wall, 3),
            "fps": round(frames / wall, 2) if wall > 0 else 0.0,
            "tracks": sum(s.pipeline.confirmed_tracks for s in state.values()),
            "events": events,
            **merged,
            "alerts": self.alert_counts,
            "cameras": per_camera,
            "stage_ms_per_frame": self.times.as_ms_per_frame(frames),
        }

    def _write_heatmaps(self, state: dict[str, _CameraOutputs], many: bool) -> None:
        if not self.config.output.heatmap_png:
            return
        for cam_id, st in state.items():
            background = st.background.image()
            if background is None:
                continue
            heat = st.pipeline.analytics.heatmap
            img = render_heatmap(
                background, heat.grid(st.last_pts), st.pipeline.camera.heatmap.cell_px, heat.hotspots(st.last_pts)
            )
            path = self.out_dir / _name("heatmap", "png", cam_id, many)
            partial = path.with_name(path.name + ".part.png")
            cv2.imwrite(str(partial), img)
            partial.replace(path)
