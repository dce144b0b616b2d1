"""What the query layer takes (a :class:`Scope`) and returns (frozen results with ``to_dict``)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import numpy.typing as npt

from rva.stores.records import ID_PATTERN

#: Longest window one query may span.
MAX_WINDOW = timedelta(days=400)


@dataclass(frozen=True, slots=True)
class Scope:
    """Whose data and which window: every query takes one. The window is half-open, ``[start, end)``.

    Attributes:
        tenant: Required; a query never crosses tenants.
        start: Window start (timezone-aware).
        end: Window end (timezone-aware), after ``start``.
        store: One store, or None for all the tenant's stores.
        camera: One camera, or None for all.

    Raises:
        ValueError: An id is malformed, a time is naive, or the window is empty or longer than 400 days.

    """

    tenant: str
    start: datetime
    end: datetime
    store: str | None = None
    camera: str | None = None

    def __post_init__(self) -> None:
        for key in ("tenant", "store", "camera"):
            value = getattr(self, key)
            if (value is not None or key == "tenant") and not (isinstance(value, str) and ID_PATTERN.match(value)):
                raise ValueError(f"Scope.{key}: expected {ID_PATTERN.pattern}, got {value!r}")
        for key in ("start", "end"):
            value = getattr(self, key)
            if not isinstance(value, datetime) or value.tzinfo is None:
                raise ValueError(f"Scope.{key}: expected a timezone-aware datetime, got {value!r}")
        if not self.start < self.end <= self.start + MAX_WINDOW:
            raise ValueError(
                f"Scope: expected start < end <= start + {MAX_WINDOW.days} days, got {self.start} .. {self.end}"
            )

    @property
    def start_us(self) -> int:
        """Window start in Unix microseconds."""
        return round(self.start.timestamp() * 1e6)

    @property
    def end_us(self) -> int:
        """Window end in Unix microseconds."""
        return round(self.end.timestamp() * 1e6)


def to_jsonable(value: Any) -> Any:
    """Plain JSON types from results: datetimes as ISO 8601, arrays as lists, tuples as lists."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_jsonable(v) for v in value]
    return value


class _Result:
    __slots__ = ()

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        out: dict[str, Any] = to_jsonable(self)
        return out


@dataclass(frozen=True, slots=True)
class OccupancyPoint(_Result):
    """People in a zone at ``ts`` (enters at or before ``ts`` minus exits before it).

    Attributes:
        camera: Camera id.
        zone: Zone name.
        ts: Sample time.
        occupancy: People inside at ``ts``.
        peak: Most people inside at any moment of ``[ts, ts + step)``.

    """

    camera: str
    zone: str
    ts: datetime
    occupancy: int
    peak: int


@dataclass(frozen=True, slots=True)
class FootfallHour(_Result):
    """Line crossings in one hour (summed over the lines in scope).

    Attributes:
        hour: Start of the hour (in the requested time zone).
        in_count: Crossings ``in``.
        out_count: Crossings ``out``.

    """

    hour: datetime
    in_count: int
    out_count: int


@dataclass(frozen=True, slots=True)
class DwellDistribution(_Result):
    """Dwell times of the visits to a zone that ended in the window.

    Attributes:
        camera: Camera id.
        zone: Zone name.
        edges: Bin lower edges in seconds; bin ``i`` is ``[edges[i], edges[i+1])``, the last is open.
        counts: Visits per bin.
        visits: All visits counted.
        mean_s: Mean dwell.
        p50_s: Median (linear interpolation between order statistics).
        p90_s: 90th percentile (same rule).
        max_s: Longest dwell.

    """

    camera: str
    zone: str
    edges: tuple[float, ...]
    counts: tuple[int, ...]
    visits: int
    mean_s: float
    p50_s: float
    p90_s: float
    max_s: float


@dataclass(frozen=True, slots=True)
class QueueWaits(_Result):
    """A queue's events in the window and the waits of the people served.

    Attributes:
        camera: Camera id.
        queue: Queue name.
        joined: People who joined.
        served: People served.
        abandoned: People who left without service.
        mean_wait_s: Mean wait of the served (None if nobody was served).
        max_wait_s: Longest wait of the served.
        percentiles: ``{"p50": s, "p90": s, ...}`` of the served waits (linear interpolation).

    """

    camera: str
    queue: str
    joined: int
    served: int
    abandoned: int
    mean_wait_s: float | None
    max_wait_s: float | None
    percentiles: dict[str, float | None]


@dataclass(frozen=True, slots=True)
class HeatmapGrid(_Result):
    """Person-seconds per cell over the window (the sum of the camera's snapshots in it).

    Attributes:
        camera: Camera id.
        cell_px: Cell size in pixels.
        grid: ``(rows, cols)`` float64; row ``r`` covers pixels ``[r * cell_px, (r + 1) * cell_px)``.
        snapshots: Snapshots summed.
        skipped: Snapshots left out because their grid shape differs from the latest one.

    """

    camera: str
    cell_px: int
    grid: npt.NDArray[np.float64]
    snapshots: int
    skipped: int


@dataclass(frozen=True, slots=True)
class Journey(_Result):
    """One ordered path through zones and how many visitors took it.

    Attributes:
        path: Zones in the order entered (repeats of the same zone in a row collapsed).
        visitors: Tracks whose path it was.

    """

    path: tuple[str, ...]
    visitors: int


@dataclass(frozen=True, slots=True)
class FunnelStep(_Result):
    """How many visitors reached a step of a funnel (in order, within the window of the first step).

    Attributes:
        zone: The step's zone.
        visitors: Visitors who reached it.
        conversion: ``visitors`` over the first step's visitors (1.0 for the first step).
        step_conversion: ``visitors`` over the previous step's visitors.

    """

    zone: str
    visitors: int
    conversion: float
    step_conversion: float


@dataclass(frozen=True, slots=True)
class HourlyCount(_Result):
    """Events of one kind in one hour, from ClickHouse's materialized view.

    Attributes:
        hour: Start of the hour (UTC).
        camera: Camera id.
        type: Event type.
        name: Zone, line or queue name ('' for none).
        direction: ``in``/``out`` for crossings, '' otherwise.
        count: Distinct events.

    """

    hour: datetime
    camera: str
    type: str
    name: str
    direction: str
    count: int
