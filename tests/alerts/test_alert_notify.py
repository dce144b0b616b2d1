"""The notifier against real receivers: retries, Retry-After, no retry on 4xx, dead letters, sinks in parallel."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable

import pytest
from alert_servers import Receiver, SmtpServer

from rva.alerts.config import EmailSinkConfig, RetryConfig, WebhookSinkConfig
from rva.alerts.notify import Delivery, Notifier
from rva.alerts.sinks import AlertSink, EmailSink, WebhookSink
from rva.core.events import Event, EventType

SECRET = "a-webhook-secret-of-some-length"
FAST = RetryConfig(attempts=4, initial_delay_s=0.02, max_delay_s=0.2, jitter=0.5)


def alert(sinks: list[str] | None = None) -> Event:
    attrs = {"rule": "long_queue", "kind": "queue_length", "severity": "warning", "value": 5.0, "threshold": 3.0,
             "message": "queue length at c/till: 5 > 3"}
    return Event(EventType.ALERT, "c", 42.0, queue="till", attrs={**attrs, **({"sinks": sinks} if sinks else {})})


def hook(receiver: Receiver, name: str = "ops") -> WebhookSink:
    return WebhookSink(WebhookSinkConfig(name=name, url=receiver.url, secret=SECRET))  # type: ignore[arg-type]


def run(sinks: list[AlertSink], event: Event, retry: RetryConfig = FAST) -> tuple[list[Delivery], list[Event]]:
    letters: list[Event] = []

    async def go() -> list[Delivery]:
        notifier = Notifier(sinks, "s1", retry, on_dead_letter=letters.append)
        try:
            return await notifier.notify(event)
        finally:
            await notifier.close()

    return asyncio.run(go()), letters


def test_a_500_is_retried_then_dead_lettered(receiver: Receiver) -> None:
    receiver.answer(500)
    (result,), letters = run([hook(receiver)], alert())
    assert len(receiver.requests) == FAST.attempts == result.attempts == 4
    assert not result.delivered and result.status == 500 and "HTTP 500" in (result.error or "")
    # every attempt carried the same idempotency key, each signed afresh
    assert {r.headers["Idempotency-Key"] for r in receiver.requests} == {alert().event_id("s1")}
    (letter,) = letters
    assert letter is result.dead_letter
    assert (letter.type, letter.camera, letter.ts, letter.queue) == (EventType.ALERT_UNDELIVERED, "c", 42.0, "till")
    assert {k: letter.attrs[k] for k in ("sink", "sink_type", "attempts", "status", "alert_id", "rule")} == {
        "sink": "ops", "sink_type": "webhook", "attempts": 4, "status": 500, "alert_id": alert().event_id("s1"),
        "rule": "long_queue"}
    # a redelivered alert that fails again makes the same dead letter (stored once)
    receiver.requests.clear()
    (_,), again = run([hook(receiver)], alert())
    assert again[0].event_id("s1") == letter.event_id("s1")


def test_a_receiver_that_recovers_gets_the_alert(receiver: Receiver) -> None:
    receiver.answer(503, 502, then=200)
    (result,), letters = run([hook(receiver)], alert())
    assert result.delivered and result.attempts == 3 and letters == []
    assert len(receiver.requests) == 3


@pytest.mark.parametrize("status", [400, 401, 404, 422])
def test_other_4xx_are_not_retried(receiver: Receiver, status: int) -> None:
    receiver.answer(status)
    (result,), letters = run([hook(receiver)], alert())
    assert len(receiver.requests) == 1 and result.attempts == 1 and letters[0].attrs["status"] == status


def test_retry_after_is_honoured(receiver: Receiver) -> None:
    receiver.answer(429, then=200, retry_after="1")
    started = time.monotonic()
    (result,), _ = run([hook(receiver)], alert(), RetryConfig(attempts=3, initial_delay_s=0.01, max_delay_s=5))
    assert result.delivered and result.attempts == 2
    assert time.monotonic() - started >= 1.0  # the backoff alone would have waited 0.01 s


def test_sinks_are_delivered_in_parallel_and_a_dead_one_delays_no_other(receiver: Receiver, smtp_server: SmtpServer,
                                                                        free_port: Callable[[], int]) -> None:
    nobody = f"http://127.0.0.1:{free_port()}/x"
    dead = WebhookSink(WebhookSinkConfig(name="dead", url=nobody, secret=SECRET))  # type: ignore[arg-type]
    mail = EmailSink(EmailSinkConfig(name="mail", host=smtp_server.host, port=smtp_server.port, security="none",
                                     sender="rva@s.example", recipients=["m@s.example"]))
    slow = RetryConfig(attempts=3, initial_delay_s=0.3, max_delay_s=0.3, jitter=0)
    started = time.monotonic()
    results, letters = run([dead, hook(receiver), mail], alert(), slow)
    assert time.monotonic() - started >= 0.6  # the dead sink waited twice
    assert smtp_server.mailbox.accepted_at[0] - started < 0.3  # the email did not wait for it
    assert [(r.sink, r.delivered, r.attempts) for r in results] == [("dead", False, 3), ("ops", True, 1),
                                                                     ("mail", True, 1)]
    assert [letter.attrs["sink"] for letter in letters] == ["dead"]
    assert len(receiver.requests) == 1 and len(smtp_server.mailbox.messages) == 1


def test_a_rule_picks_its_sinks_and_an_unknown_one_is_dead_lettered(receiver: Receiver) -> None:
    results, letters = run([hook(receiver, "ops"), hook(receiver, "other")], alert(sinks=["other", "gone"]))
    assert [(r.sink, r.delivered, r.attempts) for r in results] == [("other", True, 1), ("gone", False, 0)]
    assert len(receiver.requests) == 1
    assert letters[0].attrs["error"].startswith("no sink named 'gone' is configured")


def test_smtp_4xx_is_retried(smtp_server: SmtpServer) -> None:
    smtp_server.mailbox.refuse("451 4.3.0 try later")
    mail = EmailSink(EmailSinkConfig(name="mail", host=smtp_server.host, port=smtp_server.port, security="none",
                                     sender="rva@s.example", recipients=["m@s.example"]))
    (result,), letters = run([mail], alert())
    assert result.delivered and result.attempts == 2 and smtp_server.mailbox.attempts == 2 and letters == []


@pytest.mark.parametrize(("attempt", "retry_after", "expected"), [
    (1, None, 0.5), (2, None, 1.0), (3, None, 2.0), (10, None, 30.0),  # doubling, capped
    (1, 7.0, 7.0), (1, 100.0, 30.0), (5, 1.0, 8.0),  # Retry-After when longer, capped too
])
def test_backoff_without_jitter(attempt: int, retry_after: float | None, expected: float) -> None:
    notifier = Notifier([], "s1", RetryConfig(initial_delay_s=0.5, max_delay_s=30, jitter=0))
    assert notifier.backoff_s(attempt, retry_after) == expected


def test_jitter_only_shortens_the_wait() -> None:
    notifier = Notifier([], "s1", RetryConfig(initial_delay_s=1, max_delay_s=30, jitter=0.5), rng=random.Random(3))
    waits = [notifier.backoff_s(3) for _ in range(200)]
    assert 2.0 <= min(waits) < 2.2 and 3.8 < max(waits) <= 4.0
