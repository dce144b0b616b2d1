"""The cast and what they do: plans of walks, dwells, queueing and a fall, simulated into per-frame states.

Everything random is drawn from one ``numpy`` Generator while casting, in a fixed order; the simulation
that follows (:mod:`rva.scenes.simulate`) is deterministic. The checkout is first in, first out; an
abandoner leaves the line when their patience runs out, never stepping up to the till.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from itertools import pairwise

import numpy as np

from rva.scenes.cutouts import CutoutLibrary, appearance
from rva.scenes.layout import Ground, Point, StoreLayout, polygon_inset_point
from rva.scenes.simulate import (
    Actor,
    Checkout,
    PersonState,
    Pose,
    Stay,
    Task,
    Walk,
    queue_side,
    queue_slot,
    sequence_info,
    simulate,
)

__all__ = ["CastMember", "PersonState", "Pose", "Role", "Script", "make_script"]


class Role(StrEnum):
    """What a person came to do."""

    SHOPPER = "shopper"  # browses, queues, is served, leaves through the entrance
    BROWSER = "browser"  # browses and leaves through the entrance
    ABANDONER = "abandoner"  # browses, queues, gives up, leaves through the entrance
    WALKER = "walker"  # walks through without stopping (never crosses the entrance segment)
    FALLER = "faller"  # walks through, falls and lies on the floor a while, gets up, walks on


#: Who the first people are, in order; later ones repeat the tail. ``WALKER`` pairs pass each other.
ROLE_ORDER = (
    Role.SHOPPER,
    "pair",
    Role.SHOPPER,
    Role.BROWSER,
    Role.ABANDONER,
    Role.FALLER,
    Role.SHOPPER,
    Role.BROWSER,
    Role.WALKER,
)
ROLE_REPEAT = (Role.SHOPPER, Role.BROWSER, Role.WALKER)
#: Seconds between shoppers who cannot make the rush and so enter from the start: not side by side at once.
LATE_ENTRY_GAP_S = 2.5


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
        log: ``(t, person, what)``: queue moments as the simulation lived them (joined the line, stepped
            up to the till, served, gave up), to check the derived truth against.
    """

    seed: int
    fps: float
    layout: StoreLayout
    ground: Ground
    cast: tuple[CastMember, ...]
    frames: tuple[tuple[PersonState, ...], ...]
    log: tuple[tuple[float, int, str], ...] = ()


# --- casting ---------------------------------------------------------------------------------------


def _roles(n: int) -> list[Role | str]:
    roles: list[Role | str] = []
    order = list(ROLE_ORDER)
    while sum(2 if r == "pair" else 1 for r in roles) < n:
        role = order.pop(0) if order else ROLE_REPEAT[(len(roles) - len(ROLE_ORDER)) % len(ROLE_REPEAT)]
        left = n - sum(2 if r == "pair" else 1 for r in roles)
        roles.append(Role.WALKER if role == "pair" and left < 2 else role)
    return roles


def _cast_sequences(library: CutoutLibrary, n: int, rng: np.random.Generator) -> list[int]:
    """One sequence per person: distinct source people, each looking least like those already cast.

    The first is random; each next one is drawn from the three source people whose clothes differ most
    from everyone cast so far (colour signatures), so a dozen people are not a dozen dark coats. Source
    people are reused, with other sequences of theirs, only when all have been cast.
    """
    good = [i for i, s in enumerate(library.sequences) if s.loop >= 4 and s.height >= 60 and abs(s.step[0]) >= 1.5]
    pool = good or list(range(len(library.sequences)))
    if not pool:
        raise ValueError("the cut-out library is empty")
    by_person: dict[int, list[int]] = {}
    for i in pool:
        by_person.setdefault(library.sequences[i].person, []).append(i)
    people = sorted(by_person)
    looks = np.sqrt(np.stack([appearance(library.sequences[by_person[p][0]].sprites[0]) for p in people]))
    picked: list[int] = []
    for _ in range(n):
        cycle = picked[len(picked) - len(picked) % len(people) :]  # cast in this round through everyone
        left = [k for k in range(len(people)) if k not in cycle]
        if cycle:
            similar = (looks[left] @ looks[cycle].T).max(axis=1)  # Bhattacharyya, 1 = same colours
            left = [left[k] for k in np.argsort(similar, kind="stable")[:3]]
        picked.append(left[int(rng.integers(len(left)))])
    uses: dict[int, int] = {}
    out = []
    for k in picked:
        seqs = by_person[people[k]]
        out.append(seqs[uses.get(k, 0) % len(seqs)])
        uses[k] = uses.get(k, 0) + 1
    return out


