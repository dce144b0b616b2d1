"""The dashboard's alert feed: alert rules evaluated on live numbers and events (pure core + a Redis list).

:class:`AlertEvaluator` is a plain object (no I/O): feed it live views and events, it returns the
alerts that fire, each condition held for ``for_s`` and repeated at most once per ``cooldown_s``.
:class:`AlertFeed` keeps the latest alerts of each store in Redis for the REST feed.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

import redis

from gateway.models import Alert
from rva.config import AlertRuleConfig

_LIVE_KINDS = ("queue_length", "queue_wait", "occupancy")
_OFFLINE_STATES = ("reconnecting", "failed")


class AlertEvaluator:
    """Evaluates a store's rules.

    Args:
        store: Store id (stamped on alerts).
        rules: The store's alert rules.
        capacities: ``{(camera, zone): capacity}`` for occupancy rules without a threshold.

    """

    def __init__(self, store: str, rules: Iterable[AlertRuleConfig],
                 capacities: Mapping[tuple[str, str], int] | None = None) -> None:
        self.store = store
        self.rules = [r for r in rules if r.enabled]
        self.capacities = dict(capacities or {})
        self._since: dict[tuple[str, str, str], float] = {}
        self._fired: dict[tuple[str, str, str], float] = {}

    def _matches(self, rule: AlertRuleConfig, camera: str, target: str | None) -> bool:
        return (rule.camera is None or rule.camera == camera) and (rule.target is None or rule.target == target)

    def _fire(self, rule: AlertRuleConfig, camera: str, target: str | None, value: float | None,
              threshold: float | None, now: float, message: str) -> Alert | None:
        key = (rule.name, camera, target or "")
        last = self._fired.get(key)
        if last is not None and now - last < rule.cooldown_s:
            return None
        self._fired[key] = now
        return Alert(rule=rule.name, kind=rule.kind, severity=rule.severity, store=self.store, camera=camera,
                     target=target, value=value, threshold=threshold, ts=now, message=message)

    def on_live(self, live: Mapping[str, Any], now: float) -> list[Alert]:
        """Alerts from a live view (``MetricsService.live``): queue length, wait estimate, occupancy."""
        out: list[Alert] = []
        seen: set[tuple[str, str, str]] = set()
        for rule in (r for r in self.rules if r.kind in _LIVE_KINDS):
            for camera, target, value, threshold, what in self._values(rule, live):
                if not self._matches(rule, camera, target) or value is None or threshold is None:
                    continue
                key = (rule.name, camera, target or "")
                if value <= threshold:
                    continue
                seen.add(key)
                since = self._since.setdefault(key, now)
                if now - since < rule.for_s:
                    continue
                alert = self._fire(rule, camera, target, value, threshold, now,
                                   f"{what} at {camera}/{target}: {value:g} > {threshold:g}")
                if alert:
                    out.append(alert)
        for key in [k for k in self._since if k not in seen]:
            del self._since[key]  # the condition cleared: the hold starts again next time
        return out

    def _values(self, rule: AlertRuleConfig, live: Mapping[str, Any]) -> Iterable[tuple[str, str, Any, Any, str]]:
        if rule.kind == "occupancy":
            for item in live.get("occupancy", []):
                cap = self.capacities.get((item["camera"], item["zone"]))
                threshold = rule.threshold if rule.threshold is not None else cap
                yield item["camera"], item["zone"], item["count"], threshold, "occupancy"
        else:
            field, what = ("waiting", "queue length") if rule.kind == "queue_length" else ("wait_estimate_s",
                                                                                           "wait estimate (s)")
            for item in live.get("queues", []):
                yield item["camera"], item["queue"], item.get(field), rule.threshold, what

    def on_event(self, event: Mapping[str, Any], now: float) -> list[Alert]:
        """Alerts from one event: a visit longer than a dwell limit, a camera going offline."""
        out: list[Alert] = []
        camera = str(event.get("camera", ""))
        for rule in self.rules:
            alert = None
            if rule.kind == "dwell" and event.get("type") == "zone_exit":
                dwell, zone = event.get("dwell_s"), event.get("zone")
                if dwell is not None and rule.threshold is not None and dwell > rule.threshold \
                        and self._matches(rule, camera, zone):
                    alert = self._fire(rule, camera, zone, float(dwell), rule.threshold, now,
                                       f"dwell in {camera}/{zone}: {float(dwell):.0f} s > {rule.threshold:g} s")
            elif rule.kind == "camera_offline" and event.get("type") == "source_state":
                state = (event.get("attrs") or {}).get("state")
                if state in _OFFLINE_STATES and self._matches(rule, camera, None):
                    alert = self._fire(rule, camera, None, None, None, now, f"camera {camera} is {state}")
            if alert:
                out.append(alert)
        return out


class AlertFeed:
    """The latest alerts of each store, in a capped Redis list.

    Args:
        url: Redis URL.
        keep: Alerts kept per store.

    """

    def __init__(self, url: str, keep: int = 200) -> None:
        self.client = redis.Redis.from_url(url, socket_timeout=2.0, socket_connect_timeout=2.0)
        self.keep = keep

    @staticmethod
    def _key(tenant: str, store: str) -> str:
        return f"rva:gw:{{{tenant}:{store}}}:alerts"

    def push(self, tenant: str, store: str, alerts: Iterable[Alert]) -> None:
        """Record alerts, newest first."""
        items = [a.model_dump_json() for a in alerts]
        if items:
            pipe = self.client.pipeline()
            pipe.lpush(self._key(tenant, store), *items)
            pipe.ltrim(self._key(tenant, store), 0, self.keep - 1)
            pipe.execute()

    def latest(self, tenant: str, store: str, limit: int = 50) -> list[dict[str, Any]]:
        """Newest first."""
        raw = self.client.lrange(self._key(tenant, store), 0, max(0, limit - 1))
        return [json.loads(r) for r in raw]

    def close(self) -> None:
        """Close the connection pool."""
        self.client.close()
