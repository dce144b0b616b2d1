"""Delivering one alert to its sinks: retries with backoff, then a dead-letter record.

Per sink, an attempt that fails with a retryable error (HTTP 5xx or 429, a refused or timed-out
connection, an SMTP 4xx) is tried again after an exponential backoff with jitter, or after the
receiver's ``Retry-After`` when that is longer (both capped at ``max_delay_s``). Other failures (HTTP
4xx, SMTP 5xx, a bad certificate) are not retried. When a sink gives up, the alert becomes an
``alert_undelivered`` event (:func:`dead_letter`): the service publishes it like any other event, so
the stores keep it and the gateway lists it. Sinks are tried concurrently: a dead one delays no other.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import random
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

from rva.alerts.config import RetryConfig
from rva.alerts.errors import DeliveryError
from rva.alerts.sinks import AlertSink
from rva.core.events import Event, EventType

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Delivery:
    """How an alert fared at one sink.

    Attributes:
        sink: Sink name.
        delivered: Whether an attempt succeeded.
        attempts: Attempts made (0: the sink is not configured).
        status: HTTP status or SMTP code of the last failure, if any.
        error: The last failure, if any.
        dead_letter: The ``alert_undelivered`` event, when the sink gave up.

    """

    sink: str
    delivered: bool
    attempts: int
    status: int | None = None
    error: str | None = None
    dead_letter: Event | None = None


def dead_letter(alert: Event, store: str, sink: str, sink_kind: str | None, attempts: int, status: int | None,
                error: str) -> Event:
    """The ``alert_undelivered`` record of an alert a sink gave up on.

    It keeps the alert's camera, time and target, so it is dated and filed like the alert; its id
    depends on the alert's id and the sink only, so a redelivered alert that fails again is stored once.

    Returns:
        An event with attrs ``{sink, sink_type, attempts, status, error, alert_id, rule, kind, severity,
        message, failed_at}`` (``failed_at``: Unix seconds).

    """
    a = alert.attrs
    return Event(
        EventType.ALERT_UNDELIVERED, alert.camera, alert.ts, track_id=alert.track_id, zone=alert.zone,
        queue=alert.queue,
        attrs={"sink": sink, "sink_type": sink_kind, "attempts": attempts, "status": status, "error": error[:500],
               "alert_id": alert.event_id(store), "rule": a.get("rule"), "kind": a.get("kind"),
               "severity": a.get("severity"), "message": a.get("message"), "failed_at": round(time.time(), 3)},
    )


class Notifier:
    """Delivers alerts of one store to their sinks.

    Args:
        sinks: The configured sinks.
        store: Store id (in payloads and ids).
        retry: Attempts and backoff per sink.
        on_dead_letter: Called (and awaited, if it returns an awaitable) with each dead letter.
        rng: Randomness of the jitter (seed it for repeatable waits).

    """

    def __init__(self, sinks: Iterable[AlertSink], store: str, retry: RetryConfig | None = None, *,
                 on_dead_letter: Callable[[Event], Awaitable[None] | None] | None = None,
                 rng: random.Random | None = None) -> None:
        self.sinks = {s.name: s for s in sinks}
        self.store = store
        self.retry = retry or RetryConfig()
        self.on_dead_letter = on_dead_letter
        self._rng = rng or random.Random()

    def backoff_s(self, attempt: int, retry_after_s: float | None = None) -> float:
        """Wait after failed attempt number ``attempt`` (1-based)."""
        r = self.retry
        wait = min(r.max_delay_s, r.initial_delay_s * 2.0 ** (attempt - 1)) * (1.0 - r.jitter * self._rng.random())
        if retry_after_s is not None:
            wait = max(wait, min(retry_after_s, r.max_delay_s))
        return wait

    async def notify(self, alert: Event) -> list[Delivery]:
        """Deliver one alert to the sinks its rule names (``attrs["sinks"]``; absent: every sink).

        Returns:
            One :class:`Delivery` per sink, in the order named; a named sink that is not configured is
            dead-lettered without an attempt.

        """
        names = alert.attrs.get("sinks")
        wanted = list(self.sinks) if names is None else [str(n) for n in names]
        results = await asyncio.gather(*(self._deliver(name, alert) for name in wanted))
        for result in results:
            if result.dead_letter is not None and self.on_dead_letter is not None:
                pending = self.on_dead_letter(result.dead_letter)
                if inspect.isawaitable(pending):
                    await pending
        return list(results)

    async def _deliver(self, name: str, alert: Event) -> Delivery:
        sink = self.sinks.get(name)
        if sink is None:
            error = f"no sink named {name!r} is configured (have {sorted(self.sinks)})"
            return Delivery(name, False, 0, None, error, dead_letter(alert, self.store, name, None, 0, None, error))
        attempt = 0
        while True:
            attempt += 1
            try:
                await sink.send(alert, self.store)
                return Delivery(name, True, attempt)
            except DeliveryError as err:
                failure = err
            except Exception as err:  # a sink bug must not lose the alert silently: dead-letter it
                log.exception("sink %s failed unexpectedly", name)
                failure = DeliveryError(f"{type(err).__name__}: {err}", retryable=False)
            if not failure.retryable or attempt >= self.retry.attempts:
                break
            wait = self.backoff_s(attempt, failure.retry_after_s)
            log.warning("alert %s to %s: attempt %d failed (%s); retrying in %.2f s", alert.attrs.get("rule"), name,
                        attempt, failure, wait)
            await asyncio.sleep(wait)
        log.error("alert %s to %s: giving up after %d attempts: %s", alert.attrs.get("rule"), name, attempt, failure)
        letter = dead_letter(alert, self.store, name, sink.kind, attempt, failure.status, str(failure))
        return Delivery(name, False, attempt, failure.status, str(failure), letter)

    async def close(self) -> None:
        """Close every sink."""
        for sink in self.sinks.values():
            await sink.close()