def _zone_visit(layout: StoreLayout, zone: int, rng: np.random.Generator, stops: int) -> list[Walk | Stay]:
    polygon = layout.zones[zone][1]
    tasks: list[Walk | Stay] = []
    for _ in range(stops):
        spot = Walk([polygon_inset_point(polygon, rng)], pace=0.7, spot_in=polygon)
        tasks += [spot, Stay(float(rng.uniform(3.0, 8.0)))]
    return tasks


def _door(layout: StoreLayout, rng: np.random.Generator) -> Point:
    x, y0, y1 = layout.door_band
    return x, float(rng.uniform(y0, y1))


def _shop_plan(role: Role, layout: StoreLayout, rng: np.random.Generator) -> tuple[list[Task], list[str]]:
    """Come in, browse one or two zones, then queue (shopper, abandoner) or leave (browser)."""
    zones = rng.permutation(len(layout.zones))[: 1 if role is Role.ABANDONER else int(rng.integers(1, 3))]
    tasks: list[Task] = [Walk([_door(layout, rng), layout.inside_door, layout.north_pass])]
    plan = []
    for z in zones.tolist():
        tasks += _zone_visit(layout, z, rng, 1 if role is Role.ABANDONER else 2)
        plan.append(f"browse {layout.zones[z][0]}")
    if role is Role.BROWSER:
        tasks.append(Walk([layout.north_pass, layout.inside_door, _door(layout, rng)]))
    elif role is Role.SHOPPER:
        service = float(rng.uniform(5.0, 11.0))
        tasks += [Checkout(service, None), Walk(list(layout.till_exit))]
        plan.append(f"queue, served for {service:.1f} s")
    else:
        patience = float(rng.uniform(6.0, 10.0))
        tasks += [Checkout(0.0, patience), Walk(list(layout.abandon_exit))]
        plan.append(f"queue, give up after {patience:.1f} s")
    return tasks, [*plan, "leave through the entrance"]


def _time_to_queue(tasks: Sequence[Task], layout: StoreLayout, ground: Ground, speed: float) -> float:
    """Seconds from appearing to reaching the queue, if everything goes to plan."""
    first = tasks[0]
    assert isinstance(first, Walk)
    here, total = ground.to_floor(*first.route[0]), 0.0
    for task in tasks:
        if isinstance(task, Stay):
            total += task.seconds
            continue
        route = task.route if isinstance(task, Walk) else [queue_side(queue_slot(layout, 1))]
        pace = task.pace if isinstance(task, Walk) else 1.0
        for point in route:
            there = ground.to_floor(*point)
            total += float(np.hypot(there[0] - here[0], there[1] - here[1])) / (speed * pace)
            here = there
        if isinstance(task, Checkout):
            return total
    return total


