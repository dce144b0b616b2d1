"""The cast and what they do: plans of walks, dwells, queueing and a fall, simulated into per-frame states.

Everything random is drawn from one ``numpy`` Generator while casting, in a fixed order; the simulation
that follows is deterministic. People walk on the floor plane (metres, see
:class:`~rva.scenes.layout.Ground`) at their own pace, so they slow down on screen as they walk away.
The checkout is first in, first out: one person at the till, the others on the queue's standing spots
behind, each stepping up when the spot ahead frees; an abandoner leaves the line after their patience
runs out (never stepping up to the till).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np

from rva.scenes.cutouts import CutoutLibrary
from rva.scenes.layout import Ground, Point, StoreLayout, polygon_inset_point


class Pose(StrEnum):
    """How a person is drawn."""

    WALKING = "walking"
    STANDING = "standing"
    LYING = "lying"


class Role(StrEnum):
    """What a person came to do."""

    SHOPPER = "shopper"  # browses, queues, is served, leaves through the entrance
    BROWSER = "browser"  # browses and leaves through the entrance
    ABANDONER = "abandoner"  # browses, queues, gives up, leaves through the entrance
    WALKER = "walker"  # walks through without stopping (never crosses the entrance segment)
    FALLER = "faller"  # walks through, falls and lies on the floor a while, gets up, walks on


#: Who the first people are, in order; later ones repeat the tail. ``WALKER`` pairs pass each other.
ROLE_ORDER = (Role.SHOPPER, "pair", Role.SHOPPER, Role.BROWSER, Role.ABANDONER, Role.FALLER,
              Role.SHOPPER, Role.BROWSER, Role.WALKER)
ROLE_REPEAT = (Role.SHOPPER, Role.BROWSER, Role.WALKER)


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


@dataclass(frozen=True, slots=True)
class CastMember:
    """A person of the scene and their plan.

    Attributes:
        id: Scene person id, from 1.
        role: What they came to do.
        sequence: Library sprite sequence that plays them.
        source_person: Identity of the real person in the source clip.
        height_factor: Height relative to the perspective fit.
        speed_mps: Walking speed on the floor.
        spawn_s: When they appear (off screen, walking in).
        plan: Human-readable steps of their plan.
    """

    id: int
    role: Role
    sequence: int
    source_person: int
    height_factor: float
    speed_mps: float
    spawn_s: float
    plan: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Script:
    """A whole scene before rendering: the cast and every frame's people.

    Attributes:
        seed: Seed it was made from.
        fps: Frame rate; frame ``i`` is at ``i / fps`` seconds.
        layout: The store.
        ground: Floor plane (from the library's height fit).
        cast: Everyone, by id.
        frames: Per frame, the people in the scene (on screen or just off it).
    """

    seed: int
    fps: float
    layout: StoreLayout
    ground: Ground
    cast: tuple[CastMember, ...]
    frames: tuple[tuple[PersonState, ...], ...]


# --- tasks -----------------------------------------------------------------------------------------


@dataclass(slots=True)
class _Walk:
    route: list[Point]  # image points; converted to floor points when the walk starts
    pace: float = 1.0


@dataclass(slots=True)
class _Stay:
    seconds: float
    pose: Pose = Pose.STANDING


@dataclass(slots=True)
class _Checkout:
    service_s: float
    patience_s: float | None  # an abandoner leaves this long after reaching the line


_Task = _Walk | _Stay | _Checkout


@dataclass(slots=True)
class _Till:
    """Shared checkout state: the line in order (front first) and when the till is next free."""

    line: list[_Agent] = field(default_factory=list)
    busy: bool = False
    free_at: float = 0.0


class _Agent:
    def __init__(self, member: CastMember, tasks: list[_Task], info: _SeqInfo) -> None:
        self.member, self.tasks, self.info = member, tasks, info
        first = tasks[0]
        assert isinstance(first, _Walk)
        self.pos = np.array(first.route[0], np.float64)  # image point; floor point kept alongside
        self.floor = np.zeros(2)
        self.targets: list[np.ndarray] = []
        self.started = False
        self.phase, self.heading, self.pose = 0.0, 1, Pose.WALKING
        self.until = 0.0
        self.q_phase = ""
        self.queued_since: float | None = None

    def state(self) -> PersonState:
        sprite = self.info.stand if self.pose is not Pose.WALKING else int(self.phase) % self.info.loop
        flip = self.info.heading != 0 and self.heading != self.info.heading
        return PersonState(self.member.id, float(self.pos[0]), float(self.pos[1]), self.pose,
                           self.member.sequence, sprite, flip, self.member.height_factor)

    def step(self, t: float, dt: float, ground: Ground, till: _Till, layout: StoreLayout) -> bool:
        """Advance one frame; False once the plan is done."""
        if not self.tasks:
            return False
        task = self.tasks[0]
        if not self.started:
            self.started = True
            self.floor = np.array(ground.to_floor(*self.pos))
            if isinstance(task, _Walk):
                self.targets = [np.array(ground.to_floor(*p)) for p in task.route]
            elif isinstance(task, _Stay):
                self.until = t + task.seconds
            else:  # head for the side of the line's tail; the place in line is taken on arrival
                self.q_phase = "approach"
                self.targets = [np.array(ground.to_floor(*_side(_slot(layout, len(till.line)))))]
        if isinstance(task, _Walk):
            self.pose = Pose.WALKING
            if self._move(self.member.speed_mps * task.pace * dt, ground):
                self._next()
        elif isinstance(task, _Stay):
            self.pose = task.pose
            if t >= self.until - 1e-9:
                self._next()
        else:
            self._checkout(task, t, dt, ground, till, layout)
        return bool(self.tasks)

    def _checkout(self, task: _Checkout, t: float, dt: float, ground: Ground, till: _Till, layout: StoreLayout) -> None:
        speed = self.member.speed_mps * dt
        if self.q_phase == "approach":
            self.pose = Pose.WALKING
            if self._move(speed, ground):
                till.line.append(self)
                self.q_phase = "queued"
        elif self.q_phase == "queued":
            k = till.line.index(self)
            self.targets = [np.array(ground.to_floor(*_slot(layout, k)))]
            arrived = self._move(0.8 * speed, ground)
            self.pose = Pose.STANDING if arrived else Pose.WALKING
            if arrived:
                self.heading = 1  # face the till
                if self.queued_since is None:
                    self.queued_since = t
            if task.patience_s is not None and self.queued_since is not None:
                if t - self.queued_since >= task.patience_s:
                    till.line.remove(self)
                    self.tasks[0] = _Walk([_side((float(self.pos[0]), float(self.pos[1])))])
                    self.started = False  # then on to the plan's way out
            elif arrived and k == 0 and not till.busy and t >= till.free_at:
                till.line.pop(0)
                till.busy = True
                self.q_phase = "to_till"
                self.targets = [np.array(ground.to_floor(*layout.till))]
        elif self.q_phase == "to_till":
            self.pose = Pose.WALKING
            if self._move(0.8 * speed, ground):
                self.q_phase, self.until, self.pose = "service", t + task.service_s, Pose.STANDING
        elif t >= self.until - 1e-9:
            till.busy, till.free_at = False, t + 1.0  # the next steps up once this one is clear
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


def _slot(layout: StoreLayout, k: int) -> Point:
    slots = layout.queue_slots
    if k < len(slots):
        return slots[k]
    (x1, y1), (x2, y2) = slots[-2], slots[-1]
    n = k - len(slots) + 1
    return x2 + n * (x2 - x1), y2 + n * (y2 - y1)


def _side(point: tuple[float, float]) -> Point:
    """A point beside the queue line (on the side away from the entrance), outside the queue area."""
    return point[0] - 48.0, point[1] + 6.0


# --- casting ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _SeqInfo:
    loop: int
    stand: int  # narrowest silhouette in the loop: legs together, the best still pose
    heading: int  # source walking direction on screen: -1 left, 1 right, 0 toward/away
    step_m: float  # source metres walked per source frame


def _sequence_info(library: CutoutLibrary, ground: Ground) -> list[_SeqInfo]:
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
        infos.append(_SeqInfo(seq.loop, int(np.argmin(widths)), heading, step_m))
    return infos


def _roles(n: int) -> list[Role | str]:
    roles: list[Role | str] = []
    order = list(ROLE_ORDER)
    while sum(2 if r == "pair" else 1 for r in roles) < n:
        role = order.pop(0) if order else ROLE_REPEAT[(len(roles) - len(ROLE_ORDER)) % len(ROLE_REPEAT)]
        left = n - sum(2 if r == "pair" else 1 for r in roles)
        roles.append(Role.WALKER if role == "pair" and left < 2 else role)
    return roles


def _cast_sequences(library: CutoutLibrary, n: int, rng: np.random.Generator) -> list[int]:
    """One sequence per person, distinct source people while there are enough, walkers preferred."""
    good = [i for i, s in enumerate(library.sequences) if s.loop >= 4 and s.height >= 60 and abs(s.step[0]) >= 1.5]
    pool = good or list(range(len(library.sequences)))
    if not pool:
        raise ValueError("the cut-out library is empty")
    by_person: dict[int, list[int]] = {}
    for i in pool:
        by_person.setdefault(library.sequences[i].person, []).append(i)
    people = sorted(by_person)
    order = [people[i] for i in rng.permutation(len(people))]
    return [by_person[order[k % len(order)]][(k // len(order)) % len(by_person[order[k % len(order)]])]
            for k in range(n)]


def _zone_visit(layout: StoreLayout, zone: int, rng: np.random.Generator, stops: int) -> list[_Walk | _Stay]:
    polygon = layout.zones[zone][1]
    tasks: list[_Walk | _Stay] = []
    for _ in range(stops):
        tasks += [_Walk([polygon_inset_point(polygon, rng)], pace=0.7), _Stay(float(rng.uniform(3.0, 8.0)))]
    return tasks


def _door(layout: StoreLayout, rng: np.random.Generator) -> Point:
    x, y0, y1 = layout.door_band
    return x, float(rng.uniform(y0, y1))


def _shop_plan(role: Role, layout: StoreLayout, rng: np.random.Generator) -> tuple[list[_Task], list[str]]:
    """Come in, browse one or two zones, then queue (shopper, abandoner) or leave (browser)."""
    zones = rng.permutation(len(layout.zones))[: 1 if role is Role.ABANDONER else int(rng.integers(1, 3))]
    tasks: list[_Task] = [_Walk([_door(layout, rng), layout.inside_door, layout.north_pass])]
    plan = []
    for z in zones.tolist():
        tasks += _zone_visit(layout, z, rng, 1 if role is Role.ABANDONER else 2)
        plan.append(f"browse {layout.zones[z][0]}")
    if role is Role.BROWSER:
        tasks.append(_Walk([layout.north_pass, layout.inside_door, _door(layout, rng)]))
    elif role is Role.SHOPPER:
        service = float(rng.uniform(5.0, 11.0))
        tasks += [_Checkout(service, None), _Walk(list(layout.till_exit))]
        plan.append(f"queue, served for {service:.1f} s")
    else:
        patience = float(rng.uniform(6.0, 10.0))
        tasks += [_Checkout(0.0, patience), _Walk(list(layout.abandon_exit))]
        plan.append(f"queue, give up after {patience:.1f} s")
    return tasks, [*plan, "leave through the entrance"]


def _time_to_queue(tasks: Sequence[_Task], layout: StoreLayout, ground: Ground, speed: float) -> float:
    """Seconds from appearing to reaching the queue, if everything goes to plan."""
    first = tasks[0]
    assert isinstance(first, _Walk)
    here, total = ground.to_floor(*first.route[0]), 0.0
    for task in tasks:
        if isinstance(task, _Stay):
            total += task.seconds
            continue
        route = task.route if isinstance(task, _Walk) else [_side(_slot(layout, 1))]
        pace = task.pace if isinstance(task, _Walk) else 1.0
        for point in route:
            there = ground.to_floor(*point)
            total += float(np.hypot(there[0] - here[0], there[1] - here[1])) / (speed * pace)
            here = there
        if isinstance(task, _Checkout):
            return total
    return total


def make_script(
    library: CutoutLibrary, layout: StoreLayout, seed: int, duration_s: float = 120.0, people: int = 12,
    fps: float = 10.0,
) -> Script:
    """Cast ``people`` people with plans drawn from ``seed`` and simulate ``duration_s`` of them.

    Shoppers and the abandoner are timed to reach the checkout in a rush (a few seconds apart, from a
    third of the way in), so a line forms; the abandoner arrives third, behind people being served.

    Args:
        library: Cut-outs to play the people, and the perspective fit.
        layout: The store.
        seed: Seed of the one ``numpy`` Generator everything random is drawn from.
        duration_s: Scene length in seconds.
        people: How many people appear (some may still be on their way in when the scene ends).
        fps: Frames per second.

    Returns:
        The script: cast and per-frame states.

    """
    if people < 1 or duration_s <= 0 or fps <= 0:
        raise ValueError(f"expected people >= 1, duration_s > 0, fps > 0; got {people}, {duration_s}, {fps}")
    rng = np.random.default_rng(seed)
    ground = Ground(*library.height_fit, cx=layout.frame_size[0] / 2.0)
    infos = _sequence_info(library, ground)
    seqs = _cast_sequences(library, people, rng)
    d = duration_s
    arrival = float(rng.uniform(0.42, 0.5)) * d  # the checkout rush
    members: list[tuple[CastMember, list[_Task]]] = []
    for role in _roles(people):
        height, speed = float(rng.uniform(0.93, 1.07)), float(rng.uniform(1.0, 1.4))
        if role == "pair":
            members += _walker_pair(layout, ground, rng, d, (height, speed), (rng.uniform(0.93, 1.07), rng.uniform(1.0, 1.4)))
            continue
        assert isinstance(role, Role)
        if role in (Role.SHOPPER, Role.BROWSER, Role.ABANDONER):
            tasks, plan = _shop_plan(role, layout, rng)
            if role is Role.BROWSER:
                spawn = float(rng.uniform(0.0, 0.6 * d))
            else:
                spawn = max(0.0, arrival - _time_to_queue(tasks, layout, ground, speed))
                arrival += float(rng.uniform(2.5, 6.0))
        elif role is Role.FALLER:
            lane_i, at = layout.fall_lane
            lane = list(layout.lanes[lane_i])
            lie_s = float(rng.uniform(8.0, 12.0))
            tasks = [_Walk(lane[: at + 1]), _Stay(0.3), _Stay(lie_s, Pose.LYING), _Stay(1.0), _Walk(lane[at:])]
            plan = [f"walk, fall and lie {lie_s:.1f} s at ({lane[at][0]:g}, {lane[at][1]:g}), walk on"]
            spawn = float(rng.uniform(0.15 * d, 0.45 * d))
        else:
            tasks, plan = [_Walk(_lane(layout, rng))], ["walk through"]
            spawn = float(rng.uniform(0.0, max(d - 15.0, 0.0)))
        members.append((CastMember(0, role, -1, -1, height, speed, spawn, tuple(plan)), tasks))
    agents = []
    for i, ((m, tasks), seq) in enumerate(zip(members, seqs, strict=True)):
        cast = CastMember(i + 1, m.role, seq, library.sequences[seq].person, m.height_factor, m.speed_mps,
                          round(float(m.spawn_s), 3), m.plan)
        agents.append(_Agent(cast, tasks, infos[seq]))
    return Script(seed, fps, layout, ground, tuple(a.member for a in agents), _simulate(agents, ground, layout, d, fps))


def _lane(layout: StoreLayout, rng: np.random.Generator, offset: float | None = None) -> list[Point]:
    lane = list(layout.lanes[int(rng.integers(len(layout.lanes)))])
    if rng.random() < 0.5:
        lane.reverse()
    dy = float(rng.uniform(-15.0, 15.0)) if offset is None else offset
    return [(x, y + dy) for x, y in lane]


def _walker_pair(
    layout: StoreLayout, ground: Ground, rng: np.random.Generator, d: float, first: tuple[float, float],
    second: tuple[float, float],
) -> list[tuple[CastMember, list[_Task]]]:
    """Two walkers on one lane in opposite directions, timed to pass each other, the second farther away.

    ``first`` and ``second`` are each ``(height_factor, speed_mps)``.
    """
    lane = list(layout.lanes[0])
    near = [(x, y + 10.0) for x, y in lane]
    far = [(x, y - 28.0) for x, y in reversed(lane)]
    length = sum(float(np.hypot(*np.subtract(ground.to_floor(*b), ground.to_floor(*a)))) for a, b in zip(lane, lane[1:]))
    meet, t_meet = float(rng.uniform(0.35, 0.65)), float(rng.uniform(0.25, 0.6)) * d
    t1, t2 = t_meet - meet * length / first[1], t_meet - (1 - meet) * length / second[1]
    shift = max(0.0, -min(t1, t2))
    plan = ("walk through, passing another walker",)
    return [
        (CastMember(0, Role.WALKER, -1, -1, first[0], first[1], t1 + shift, plan), [_Walk(near)]),
        (CastMember(0, Role.WALKER, -1, -1, float(second[0]), float(second[1]), t2 + shift, plan), [_Walk(far)]),
    ]


def _simulate(
    agents: list[_Agent], ground: Ground, layout: StoreLayout, duration_s: float, fps: float
) -> tuple[tuple[PersonState, ...], ...]:
    till = _Till()
    dt = 1.0 / fps
    frames = []
    active: list[_Agent] = []
    waiting = sorted(agents, key=lambda a: (a.member.spawn_s, a.member.id))
    for i in range(int(round(duration_s * fps))):
        t = i * dt
        while waiting and waiting[0].member.spawn_s <= t + 1e-9:
            active.append(waiting.pop(0))
        active.sort(key=lambda a: a.member.id)
        frames.append(tuple(a.state() for a in active))
        active = [a for a in active if a.step(t, dt, ground, till, layout)]
    return tuple(frames)
