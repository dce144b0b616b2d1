"""The dashboard's alert feed: the store's rules on live numbers and events, and a Redis list of what fired.

The rules are evaluated by :class:`rva.alerts.AlertEngine` (the same core the edge runs);
:class:`AlertEvaluator` only feeds it the gateway's store-wide live view and events on the wall clock
and turns the ``alert`` events it returns into :class:`~gateway.models.Alert` resources.
:class:`AlertFeed` keeps the latest alerts of each store in Redis for the REST feed.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

import redis

from gateway.models import Alert
from rva.alerts import AlertEngine, AlertRuleConfig, AlertState, store_readings
from rva.core.events import Event


class AlertEvaluator:
    """A store's rules over the gateway's live view (``MetricsService.live``) and event dicts.

    Args:
        store: Store id (stamped on alerts).
        rules: The store's alert rules.
        capacities: ``{(camera, zone): capacity}`` for occupancy rules without a threshold.
        state: Holds and cooldowns of a previous evaluator of the store (kept across a rules refresh).

    """

    def __init__(self, store: str, rules: Iterable[AlertRuleConfig],
                 capacities: Mapping[tuple[str, str], int] | None = None, state: AlertState | None = None) -> None:
        self.engine = AlertEngine(store, rules, capacities, state=state)

    @property
    def state(self) -> AlertState:
        """Holds and cooldowns so far."""
        return self.engine.state

    def on_live(self, live: Mapping[str, Any], now: float) -> list[Alert]:
        """Alerts from a live view: queue length, wait estimate, occupancy."""
        return [self._alert(e) for e in self.engine.on_readings(store_readings(live), now)]

    def on_event(self, event: Mapping[str, Any], now: float) -> list[Alert]:
        """Alerts from one event (``Event.to_dict()``): a visit longer than a dwell limit, a camera going offline.

        The event is dated ``now`` (the wall clock the live rules run on), not its stream time.
        """
        try:
            parsed = Event.from_dict({**event, "ts": now})
        except (ValueError, KeyError, TypeError):
            return []  # a kind this gateway does not know yet: no rule can be about it
        return [self._alert(e) for e in self.engine.on_event(parsed)]

    def _alert(self, event: Event) -> Alert:
        a = event.attrs
        target = event.zone or event.queue
        return Alert(rule=a["rule"], kind=a["kind"], severity=a["severity"], store=self.engine.store,
                     camera=event.camera, target=target, value=a["value"], threshold=a["threshold"], ts=event.ts,
                     message=a["message"])


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
