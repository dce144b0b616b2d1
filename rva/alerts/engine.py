"""Alert rules evaluated on live numbers, tracks and events: a pure core (no I/O, no clock of its own).

:class:`AlertEngine` is called once per analysed frame (:meth:`AlertEngine.on_frame` with the camera's
``CameraAnalytics.live()`` view and its tracks) and once per event (:meth:`AlertEngine.on_event`), and
returns ``alert`` events. Time is whatever clock the caller passes: the camera's stream time on the
edge (so a replay fires the same alerts), the wall clock in the gateway.

Every rule is held and cooled down per ``(rule, camera, target)``: a condition must stay true for
``for_s`` before it fires, then fires at most once per ``cooldown_s`` however many frames it stays
true. A condition that clears starts its hold again. A clock that goes backwards (a new stream)
restarts holds and cooldowns of the keys it meets.

Falls: the default detector flags a yellow jacket lying on the grass of the sample clip as a fallen
person on every frame. A fall is therefore a track that was seen upright for ``upright_s`` (one
continuous stretch, at any time before) and then flagged fallen on every frame it was seen for
``for_s``; a track fallen from its first frame never fires.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from rva.alerts.config import AlertRuleConfig
from rva.core.detections import NO_TRACK, Detections
from rva.core.events import Event, EventType

#: Rule kinds evaluated on live numbers (:class:`Reading`).
LIVE_KINDS = frozenset({"queue_length", "queue_wait", "occupancy"})
#: Source states that make a camera offline.
OFFLINE_STATES = frozenset({"reconnecting", "failed"})
#: Durations this close count as equal (stream times are sums of frame intervals: 5.1 - 3.1 < 2 in floats).
EPS_S = 1e-6
_WHAT = {"queue_length": "queue length", "queue_wait": "wait estimate (s)", "occupancy": "occupancy"}

#: ``(rule name, camera, target)``: what holds and cooldowns are kept per.
AlertKey = tuple[str, str, str]


@dataclass(frozen=True, slots=True)
class Reading:
    """One live number a rule can watch.

    Attributes:
        kind: ``queue_length``, ``queue_wait`` or ``occupancy``.
        camera: Camera id.
        target: Zone or queue name.
        value: The number now (None: unknown, e.g. no wait estimate before the first service).
        limit: The configured limit for rules without a threshold (zone capacity, queue max length).

    """

    kind: str
    camera: str
    target: str
    value: float | None
    limit: float | None = None


def camera_readings(live: Mapping[str, Any], camera: str | None = None) -> list[Reading]:
    """Readings from one camera's live view (``CameraAnalytics.live()``).

    Args:
        live: ``{"camera", "zones": {name: {occupancy, capacity, ...}}, "queues": {name: {waiting,
            max_length, wait_estimate_s, ...}}}``.
        camera: Camera id (default: the view's ``camera``).

    """
    cam = camera if camera is not None else str(live["camera"])
    out = [Reading("occupancy", cam, name, _number(z.get("occupancy")), _number(z.get("capacity")))
           for name, z in (live.get("zones") or {}).items()]
    for name, q in (live.get("queues") or {}).items():
        out.append(Reading("queue_length", cam, name, _number(q.get("waiting")), _number(q.get("max_length"))))
        out.append(Reading("queue_wait", cam, name, _number(q.get("wait_estimate_s"))))
    return out


def store_readings(live: Mapping[str, Any]) -> list[Reading]:
    """Readings from a store's live view (the gateway's ``MetricsService.live``).

    Args:
        live: ``{"occupancy": [{camera, zone, count}], "queues": [{camera, queue, waiting, wait_estimate_s}]}``.

    """
    out = [Reading("occupancy", str(o["camera"]), str(o["zone"]), _number(o.get("count")))
           for o in live.get("occupancy") or []]
    for q in live.get("queues") or []:
        cam, name = str(q["camera"]), str(q["queue"])
        out.append(Reading("queue_length", cam, name, _number(q.get("waiting"))))
        out.append(Reading("queue_wait", cam, name, _number(q.get("wait_estimate_s"))))
    return out


def _number(value: Any) -> float | None:
    return None if value is None else float(value)


@dataclass(slots=True)
class _Posture:
    """What the fall rule knows about one track."""

    last_ts: float
    upright_from: float | None = None  # start of the current upright stretch
    seen_upright: bool = False  # an upright stretch of upright_s happened
    fallen_from: float | None = None  # start of the current fallen stretch

    def update(self, fallen: bool, ts: float, upright_s: float) -> None:
        self.last_ts = ts
        if fallen:
            self.upright_from = None
            if self.fallen_from is None:
                self.fallen_from = ts
            return
        self.fallen_from = None
        if self.upright_from is None:
            self.upright_from = ts
        if ts - self.upright_from >= upright_s - EPS_S:
            self.seen_upright = True


@dataclass
class AlertState:
    """What an engine remembers; hand it to a new engine to keep holds and cooldowns across a rules reload.

    Attributes:
        since: When each held condition became true.
        fired: When each key last fired.
        postures: Fall state per camera and track id.

    """

    since: dict[AlertKey, float] = field(default_factory=dict)
    fired: dict[AlertKey, float] = field(default_factory=dict)
    postures: dict[str, dict[int, _Posture]] = field(default_factory=dict)


class AlertEngine:
    """Evaluates a store's alert rules into ``alert`` events.

    Each event carries the target in ``zone``/``queue``/``track_id`` and ``attrs`` ``{rule, kind,
    severity, value, threshold, message}`` (plus ``sinks`` when the rule names some).

    Args:
        store: Store id.
        rules: The store's rules (disabled ones are ignored).
        capacities: ``{(camera, zone): capacity}`` for occupancy rules without a threshold, where the
            live view does not carry the zone's capacity.
        upright_s: Fall rules: upright this long before a fall counts (0: no such check).
        forget_track_s: Fall state of a track unseen this long is dropped.
        state: Holds and cooldowns to continue from (default: fresh).

    """

    def __init__(self, store: str, rules: Iterable[AlertRuleConfig],
                 capacities: Mapping[tuple[str, str], float] | None = None, *, upright_s: float = 1.0,
                 forget_track_s: float = 60.0, state: AlertState | None = None) -> None:
        if upright_s < 0 or forget_track_s <= 0:
            raise ValueError(f"expected upright_s >= 0 and forget_track_s > 0, got {upright_s}, {forget_track_s}")
        self.store = store
        self.rules = [r for r in rules if r.enabled]
        self.capacities = dict(capacities or {})
        self.upright_s = upright_s
        self.forget_track_s = forget_track_s
        self.state = state if state is not None else AlertState()
        self._live_rules = [r for r in self.rules if r.kind in LIVE_KINDS]
        self._fall_rules = [r for r in self.rules if r.kind == "fall"]

    # -- the calls ----------------------------------------------------------------------------------

    @property
    def needs_live(self) -> bool:
        """Whether :meth:`on_frame` reads the live view (callers may skip building it otherwise)."""
        return bool(self._live_rules or self._fall_rules)

    def after_frame(self, camera: str, analytics: Any, tracked: Detections, ts: float,
                    events: Iterable[Event]) -> list[Event]:
        """Everything one frame can fire (what a pipeline calls once per frame).

        :meth:`on_frame` on the analytics' live view, then :meth:`on_event` for each of the frame's events.

        Args:
            camera: Camera id.
            analytics: The camera's ``CameraAnalytics`` (its ``live()`` is read only when a rule needs it).
            tracked: The frame's confirmed tracks.
            ts: The frame's stream time.
            events: The frame's analytics events.

        """
        out = self.on_frame(camera, analytics.live(), tracked, ts) if self.needs_live else []
        for event in events:
            out += self.on_event(event)
        return out

    def on_frame(self, camera: str, live_view: Mapping[str, Any], tracked: Detections, ts: float) -> list[Event]:
        """Alerts after one analysed frame of a camera.

        Args:
            camera: Camera id.
            live_view: ``CameraAnalytics.live()`` after the frame.
            tracked: The frame's confirmed tracks (``data["fallen"]`` flags people lying down).
            ts: The frame's stream time, seconds.

        Returns:
            ``alert`` events of the live rules and the fall rules, dated ``ts``.

        """
        events = self.on_readings(camera_readings(live_view, camera), ts, cameras=(camera,))
        fall_rules = [r for r in self._fall_rules if r.camera in (None, camera)]
        if fall_rules:
            events += self._falls(camera, live_view, tracked, ts, fall_rules)
        return events

    def on_readings(self, readings: Iterable[Reading], ts: float,
                    cameras: Collection[str] | None = None) -> list[Event]:
        """Alerts of the live rules (queue length, wait estimate, occupancy) on a set of readings.

        Args:
            readings: The live numbers now.
            ts: Now, on the caller's clock.
            cameras: Cameras the readings cover completely (None: all); a held condition of these that
                is not true in ``readings`` has cleared.

        """
        readings = list(readings)
        out: list[Event] = []
        true_now: set[AlertKey] = set()
        for rule in self._live_rules:
            for r in readings:
                if r.kind != rule.kind or not _matches(rule, r.camera, r.target) or r.value is None:
                    continue
                threshold = rule.threshold if rule.threshold is not None else r.limit
                if threshold is None and rule.kind == "occupancy":
                    threshold = self.capacities.get((r.camera, r.target))
                if threshold is None or r.value <= threshold:
                    continue
                key = (rule.name, r.camera, r.target)
                true_now.add(key)
                if not self._held(key, ts, rule.for_s):
                    continue
                message = f"{_WHAT[rule.kind]} at {r.camera}/{r.target}: {r.value:g} > {threshold:g}"
                target = {"queue": r.target} if rule.kind != "occupancy" else {"zone": r.target}
                out += self._fire(rule, key, r.camera, ts, r.value, threshold, message, **target)
        live_names = {r.name for r in self._live_rules}
        for key in [k for k in self.state.since if k[0] in live_names and k not in true_now
                    and (cameras is None or k[1] in cameras)]:
            del self.state.since[key]  # the condition cleared: the hold starts again next time
        return out

    def on_event(self, event: Event) -> list[Event]:
        """Alerts of the event rules: a visit longer than a dwell limit, a camera going offline.

        Args:
            event: Any analytics event; its ``ts`` is the time the rules use.

        """
        out: list[Event] = []
        for rule in self.rules:
            if rule.kind == "dwell" and event.type is EventType.ZONE_EXIT and event.zone is not None:
                dwell, threshold = event.dwell_s, rule.threshold
                if dwell is None or threshold is None or dwell <= threshold:
                    continue
                if _matches(rule, event.camera, event.zone):
                    message = f"dwell in {event.camera}/{event.zone}: {dwell:.0f} s > {threshold:g} s"
                    out += self._fire(rule, (rule.name, event.camera, event.zone), event.camera, event.ts, dwell,
                                      threshold, message, zone=event.zone, track_id=event.track_id)
            elif rule.kind == "camera_offline" and event.type is EventType.SOURCE_STATE:
                state = event.attrs.get("state")
                if state in OFFLINE_STATES and _matches(rule, event.camera, None):
                    out += self._fire(rule, (rule.name, event.camera, ""), event.camera, event.ts, None, None,
                                      f"camera {event.camera} is {state}")
        return out

    # -- falls ----------------------------------------------------------------------------------------

    def _falls(self, camera: str, live_view: Mapping[str, Any], tracked: Detections, ts: float,
               rules: list[AlertRuleConfig]) -> list[Event]:
        postures = self.state.postures.setdefault(camera, {})
        mine = tracked.tracker_id != NO_TRACK
        seen = tracked.tracker_id[mine].tolist()
        for tid, is_fallen in zip(seen, tracked.flag("fallen")[mine].tolist(), strict=True):
            posture = postures.get(tid)
            if posture is None or ts < posture.last_ts:  # new track, or a new stream reusing the id
                posture = postures[tid] = _Posture(ts)
            posture.update(bool(is_fallen), ts, self.upright_s)
        for tid in [t for t, p in postures.items() if not 0 <= ts - p.last_ts <= self.forget_track_s]:
            del postures[tid]  # ids are never reused: its cooldowns go with it
            for rule in self._fall_rules:
                self.state.fired.pop((rule.name, camera, f"track:{tid}"), None)
        zones = live_view.get("zones") or {}
        out: list[Event] = []
        for tid in seen:
            p = postures[tid]
            if p.fallen_from is None or (self.upright_s > 0 and not p.seen_upright):
                continue  # upright now, or never seen upright (down since first seen: nobody saw a fall)
            down_s = round(ts - p.fallen_from, 6)
            for rule in rules:
                if down_s < rule.for_s - EPS_S:
                    continue
                if rule.target is not None and tid not in (zones.get(rule.target) or {}).get("track_ids", ()):
                    continue
                where = f"{camera}/{rule.target}" if rule.target else camera
                message = f"person {tid} down at {where} for {down_s:.1f} s"
                out += self._fire(rule, (rule.name, camera, f"track:{tid}"), camera, ts, down_s, rule.for_s, message,
                                  zone=rule.target, track_id=tid)
        return out

    # -- hold and cooldown ----------------------------------------------------------------------------

    def _held(self, key: AlertKey, now: float, for_s: float) -> bool:
        since = self.state.since.get(key)
        if since is None or now < since:
            since = self.state.since[key] = now
        return now - since >= for_s - EPS_S

    def _fire(self, rule: AlertRuleConfig, key: AlertKey, camera: str, ts: float, value: float | None,
              threshold: float | None, message: str, **target: Any) -> list[Event]:
        last = self.state.fired.get(key)
        if last is not None and 0 <= ts - last < rule.cooldown_s - EPS_S:
            return []
        self.state.fired[key] = ts
        attrs: dict[str, Any] = {"rule": rule.name, "kind": rule.kind, "severity": rule.severity, "value": value,
                                 "threshold": threshold, "message": message}
        if rule.sinks is not None:
            attrs["sinks"] = list(rule.sinks)
        return [Event(EventType.ALERT, camera, ts, attrs=attrs, **target)]


def _matches(rule: AlertRuleConfig, camera: str, target: str | None) -> bool:
    return (rule.camera is None or rule.camera == camera) and (rule.target is None or rule.target == target)
