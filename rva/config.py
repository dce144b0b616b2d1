"""One YAML file configures everything; these pydantic models validate it at start.

A bad config fails before any frame is read, with the field's dotted path in the message
(``cameras.0.zones.1.polygon: ...``). Cameras, zones, lines and queues are config, never code.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

# The alert models live with the alerts; AlertRuleConfig is re-exported here, where users of the config look.
from rva.alerts.config import AlertRuleConfig as AlertRuleConfig
from rva.alerts.config import AlertsConfig
from rva.errors import ConfigError
from rva.service_config import ServicesConfig

# Finite and within a million pixels: huge values would overflow the geometry checks (found by fuzzing the API).
Coordinate = Annotated[float, Field(ge=-1e6, le=1e6, allow_inf_nan=False)]
Point = tuple[Coordinate, Coordinate]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _check_polygon(points: list[Point]) -> list[Point]:
    if len(points) < 3:
        raise ValueError(f"a polygon needs at least 3 points, got {len(points)}")
    # Shoelace area: a degenerate polygon (all points on a line) can contain nobody.
    area = 0.0
    for (x1, y1), (x2, y2) in zip(points, points[1:] + points[:1], strict=True):
        area += x1 * y2 - x2 * y1
    if abs(area) < 1.0:
        raise ValueError("polygon has zero area (are all its points on one line?)")
    return points


# --- sources -------------------------------------------------------------------------------------


class FileSource(_Model):
    """A video file, decoded by FFmpeg (PyAV)."""

    type: Literal["file"] = "file"
    path: str = Field(description="Path to the video file, or 'sample' for the bundled vtest.avi demo clip.")
    loop: bool = Field(False, description="Start again at the end (for soak tests and demos).")
    realtime: bool = Field(False, description="Pace frames at their PTS, like a live camera.")


class StreamSource(_Model):
    """A live network camera (RTSP/RTMP/HTTP), decoded by FFmpeg (PyAV), reconnecting on failure."""

    type: Literal["stream"] = "stream"
    url: str = Field(description="rtsp://, rtsps://, rtmp:// or http(s):// URL of the stream.")
    rtsp_transport: Literal["tcp", "udp"] = Field("tcp", description="RTSP transport; tcp survives lossy links.")
    open_timeout_s: float = Field(5.0, gt=0, le=120, description="Give up opening the stream after this long.")
    read_timeout_s: float = Field(5.0, gt=0, le=120, description="A stream silent this long is declared lost.")
    backoff_initial_s: float = Field(0.5, gt=0, le=60, description="First reconnect delay.")
    backoff_max_s: float = Field(10.0, gt=0, le=600, description="Reconnect delay ceiling (exponential backoff).")
    latest_only: bool = Field(
        True, description="Drop stale frames when analysis falls behind, so a live view never lags."
    )

    @field_validator("url")
    @classmethod
    def _scheme(cls, url: str) -> str:
        if not re.match(r"^(rtsps?|rtmps?|https?|srt|udp|tcp)://", url):
            raise ValueError(f"expected an rtsp://, rtmp:// or http(s):// URL, got {url!r}")
        return url

    @model_validator(mode="after")
    def _backoff_order(self) -> StreamSource:
        if self.backoff_max_s < self.backoff_initial_s:
            raise ValueError("backoff_max_s must be >= backoff_initial_s")
        return self


class UsbSource(_Model):
    """A local V4L2 camera (/dev/videoN)."""

    type: Literal["usb"] = "usb"
    device: str = Field("/dev/video0", description="V4L2 device node.")
    width: int | None = Field(None, gt=0, le=8192, description="Requested capture width.")
    height: int | None = Field(None, gt=0, le=8192, description="Requested capture height.")
    fps: float | None = Field(None, gt=0, le=240, description="Requested capture rate.")


SourceConfig = Annotated[FileSource | StreamSource | UsbSource, Field(discriminator="type")]


# --- analytics -----------------------------------------------------------------------------------


class ZoneConfig(_Model):
    """A polygon on the image; a person is inside when their foot point is."""

    name: str = Field(min_length=1, max_length=64, description="Unique within the camera.")
    polygon: list[Point] = Field(description="Vertices in frame pixels, [[x, y], ...].")
    exit_inertia_s: float = Field(
        1.0, ge=0, le=60, description="Seen outside this long before an exit counts; bridges box flicker."
    )
    unseen_inertia_s: float = Field(
        8.0, ge=0, le=600,
        description="Unseen (the tracker lost the person: hidden behind someone, missed) this long before the "
        "visit ends; the tracker ending the track ends it sooner. At least the tracker's lost_buffer_s, so an "
        "occlusion never splits a visit while the tracker can still find the person again.",
    )
    enter_inertia_s: float = Field(
        0.3, ge=0, le=60, description="Inside this long before an enter counts; ignores someone brushing the edge."
    )
    capacity: int | None = Field(None, ge=1, description="Occupancy limit for alerts.")

    _poly = field_validator("polygon")(lambda cls, v: _check_polygon(v))


class LineConfig(_Model):
    """A directed counting line. ``in`` is a crossing from the right of start→end to its left, on screen."""

    name: str = Field(min_length=1, max_length=64, description="Unique within the camera.")
    start: Point = Field(description="First end point in frame pixels.")
    end: Point = Field(description="Second end point in frame pixels.")
    min_side_s: float = Field(
        0.3, ge=0, le=30, description="Stay on the new side this long before a crossing counts (kills flicker)."
    )

    @model_validator(mode="after")
    def _length(self) -> LineConfig:
        if (self.start[0] - self.end[0]) ** 2 + (self.start[1] - self.end[1]) ** 2 < 4.0:
            raise ValueError("line is shorter than 2 px: start and end must differ")
        return self


class QueueConfig(_Model):
    """A checkout queue: people wait in ``queue_polygon`` and are served in ``service_polygon``."""

    name: str = Field(min_length=1, max_length=64, description="Unique within the camera.")
    queue_polygon: list[Point] = Field(description="Where people wait.")
    service_polygon: list[Point] = Field(description="Where people are served (the till).")
    join_after_s: float = Field(
        2.0, ge=0, le=120, description="In the queue area this long before someone counts as queueing."
    )
    serve_after_s: float = Field(
        0.5, ge=0, le=60, description="At the till this long before someone counts as served (kills box flicker)."
    )
    exit_inertia_s: float = Field(1.5, ge=0, le=60, description="Absence bridged before someone left the queue.")
    service_window_s: float = Field(
        600.0, gt=0, le=86400, description="Served people in this trailing window set the service rate."
    )
    max_length: int | None = Field(None, ge=1, description="Queue length limit for alerts.")

    _qpoly = field_validator("queue_polygon", "service_polygon")(lambda cls, v: _check_polygon(v))


class HeatmapConfig(_Model):
    """Where people stand, accumulated on a grid with exponential decay."""

    cell_px: int = Field(16, ge=2, le=256, description="Grid cell size in pixels.")
    half_life_s: float = Field(300.0, gt=0, le=7 * 86400, description="Weight halves every this many seconds.")
    hotspots: int = Field(5, ge=0, le=100, description="How many hotspots to report.")


class CameraConfig(_Model):
    """One camera and the analytics drawn on it."""

    id: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$", description="Unique camera id (letters, digits, _ -).")
    source: SourceConfig
    analysis_fps: float | None = Field(
        None, gt=0, le=120, description="Analyse at most this many frames per second (None: every frame)."
    )
    frame_size: tuple[int, int] | None = Field(
        None, description="Expected (width, height); geometry is checked against it at start."
    )
    zones: list[ZoneConfig] = Field(default_factory=list)
    lines: list[LineConfig] = Field(default_factory=list)
    queues: list[QueueConfig] = Field(default_factory=list)
    heatmap: HeatmapConfig = Field(default_factory=HeatmapConfig)

    @model_validator(mode="after")
    def _unique_and_inside(self) -> CameraConfig:
        for kind, items in (("zones", self.zones), ("lines", self.lines), ("queues", self.queues)):
            names = [i.name for i in items]
            dupes = sorted({n for n in names if names.count(n) > 1})
            if dupes:
                raise ValueError(f"{kind}: duplicate names {dupes}")
        if self.frame_size is not None:
            check_geometry(self, self.frame_size)
        return self


def check_geometry(camera: CameraConfig, frame_size: tuple[int, int]) -> None:
    """Raise ``ValueError`` naming the first zone/line/queue point outside a ``(w, h)`` frame."""
    w, h = frame_size

    def inside(kind: str, name: str, points: list[Point] | tuple[Point, ...]) -> None:
        for x, y in points:
            if not (0 <= x <= w and 0 <= y <= h):
                raise ValueError(f"{kind} {name!r}: point ({x:g}, {y:g}) is outside the {w}x{h} frame")

    for z in camera.zones:
        inside("zone", z.name, z.polygon)
    for ln in camera.lines:
        inside("line", ln.name, (ln.start, ln.end))
    for q in camera.queues:
        inside("queue", q.name, q.queue_polygon + q.service_polygon)


# --- detector and tracker ------------------------------------------------------------------------


_InputSide = Annotated[int, Field(ge=160, le=1920, multiple_of=32)]


class OnnxDetectorConfig(_Model):
    """An Ultralytics-format YOLO ONNX model run by onnxruntime on the CPU."""

    type: Literal["onnx"] = "onnx"
    model: str = Field(
        "default", description="'default' (the fall-detection YOLOv8, fetched on first use) or a path to a .onnx."
    )
    input_size: int = Field(640, ge=160, le=1920, multiple_of=32, description="Square network input size.")
    input_shape: tuple[_InputSide, _InputSide] | None = Field(
        (640, 480),
        description="(width, height) of a rectangular network input matched to the cameras' aspect "
        "([640, 480] for 4:3, [640, 384] for 16:9; null: square input_size); overrides input_size. "
        "Derived from the model once, cached. 640x480 is 1.3x faster than 640x640 at the same recall.",
    )
    quantized: bool = Field(
        True,
        description="Run a static int8 (QDQ) copy calibrated on the sample clip: ~3x faster on CPU, recall "
        "0.97 of fp32 (made once on first use, ~30 s, cached).",
    )
    confidence: float = Field(0.25, gt=0, lt=1, description="Drop detections scoring below this.")
    iou: float = Field(0.5, gt=0, lt=1, description="NMS IoU threshold.")
    class_map: dict[str, str] = Field(
        default_factory=lambda: {"Normal": "person", "Fall": "person", "person": "person"},
        description="Model class name -> RVA label; classes not listed are dropped.",
    )
    fallen_classes: list[str] = Field(
        default_factory=lambda: ["Fall"], description="Model classes that mean a person lying down."
    )
    threads: int = Field(0, ge=0, le=256, description="onnxruntime intra-op threads (0: one per core).")


class TritonDetectorConfig(OnnxDetectorConfig):
    """The same YOLO model served by a Triton Inference Server, which batches requests across cameras.

    ``model``, ``input_shape``, ``quantized`` and ``threads`` describe the model the repository is
    prepared from (``scripts/prepare_triton_repo.py``); class names come from the server's model config.
    """

    type: Literal["triton"] = "triton"  # type: ignore[assignment]
    url: str = Field("127.0.0.1:8001", description="Triton's gRPC endpoint, host:port.")
    model_name: str = Field("rva_detector", pattern=r"^[A-Za-z0-9_.-]{1,128}$", description="Model to call.")
    model_version: str = Field("", description="Model version ('': the server's version policy).")
    timeout_s: float = Field(
        10.0, gt=0, le=600, description="A request still queued in Triton after this is rejected (and retried)."
    )
    max_inflight: int = Field(
        16, ge=1, le=4096,
        description="Requests in flight at once; Triton's dynamic batcher groups them. Keep the queue they form "
        "shorter than timeout_s of work.",
    )


DetectorConfig = Annotated[OnnxDetectorConfig | TritonDetectorConfig, Field(discriminator="type")]


class TrackerConfig(_Model):
    """ByteTrack parameters. Times are seconds, so they mean the same at any frame rate.

    The defaults fit the default detector, measured on generated ground-truth scenes (bench/accuracy.py):
    it cuts at 0.25 and scores people 0.25-0.6 (median ~0.4), well below the 0.5/0.6 ByteTrack's paper used
    for its detector, which left most people unmatched and started their tracks after they had crossed a line.
    """

    high_threshold: float = Field(
        0.25, gt=0, lt=1,
        description="First-stage association score threshold (the default detector's own cut: every box it "
        "reports is first-stage; the low stage serves detectors run with a lower cut).",
    )
    low_threshold: float = Field(0.1, gt=0, lt=1, description="Detections below this are ignored entirely.")
    new_track_threshold: float = Field(0.3, gt=0, lt=1, description="Score needed to start a new track.")
    match_iou: float = Field(0.2, gt=0, lt=1, description="Minimum IoU for a first-stage match.")
    low_match_iou: float = Field(0.5, gt=0, lt=1, description="Minimum IoU for a second-stage match.")
    fuse_score: bool = Field(
        True, description="Rank first-stage matches by IoU x detection score (ByteTrack's fuse_score)."
    )
    low_score_finds_lost: bool = Field(
        True, description="Let low-score detections re-find lost tracks too (a partly hidden person reappearing)."
    )
    lost_similarity: float = Field(
        0.8, gt=0, le=1,
        description="First-stage IoU of lost tracks is scaled by this, so a drifting prediction does not steal "
        "a visible neighbour's box (1 = no preference).",
    )
    lost_buffer_s: float = Field(
        6.0, ge=0, le=120,
        description="Keep a lost track this long for re-association (a shopper hidden behind another for a few "
        "seconds keeps their id, their zone visit and their place in the queue).",
    )
    min_hits: int = Field(3, ge=1, le=30, description="Matched frames before a track is confirmed and gets an id.")

    @model_validator(mode="after")
    def _order(self) -> TrackerConfig:
        if self.low_threshold >= self.high_threshold:
            raise ValueError("low_threshold must be below high_threshold")
        return self


class OutputConfig(_Model):
    """What the standalone runner writes."""

    annotated_video: bool = Field(True, description="Write annotated.mp4 (boxes, ids, zones, lines, counts).")
    heatmap_png: bool = Field(True, description="Write heatmap.png over a frame of the scene.")


class RVAConfig(_Model):
    """The whole configuration file."""

    store: str = Field("default", pattern=r"^[A-Za-z0-9_-]{1,64}$", description="Store id.")
    cameras: list[CameraConfig] = Field(min_length=1, description="At least one camera.")
    detector: DetectorConfig = Field(default_factory=OnnxDetectorConfig)
    tracker: TrackerConfig = Field(default_factory=TrackerConfig)
    output: OutputConfig = Field(default_factory=OutputConfig)
    services: ServicesConfig = Field(default_factory=ServicesConfig)
    alerts: AlertsConfig = Field(default_factory=AlertsConfig)

    @model_validator(mode="after")
    def _unique_cameras(self) -> RVAConfig:
        ids = [c.id for c in self.cameras]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"cameras: duplicate ids {dupes}")
        return self


_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def _interpolate(text: str) -> str:
    """Replace ``${VAR}`` / ``${VAR:-default}`` with environment values (secrets stay out of files)."""

    def repl(m: re.Match[str]) -> str:
        value = os.environ.get(m.group(1), m.group(2))
        if value is None:
            raise ConfigError(f"environment variable {m.group(1)} is not set (used as ${{{m.group(1)}}})")
        return value

    return _ENV.sub(repl, text)


def format_validation_error(err: ValidationError, origin: str) -> str:
    """One line per problem: ``path.to.field: message``."""
    lines = [f"invalid config {origin}:"]
    for e in err.errors():
        path = ".".join(str(p) for p in e["loc"]) or "(top level)"
        lines.append(f"  {path}: {e['msg']}")
    return "\n".join(lines)


def parse_config(raw: dict[str, Any], origin: str = "<dict>") -> RVAConfig:
    """Validate a loaded mapping; raise :class:`ConfigError` naming each bad field."""
    try:
        return RVAConfig.model_validate(raw)
    except ValidationError as err:
        raise ConfigError(format_validation_error(err, origin)) from None


def load_config(path: str | Path) -> RVAConfig:
    """Read, interpolate and validate a YAML config file."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as err:
        raise ConfigError(f"cannot read config {p}: {err.strerror}") from None
    try:
        raw = yaml.safe_load(_interpolate(text))
    except yaml.YAMLError as err:
        raise ConfigError(f"config {p} is not valid YAML: {err}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"config {p}: expected a mapping at the top level, got {type(raw).__name__}")
    return parse_config(raw, str(p))
