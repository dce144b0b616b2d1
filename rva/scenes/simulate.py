"""Frame-by-frame simulation of people following their plans, with a first-in-first-out checkout.

People walk on the floor plane (metres, see :class:`~rva.scenes.layout.Ground`) at their own pace, so
they slow down on screen as they walk away. Where they stop to browse they keep their personal space:
a browsing spot closer than :data:`PERSONAL_SPACE_M` to where someone else stands (or is heading to
stand) moves to the nearest free spot in the zone, as people do; two bodies never share one spot.
The checkout serves one person at a time at the till; the others stand on the queue's spots behind,
each stepping up when the spot ahead frees. A person with a patience leaves the line when it runs out
(and never steps up to the till). Deterministic: no randomness.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol

import numpy as np

from rva.analytics.geometry import points_in_polygon
from rva.scenes.cutouts import CutoutLibrary
from rva.scenes.layout import Ground, Point, StoreLayout

#: Least floor distance between the centres of two people standing still (shoulders are ~0.45 m wide).
PERSONAL_SPACE_M = 0.8


class Person(Protocol):
    """Who an :class:`Actor` plays (a :class:`~rva.scenes.script.CastMember`)."""

    @property
    def id(self) -> int: ...  # noqa: D102
    @property
    def sequence(self) -> int: ...  # noqa: D102
    @property
    def height_factor(self) -> float: ...  # noqa: D102
    @property
    def speed_mps(self) -> float: ...  # noqa: D102
    @property
    def spawn_s(self) -> float: ...  # noqa: D102


class Pose(StrEnum):
    """How a person is drawn."""

    WALKING = "walking"
    STANDING = "standing"
    LYING = "lying"


@dataclass(frozen=True, slots=True)
class PersonState:
    """One person in one frame.

    Attributes:
        person: Scene person id (from 1).
        x: Foot point x in frame pixels (where the bottom-centre of their box goes).
        y: Foot point y.
        pose: Walking, standing or lying.
        sequence: Index of their sprite sequence in the library.
        sprite: Index of the sprite in that sequence.
        flip: Draw mirrored (they walk the other way than the source person did).
        scale: Height relative to the perspective fit at ``y``.
    """

    person: int
    x: float
    y: float
    pose: Pose
    sequence: int
    sprite: int
    flip: bool
    scale: float


# --- tasks -----------------------------------------------------------------------------------------


@dataclass(slots=True)
class Walk:
    """Walk through these image points (converted to floor points when the walk starts), at ``pace``.

    With ``spot_in`` (a zone polygon) the walk ends at a spot to stand at, inside that polygon and clear
    of everyone else's spot (see :data:`PERSONAL_SPACE_M`); the route's last point is the wish.
    """

    route: list[Point]  # image points; converted to floor points when the walk starts
    pace: float = 1.0
    spot_in: tuple[Point, ...] | None = None


@dataclass(slots=True)
class Stay:
    """Stay put for ``seconds`` in ``pose``."""

    seconds: float
    pose: Pose = Pose.STANDING


@dataclass(slots=True)
class Checkout:
    """Join the line, wait, be served for ``service_s`` at the till; or give up after ``patience_s``."""

    service_s: float
    patience_s: float | None  # an abandoner leaves this long after reaching the line


Task = Walk | Stay | Checkout


@dataclass(slots=True)
class _Till:
    """Shared state of the simulation.

    The checkout line in order (front first) and when the till is next free; the floor spots people
    stand at, or are heading to stand at, while browsing (by person id).
    """

    line: list[Actor] = field(default_factory=list)
    busy: bool = False
    free_at: float = 0.0
    spots: dict[int, np.ndarray] = field(default_factory=dict)


#: Offsets (metres) tried around a wished spot that is taken: rings of 12 directions, nearest first.
_RINGS = [
    (r * np.cos(a), r * np.sin(a)) for r in np.arange(0.2, 3.01, 0.2) for a in np.arange(12) * (np.pi / 6.0)
]


def free_spot(
    wish: np.ndarray, taken: Sequence[np.ndarray], polygon: Sequence[Point], ground: Ground
) -> np.ndarray:
    """Return the floor point nearest ``wish`` that is inside ``polygon`` (image) and clear of ``taken``.

    Clear means at least :data:`PERSONAL_SPACE_M` from every taken floor point; when no tried point is
    (a crowded zone), the tried point inside the polygon farthest from everyone is returned.
    """

    def clearance(p: np.ndarray) -> float:
        return min((float(np.hypot(*(p - q))) for q in taken), default=np.inf)

    if clearance(wish) >= PERSONAL_SPACE_M:
        return wish
    best, best_gap = wish, clearance(wish)
    for dx, dy in _RINGS:
        p: np.ndarray = wish + np.array((dx, dy))
        if not points_in_polygon([ground.to_image(*p)], polygon)[0]:
            continue
        gap = clearance(p)
        if gap >= PERSONAL_SPACE_M:
            return p
        if gap > best_gap:
            best, best_gap = p, gap
    return best


class Actor:
    """A person following their plan, one frame at a time.

    Args:
        member: Who they are.
        tasks: Their plan; the first is a walk from where they appear.
        info: Facts about their sprite sequence.
    """

    def __init__(self, member: Person, tasks: list[Task], info: SequenceInfo) -> None:
        self.member, self.tasks, self.info = member, tasks, info
        first = tasks[0]
        assert isinstance(first, Walk)
        self.pos = np.array(first.route[0], np.float64)  # image point; floor point kept alongside
        self.floor = np.zeros(2)
        self.targets: list[np.ndarray] = []
        self.started = False
        self.phase, self.heading, self.pose = 0.0, 1, Pose.WALKING
        self.until = 0.0
        self.q_phase = ""
        self.queued_since: float | None = None
        self.log: list[tuple[float, str]] = []  # what they did and when, for checking the truth against

    def state(self) -> PersonState:
        """Return where they are and how to draw them now."""
        sprite = self.info.stand if self.pose is not Pose.WALKING else int(self.phase) % self.info.loop
        flip = self.info.heading != 0 and self.heading != self.info.heading
        return PersonState(
            self.member.id,
            float(self.pos[0]),
            float(self.pos[1]),
            self.pose,
            self.member.sequence,
            sprite,
            flip,
            self.member.height_factor,
        )

    def step(self, t: float, dt: float, ground: Ground, till: _Till, layout: StoreLayout) -> bool:
        """Advance one frame; False once the plan is done."""
        if not self.tasks:
            return False
        task = self.tasks[0]
        if not self.started:
            self.started = True
            self.floor = np.array(ground.to_floor(*self.pos))
            if not isinstance(task, Stay):
                till.spots.pop(self.member.id, None)  # a person standing still keeps their spot
            if isinstance(task, Walk):
                self.targets = [np.array(ground.to_floor(*p)) for p in task.route]
                if task.spot_in is not None:
                    taken = [q for k, q in till.spots.items() if k != self.member.id]
                    self.targets[-1] = free_spot(self.targets[-1], taken, task.spot_in, ground)
                    till.spots[self.member.id] = self.targets[-1]
            elif isinstance(task, Stay):
                self.until = t + task.seconds
            else:  # head for the side of the line's tail; the place in line is taken on arrival
                self.q_phase = "approach"
                self.targets = [np.array(ground.to_floor(*queue_side(queue_slot(layout, len(till.line)))))]
        if isinstance(task, Walk):
            self.pose = Pose.WALKING
            if self._move(self.member.speed_mps * task.pace * dt, ground):
                self._next()
        elif isinstance(task, Stay):
            self.pose = task.pose
            if t >= self.until - 1e-9:
                self._next()
        else:
            self._checkout(task, t, dt, ground, till, layout)
        return bool(self.tasks)

    def _checkout(self, task: Checkout, t: float, dt: float, ground: Ground, till: _Till, layout: StoreLayout) -> None:
        speed = self.member.speed_mps * dt
        if self.q_phase == "approach":
            self.pose = Pose.WALKING
            if self._move(speed, ground):
                till.line.append(self)
                self.log.append((t, "joined the line"))
                self.q_phase = "queued"
        elif self.q_phase == "queued":
            k = till.line.index(self)
            self.targets = [np.array(ground.to_floor(*queue_slot(layout, k)))]
            arrived = self._move(0.8 * speed, ground)
            self.pose = Pose.STANDING if arrived else Pose.WALKING
            if arrived:
                self.heading = 1  # face the till
                if self.queued_since is None:
                    self.queued_since = t
            if task.patience_s is not None and self.queued_since is not None:
                if t - self.queued_since >= task.patience_s:
                    till.line.remove(self)
                    self.log.append((t, "gave up"))
                    self.tasks[0] = Walk([queue_side((float(self.pos[0]), float(self.pos[1])))])
                    self.started = False  # then on to the plan's way out
            elif arrived and k == 0 and not till.busy and t >= till.free_at:
                till.line.pop(0)
                till.busy = True
                self.q_phase = "to_till"
                self.log.append((t, "stepped up to the till"))
                self.targets = [np.array(ground.to_floor(*layout.till))]
        elif self.q_phase == "to_till":
            self.pose = Pose.WALKING
            if self._move(0.8 * speed, ground):
                self.q_phase, self.until, self.pose = "service", t + task.service_s, Pose.STANDING
        elif t >= self.until - 1e-9:
            till.busy, till.free_at = False, t + 1.0  # the next steps up once this one is clear
            self.log.append((t, "served, leaving"))
            self._next()

    def _next(self) -> None:
        self.tasks.pop(0)
        self.started = False

    def _move(self, budget: float, ground: Ground) -> bool:
        """Walk ``budget`` metres along the targets; True when the last is reached."""
        travelled = 0.0
        while self.targets and budget > 1e-12:
            delta = self.targets[0] - self.floor
            dist = float(np.hypot(*delta))
            if dist <= budget:
                self.floor = self.targets.pop(0)
                budget -= dist
                travelled += dist
            else:
                self.floor = self.floor + delta * (budget / dist)
                travelled += budget
                budget = 0.0
        new = np.array(ground.to_image(*self.floor))
        if abs(new[0] - self.pos[0]) > 0.05:
            self.heading = 1 if new[0] > self.pos[0] else -1
        self.pos = new
        self.phase += travelled / self.info.step_m
        return not self.targets


def queue_slot(layout: StoreLayout, k: int) -> Point:
    """Return the ``k``-th standing spot of the line (front 0), extrapolated past the last one."""
    slots = layout.queue_slots
    if k < len(slots):
        return slots[k]
    (x1, y1), (x2, y2) = slots[-2], slots[-1]
    n = k - len(slots) + 1
    return x2 + n * (x2 - x1), y2 + n * (y2 - y1)


def queue_side(point: tuple[float, float]) -> Point:
    """Return a point beside the queue line (on the side away from the entrance), outside the queue area."""
    return point[0] - 48.0, point[1] + 6.0


@dataclass(frozen=True, slots=True)
class SequenceInfo:
    """What the simulation needs to know about a sprite sequence."""

    loop: int
    stand: int  # narrowest silhouette in the loop: legs together, the best still pose
    heading: int  # source walking direction on screen: -1 left, 1 right, 0 toward/away
    step_m: float  # source metres walked per source frame


def sequence_info(library: CutoutLibrary, ground: Ground) -> list[SequenceInfo]:
    """Gait loop, best standing sprite, walking direction and stride of every sequence of a library."""
    infos = []
    for seq in library.sequences:
        widths = []
        for sp in seq.sprites[: seq.loop]:
            cols = np.flatnonzero((sp.rgba[:, :, 3] >= 128).any(axis=0))
            widths.append((cols[-1] - cols[0] + 1) / max(sp.height, 1) if cols.size else 1.0)
        x, y = seq.sprites[0].src_foot
        a, b = ground.to_floor(x, y), ground.to_floor(x + seq.step[0], y + seq.step[1])
        step_m = max(float(np.hypot(b[0] - a[0], b[1] - a[1])), 0.08)
        heading = 0 if abs(seq.step[0]) < 0.75 else (1 if seq.step[0] > 0 else -1)
        infos.append(SequenceInfo(seq.loop, int(np.argmin(widths)), heading, step_m))
    return infos


def simulate(
    actors: Sequence[Actor], ground: Ground, layout: StoreLayout, duration_s: float, fps: float
) -> tuple[tuple[PersonState, ...], ...]:
    """Run everyone's plans frame by frame.

    Args:
        actors: Everyone; each appears at their ``spawn_s``.
        ground: Floor plane.
        layout: The store (queue spots, till).
        duration_s: Scene length.
        fps: Frame rate; frame ``i`` is at ``i / fps``.

    Returns:
        Per frame, the state of everyone who has appeared and not finished, by id.

    """
    till = _Till()
    dt = 1.0 / fps
    frames = []
    active: list[Actor] = []
    waiting = sorted(actors, key=lambda a: (a.member.spawn_s, a.member.id))
    for i in range(round(duration_s * fps)):
        t = i * dt
        while waiting and waiting[0].member.spawn_s <= t + 1e-9:
            active.append(waiting.pop(0))
        active.sort(key=lambda a: a.member.id)
        frames.append(tuple(a.state() for a in active))
        active = [a for a in active if a.step(t, dt, ground, till, layout)]
    return tuple(frames)
