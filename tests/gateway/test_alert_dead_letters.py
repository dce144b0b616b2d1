"""``GET /v1/stores/{store}/alerts/dead-letters``: undelivered alerts, ingested like any event, listed back."""

from __future__ import annotations

import time

import pytest
from gateway_env import Env
from test_ingest import json_batch, post

from rva.alerts.notify import dead_letter
from rva.core.events import Event, EventType

T = time.time() - 600


def alert(ts: float, rule: str) -> Event:
    return Event(EventType.ALERT, "cam1", ts, queue="checkout", attrs={
        "rule": rule, "kind": "queue_length", "severity": "warning", "value": 5.0, "threshold": 3.0,
        "message": "queue length at cam1/checkout: 5 > 3"})


def test_dead_letters_are_listed_newest_first(env: Env) -> None:
    env.store("dl1")
    first, second = alert(T, "long_queue"), alert(T + 10, "very_long_queue")
    letters = [dead_letter(first, "dl1", "ops", "webhook", 5, 500, "HTTP 500: receiver says no"),
               dead_letter(second, "dl1", "mail", "email", 3, 451, "SMTP 451: try later")]
    r = post(env, "dl1", json_batch("dl-b1", "dl1", [first, second, *letters]))
    assert r.status_code == 200, r.text
    assert r.json()["new_events"] == 4

    r = env.client.get("/v1/stores/dl1/alerts/dead-letters", headers=env.auth(role="viewer"))
    assert r.status_code == 200, r.text
    rows = r.json()
    assert [row["attrs"]["sink"] for row in rows] == ["mail", "ops"]  # newest first; alerts themselves are not listed
    newest = rows[0]
    assert newest["event_id"] == letters[1].event_id("dl1") and newest["type"] == "alert_undelivered"
    assert (newest["camera"], newest["queue"]) == ("cam1", "checkout")
    assert newest["ts"] == pytest.approx(T + 10, abs=1e-5)  # PostgreSQL keeps microseconds
    assert {k: newest["attrs"][k] for k in ("attempts", "status", "alert_id", "rule", "sink_type")} == {
        "attempts": 3, "status": 451, "alert_id": second.event_id("dl1"), "rule": "very_long_queue",
        "sink_type": "email"}

    page = env.client.get("/v1/stores/dl1/alerts/dead-letters?limit=1", headers=env.auth()).json()
    assert [row["attrs"]["sink"] for row in page] == ["mail"]
    assert env.client.get("/v1/stores/dl1/alerts/dead-letters?camera=cam2", headers=env.auth()).json() == []


def test_dead_letters_are_the_tenants_own(env: Env) -> None:
    if "dl1" not in env.keys:
        env.store("dl1")
    assert env.client.get("/v1/stores/dl1/alerts/dead-letters", headers=env.auth("other")).status_code == 404
    assert env.client.get("/v1/stores/dl1/alerts/dead-letters").status_code == 401
    assert env.client.get("/v1/stores/dl1/alerts/dead-letters?limit=0", headers=env.auth()).status_code == 422
