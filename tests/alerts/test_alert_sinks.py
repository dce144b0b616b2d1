"""Each sink against a real receiver: the signed webhook, the Slack payload, email through a real SMTP server."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time

import pytest
from alert_servers import Receiver, SmtpServer

from rva.alerts.config import EmailSinkConfig, SlackSinkConfig, WebhookSinkConfig
from rva.alerts.errors import DeliveryError
from rva.alerts.sinks import EmailSink, SlackSink, WebhookSink, verify_signature
from rva.core.events import Event, EventType

SECRET = "a-webhook-secret-of-some-length"
ALERT = Event(EventType.ALERT, "till_cam", 1234.5, queue="till_1", attrs={
    "rule": "long_queue", "kind": "queue_length", "severity": "critical", "value": 6.0, "threshold": 4.0,
    "message": "queue length at till_cam/till_1: 6 > 4"})


def webhook(receiver: Receiver, secret: str = SECRET) -> WebhookSink:
    return WebhookSink(WebhookSinkConfig(name="ops", url=receiver.url, secret=secret))  # type: ignore[arg-type]


async def send_once(sink: WebhookSink | SlackSink | EmailSink, alert: Event = ALERT) -> None:
    try:
        await sink.send(alert, "store-7")
    finally:
        await sink.close()


def test_webhook_body_is_signed_and_the_receiver_can_check_it(receiver: Receiver) -> None:
    asyncio.run(send_once(webhook(receiver)))
    (req,) = receiver.requests
    # the receiver's own recomputation, as any receiver would write it: HMAC-SHA256("<timestamp>.<raw body>")
    ts = req.headers["X-RVA-Timestamp"]
    expected = "sha256=" + hmac.new(SECRET.encode(), ts.encode() + b"." + req.body, hashlib.sha256).hexdigest()
    assert req.headers["X-RVA-Signature"] == expected
    assert abs(int(ts) - time.time()) < 30
    assert verify_signature(SECRET, req.body, req.headers)
    # a wrong secret, a tampered body, a replay outside the tolerance or a missing header all fail
    assert not verify_signature("another-secret-of-some-length", req.body, req.headers)
    assert not verify_signature(SECRET, req.body.replace(b"6.0", b"1.0"), req.headers)
    assert not verify_signature(SECRET, req.body, req.headers, tolerance_s=300, now=int(ts) + 301)
    assert not verify_signature(SECRET, req.body, {k: v for k, v in req.headers.items() if k != "X-RVA-Timestamp"})
    # header names in any case (proxies lower-case them)
    assert verify_signature(SECRET, req.body, {k.lower(): v for k, v in req.headers.items()})


def test_webhook_payload_and_idempotency_key(receiver: Receiver) -> None:
    asyncio.run(send_once(webhook(receiver)))
    (req,) = receiver.requests
    body = json.loads(req.body)
    event_id = ALERT.event_id("store-7")
    assert req.headers["Idempotency-Key"] == event_id and req.headers["Content-Type"] == "application/json"
    assert body == {"type": "alert", "event_id": event_id, "store": "store-7", "camera": "till_cam", "ts": 1234.5,
                    "rule": "long_queue", "kind": "queue_length", "severity": "critical",
                    "message": "queue length at till_cam/till_1: 6 > 4", "value": 6.0, "threshold": 4.0,
                    "zone": None, "queue": "till_1", "track_id": None}


@pytest.mark.parametrize(("status", "retryable"), [(500, True), (503, True), (429, True), (400, False),
                                                   (404, False), (301, False)])
def test_http_status_decides_retry(receiver: Receiver, status: int, retryable: bool) -> None:
    receiver.answer(status, retry_after="7")
    with pytest.raises(DeliveryError) as err:
        asyncio.run(send_once(webhook(receiver)))
    assert (err.value.status, err.value.retryable) == (status, retryable)
    assert err.value.retry_after_s == (7.0 if retryable else None)


def test_a_dead_receiver_is_retryable_and_its_url_stays_out_of_the_error(free_port: object) -> None:
    url = f"http://127.0.0.1:{free_port()}/services/T0/B0/secret-token"  # type: ignore[operator]
    sink = SlackSink(SlackSinkConfig(name="chat", url=url))  # type: ignore[arg-type]
    with pytest.raises(DeliveryError) as err:
        asyncio.run(send_once(sink))
    assert err.value.retryable and err.value.status is None
    assert "secret-token" not in str(err.value)


def test_slack_payload_has_text_and_blocks(receiver: Receiver) -> None:
    sink = SlackSink(SlackSinkConfig(name="chat", url=receiver.url))  # type: ignore[arg-type]
    asyncio.run(send_once(sink, Event(EventType.ALERT, "cam", 5.0, track_id=12, attrs={
        "rule": "fall", "kind": "fall", "severity": "critical", "value": 2.5, "threshold": 2.0,
        "message": "person 12 down at cam for 2.5 s <&>"})))
    (req,) = receiver.requests
    msg = json.loads(req.body)
    assert "X-RVA-Signature" not in req.headers  # Slack authenticates by the secret URL
    assert msg["text"] == ":rotating_light: [CRITICAL] person 12 down at cam for 2.5 s &lt;&amp;&gt; (store-7)"
    header, section, fields, context = msg["blocks"]
    assert header == {"type": "header", "text": {"type": "plain_text", "text": "CRITICAL: fall", "emoji": True}}
    assert section["type"] == "section" and section["text"]["type"] == "mrkdwn"
    names = [f["text"].split("\n")[0] for f in fields["fields"]]
    assert names == ["*Store*", "*Camera*", "*Rule*", "*Severity*", "*Track*", "*Value*"]
    assert fields["fields"][-1]["text"] == "*Value*\n2.5 (limit 2)"
    assert context["type"] == "context" and "5.0 s" in context["elements"][0]["text"]


def email_sink(smtp: SmtpServer, **kw: object) -> EmailSink:
    return EmailSink(EmailSinkConfig.model_validate({
        "name": "mail", "host": smtp.host, "port": smtp.port, "security": "none", "sender": "rva@store.example",
        "recipients": ["manager@store.example", "ops@store.example"], "timeout_s": 5, **kw}))


def test_email_reaches_a_real_smtp_server(smtp_server: SmtpServer) -> None:
    asyncio.run(send_once(email_sink(smtp_server)))
    (msg,) = smtp_server.mailbox.messages
    assert msg["Subject"] == "[RVA] CRITICAL: queue length at till_cam/till_1: 6 > 4"
    assert msg["X-RVA-Severity"] == "critical" and msg["X-RVA-Rule"] == "long_queue"
    assert msg["X-RVA-Event-Id"] == ALERT.event_id("store-7")
    assert smtp_server.mailbox.envelopes == [("rva@store.example", ["manager@store.example", "ops@store.example"])]
    body = msg.get_body().get_content()  # type: ignore[union-attr]
    assert "store: store-7" in body and "camera: till_cam" in body and "severity: critical" in body


@pytest.mark.parametrize(("reply", "retryable"), [("451 4.3.0 mailbox busy, try later", True),
                                                  ("554 5.7.1 rejected", False)])
def test_smtp_reply_codes_decide_retry(smtp_server: SmtpServer, reply: str, retryable: bool) -> None:
    smtp_server.mailbox.refuse(reply)
    with pytest.raises(DeliveryError) as err:
        asyncio.run(send_once(email_sink(smtp_server)))
    assert (err.value.status, err.value.retryable) == (int(reply[:3]), retryable)
    assert smtp_server.mailbox.messages == []


def test_starttls_against_a_server_without_it_is_not_retried(smtp_server: SmtpServer) -> None:
    sink = email_sink(smtp_server, security="starttls", username="u", password="p")
    with pytest.raises(DeliveryError) as err:
        asyncio.run(send_once(sink))
    assert not err.value.retryable and "STARTTLS" in str(err.value)
