"""A store drawn on the vtest.avi scene, and the ground plane people walk on.

The layout is what an operator would configure: browsing zones, a directed entrance line, a checkout
queue (waiting area + till), plus what the script needs to move people (queue slots, where people come
in, lanes for walk-throughs) and the scene's static foreground (a lamp post people walk behind).
:meth:`StoreLayout.camera_config` turns it into the RVA config the analytics run with.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from rva.config import CameraConfig, FileSource, LineConfig, QueueConfig, ZoneConfig

Point = tuple[float, float]
Polygon = tuple[Point, ...]

#: A standing person's height in metres: the unit the perspective fit measures.
PERSON_HEIGHT_M = 1.7


@dataclass(frozen=True, slots=True)
class Occluder:
    """A static object of the background that hides people standing behind it.

    Attributes:
        name: What it is.
        polygon: Its outline in frame pixels.
        base_y: Where it stands on the floor: it hides people whose foot y is smaller (farther away).
    """

    name: str
    polygon: Polygon
    base_y: float


@dataclass(frozen=True, slots=True)
class StoreLayout:
    """Zones, entrance line and checkout queue on one camera, plus what the script needs to use them.

    Attributes:
        frame_size: ``(width, height)`` in pixels.
        zones: ``(name, polygon)`` browsing zones.
        entrance: ``(name, start, end)``; ``in`` is right-to-left of start->end on screen (into the store).
        queue_name: Name of the checkout queue.
        queue_polygon: Where people wait.
        service_polygon: The till.
        queue_slots: Standing spots in the queue, front first.
        till: Where the person being served stands.
        door_band: ``(x, y_min, y_max)``: people come in and go out at this x, off screen, within these y.
        inside_door: First point inside the entrance line.
        north_pass: Walkway around the far end of the queue, between the entrance and the aisles.
        till_exit: Route from the till out of the door (crosses the entrance line).
        abandon_exit: Route from beside the queue out of the door, around the till.
        lanes: Walk-through routes (end to end, off screen at both ends), traversed either way.
        fall_lane: Index in ``lanes`` of the route with a fall, and the index of its point where it happens.
        occluders: Static foreground objects.
    """

    frame_size: tuple[int, int]
    zones: tuple[tuple[str, Polygon], ...]
    entrance: tuple[str, Point, Point]
    queue_name: str
    queue_polygon: Polygon
    service_polygon: Polygon
    queue_slots: tuple[Point, ...]
    till: Point
    door_band: tuple[float, float, float]
    inside_door: Point
    north_pass: Point
    till_exit: tuple[Point, ...]
    abandon_exit: tuple[Point, ...]
    lanes: tuple[tuple[Point, ...], ...]
    fall_lane: tuple[int, int]
    occluders: tuple[Occluder, ...] = field(default=())

    def camera_config(self, video: str, camera_id: str = "scene") -> CameraConfig:
        """Build the RVA camera config of this layout, reading ``video``, with default inertia values."""
        name, start, end = self.entrance
        return CameraConfig(
            id=camera_id,
            source=FileSource(path=video),
            frame_size=self.frame_size,
            zones=[ZoneConfig(name=n, polygon=list(p)) for n, p in self.zones],
            lines=[LineConfig(name=name, start=start, end=end)],
            queues=[
                QueueConfig(
                    name=self.queue_name,
                    queue_polygon=list(self.queue_polygon),
                    service_polygon=list(self.service_polygon),
                )
            ],
        )


def stroke(start: Point, end: Point, width: float) -> Polygon:
    """Return the outline of a straight bar of ``width`` pixels from ``start`` to ``end`` (a thin occluder)."""
    (x1, y1), (x2, y2) = start, end
    length = max(float(np.hypot(x2 - x1, y2 - y1)), 1e-9)
    nx, ny = -(y2 - y1) / length * width / 2.0, (x2 - x1) / length * width / 2.0
    return ((x1 + nx, y1 + ny), (x2 + nx, y2 + ny), (x2 - nx, y2 - ny), (x1 - nx, y1 - ny))


#: The store on vtest.avi (768x576): three aisles, an entrance on the right, a checkout queue that
#: recedes from the camera (people in it hide each other), a lamp post in the middle.
VTEST_LAYOUT = StoreLayout(
    frame_size=(768, 576),
    zones=(
        ("aisle_left", ((30.0, 198.0), (250.0, 203.0), (256.0, 262.0), (30.0, 252.0))),
        ("aisle_centre", ((262.0, 250.0), (400.0, 244.0), (412.0, 330.0), (270.0, 338.0))),
        ("promo_lawn", ((60.0, 340.0), (250.0, 340.0), (275.0, 445.0), (45.0, 445.0))),
    ),
    entrance=("entrance", (700.0, 450.0), (700.0, 170.0)),
    queue_name="checkout",
    queue_polygon=((470.0, 215.0), (515.0, 211.0), (604.0, 370.0), (552.0, 370.0)),
    # The till shares the queue's front edge (y = 370): stepping up never leaves both areas.
    service_polygon=((540.0, 370.0), (660.0, 370.0), (662.0, 434.0), (545.0, 438.0)),
    queue_slots=((578.0, 352.0), (556.0, 320.0), (534.0, 290.0), (512.0, 262.0), (491.0, 236.0)),
    till=(604.0, 404.0),
    door_band=(800.0, 240.0, 320.0),
    inside_door=(675.0, 280.0),
    north_pass=(460.0, 180.0),
    till_exit=((690.0, 400.0), (800.0, 392.0)),
    abandon_exit=((470.0, 455.0), (690.0, 440.0), (800.0, 415.0)),
    lanes=(
        ((-40.0, 525.0), (250.0, 505.0), (520.0, 500.0), (808.0, 520.0)),
        ((-40.0, 228.0), (300.0, 222.0), (560.0, 186.0), (690.0, 128.0), (808.0, 100.0)),
        ((-40.0, 300.0), (200.0, 300.0), (300.0, 372.0), (340.0, 400.0), (520.0, 475.0), (808.0, 470.0)),
    ),
    fall_lane=(2, 2),
    occluders=(
        Occluder(
            "lamp_post",
            (
                (398.0, 18.0),
                (440.0, 18.0),
                (440.0, 40.0),
                (437.0, 40.0),
                (437.0, 202.0),
                (444.0, 202.0),
                (444.0, 244.0),
                (437.0, 244.0),
                (438.0, 392.0),
                (428.0, 392.0),
                (428.0, 244.0),
                (412.0, 244.0),
                (412.0, 202.0),
                (428.0, 202.0),
                (428.0, 40.0),
                (398.0, 40.0),
            ),
            392.0,
        ),
        # The tripod on the lawn: its head and three legs, standing around y = 467.
        Occluder("tripod_head", ((502.0, 337.0), (512.0, 337.0), (512.0, 360.0), (502.0, 360.0)), 467.0),
        Occluder("tripod_column", stroke((505.5, 358.0), (504.0, 388.0), 4.0), 467.0),
        Occluder("tripod_leg_left", stroke((503.0, 380.0), (460.5, 469.0), 4.5), 467.0),
        Occluder("tripod_leg_middle", stroke((505.5, 385.0), (508.0, 456.0), 4.0), 467.0),
        Occluder("tripod_leg_right", stroke((507.0, 385.0), (522.5, 479.0), 4.5), 467.0),
    ),
)


@dataclass(frozen=True, slots=True)
class Ground:
    """Pinhole ground plane from the perspective fit: a person's height ``h = a * y + b`` pixels.

    With the camera's roll at zero, a person standing at depth ``Z`` is ``f * 1.7 / Z`` pixels tall, so
    ``Z = f * 1.7 / h(y)`` and the lateral offset is ``X = (x - cx) * 1.7 / h(y)``. Metres on the floor
    then map to pixels consistently: people slow down on screen as they walk away and grow as they come
    near. The focal length only sets the depth scale (how much slower vertical motion looks).

    Attributes:
        a: Height-fit slope.
        b: Height-fit intercept.
        cx: Image centre x.
        focal: Focal length in pixels (about a 57-degree horizontal field of view for 768 px).
    """

    a: float
    b: float
    cx: float = 384.0
    focal: float = 700.0

    def height(self, y: float) -> float:
        """Return a standing person's silhouette height in pixels with feet at image row ``y``."""
        return self.a * y + self.b

    def to_floor(self, x: float, y: float) -> tuple[float, float]:
        """Map an image foot point to floor metres ``(X, Z)``."""
        h = self.height(y)
        if h <= 1.0:
            raise ValueError(f"y={y:g} is above the horizon of the height fit {self.a:g} * y + {self.b:g}")
        return (x - self.cx) * PERSON_HEIGHT_M / h, self.focal * PERSON_HEIGHT_M / h

    def to_image(self, X: float, Z: float) -> tuple[float, float]:
        """Map floor metres ``(X, Z)`` to an image foot point."""
        h = self.focal * PERSON_HEIGHT_M / Z
        return self.cx + X * h / PERSON_HEIGHT_M, (h - self.b) / self.a


def polygon_inset_point(polygon: Polygon, rng: np.random.Generator, margin: float = 0.25) -> Point:
    """Pick a random point well inside a convex quadrilateral-ish polygon (bilinear, away from edges)."""
    pts = np.asarray(polygon, np.float64)
    if pts.shape[0] != 4:
        raise ValueError(f"expected a 4-vertex polygon, got {pts.shape[0]} vertices")
    u, v = rng.uniform(margin, 1.0 - margin, 2)
    top = pts[0] + u * (pts[1] - pts[0])
    bottom = pts[3] + u * (pts[2] - pts[3])
    p = top + v * (bottom - top)
    return float(p[0]), float(p[1])