def make_script(
    library: CutoutLibrary,
    layout: StoreLayout,
    seed: int,
    duration_s: float = 120.0,
    people: int = 12,
    fps: float = 10.0,
) -> Script:
    """Cast ``people`` people with plans drawn from ``seed`` and simulate ``duration_s`` of them.

    Shoppers and the abandoner are timed to reach the checkout in a rush (a few seconds apart, from a
    third of the way in), so a line forms; the abandoner arrives third, behind people being served.
    In a scene too short for their plans they enter from the start, :data:`LATE_ENTRY_GAP_S` apart.

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
    infos = sequence_info(library, ground)
    seqs = _cast_sequences(library, people, rng)
    d = duration_s
    arrival = float(rng.uniform(0.42, 0.5)) * d  # the checkout rush
    late = 0  # shoppers whose plan is longer than the time to the rush
    members: list[tuple[CastMember, list[Task]]] = []
    for role in _roles(people):
        height, speed = float(rng.uniform(0.93, 1.07)), float(rng.uniform(1.0, 1.4))
        if role == "pair":
            members += _walker_pair(
                layout, ground, rng, d, (height, speed), (rng.uniform(0.93, 1.07), rng.uniform(1.0, 1.4))
            )
            continue
        assert isinstance(role, Role)
        if role in (Role.SHOPPER, Role.BROWSER, Role.ABANDONER):
            tasks, plan = _shop_plan(role, layout, rng)
            if role is Role.BROWSER:
                spawn = float(rng.uniform(0.0, 0.6 * d))
            else:
                spawn = arrival - _time_to_queue(tasks, layout, ground, speed)
                if spawn < 0.0:  # too late for the rush (a short scene): come in one after another
                    spawn, late = late * LATE_ENTRY_GAP_S, late + 1
                arrival += float(rng.uniform(2.5, 6.0))
        elif role is Role.FALLER:
            lane_i, at = layout.fall_lane
            lane = list(layout.lanes[lane_i])
            lie_s = float(rng.uniform(8.0, 12.0))
            tasks = [Walk(lane[: at + 1]), Stay(0.3), Stay(lie_s, Pose.LYING), Stay(1.0), Walk(lane[at:])]
            plan = [f"walk, fall and lie {lie_s:.1f} s at ({lane[at][0]:g}, {lane[at][1]:g}), walk on"]
            spawn = float(rng.uniform(0.15 * d, 0.45 * d))
        else:
            tasks, plan = [Walk(_lane(layout, rng))], ["walk through"]
            spawn = float(rng.uniform(0.0, max(d - 15.0, 0.0)))
        members.append((CastMember(0, role, -1, -1, height, speed, spawn, tuple(plan)), tasks))
    agents: list[Actor] = []
    everyone: list[CastMember] = []
    for i, ((m, tasks), seq) in enumerate(zip(members, seqs, strict=True)):
        cast = CastMember(
            i + 1,
            m.role,
            seq,
            library.sequences[seq].person,
            m.height_factor,
            m.speed_mps,
            round(float(m.spawn_s), 3),
            m.plan,
        )
        agents.append(Actor(cast, tasks, infos[seq]))
        everyone.append(cast)
    frames = simulate(agents, ground, layout, d, fps)
    log = sorted((round(t, 6), a.member.id, what) for a in agents for t, what in a.log)
    return Script(seed, fps, layout, ground, tuple(everyone), frames, tuple(log))


def _lane(layout: StoreLayout, rng: np.random.Generator, offset: float | None = None) -> list[Point]:
    lane = list(layout.lanes[int(rng.integers(len(layout.lanes)))])
    if rng.random() < 0.5:
        lane.reverse()
    dy = float(rng.uniform(-15.0, 15.0)) if offset is None else offset
    return [(x, y + dy) for x, y in lane]


def _walker_pair(
    layout: StoreLayout,
    ground: Ground,
    rng: np.random.Generator,
    d: float,
    first: tuple[float, float],
    second: tuple[float, float],
) -> list[tuple[CastMember, list[Task]]]:
    """Two walkers on one lane in opposite directions, timed to pass each other, the second farther away.

    ``first`` and ``second`` are each ``(height_factor, speed_mps)``.
    """
    lane = list(layout.lanes[0])
    near = [(x, y + 10.0) for x, y in lane]
    far = [(x, y - 28.0) for x, y in reversed(lane)]
    length = sum(float(np.hypot(*np.subtract(ground.to_floor(*b), ground.to_floor(*a)))) for a, b in pairwise(lane))
    meet, t_meet = float(rng.uniform(0.35, 0.65)), float(rng.uniform(0.25, 0.6)) * d
    t1, t2 = t_meet - meet * length / first[1], t_meet - (1 - meet) * length / second[1]
    shift = max(0.0, -min(t1, t2))
    plan = ("walk through, passing another walker",)
    return [
        (CastMember(0, Role.WALKER, -1, -1, first[0], first[1], t1 + shift, plan), [Walk(near)]),
        (CastMember(0, Role.WALKER, -1, -1, float(second[0]), float(second[1]), t2 + shift, plan), [Walk(far)]),
    ]
