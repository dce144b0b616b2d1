"""The alerts service on a real nats-server: an alert event in, deliveries out, a dead letter back as an event."""

from __future__ import annotations

import asyncio
import uuid

from alert_servers import Receiver, SmtpServer

from rva.bus.jetstream import EVENTS_STREAM, EventPublisher
from rva.config import RVAConfig, parse_config
from rva.core.events import Event, EventType
from rva.events.v1 import events_pb2
from rva.stores.servers import LocalServer
from services.alerts.service import AlertsService

SECRET = "a-webhook-secret-of-some-length"


def config(store: str, nats_url: str, receiver: Receiver, smtp: SmtpServer) -> RVAConfig:
    return parse_config({
        "store": store,
        "cameras": [{"id": "till_cam", "source": {"type": "file", "path": "x.mp4"}}],
        "services": {"nats": {"url": nats_url}, "alerts": {"ack_wait_s": 2.0}},
        "alerts": {
            "sinks": [{"type": "webhook", "name": "ops", "url": receiver.url, "secret": SECRET},
                      {"type": "email", "name": "mail", "host": smtp.host, "port": smtp.port, "security": "none",
                       "sender": "rva@s.example", "recipients": ["m@s.example"]}],
            "retry": {"attempts": 3, "initial_delay_s": 0.05, "max_delay_s": 0.1},
        },
    })


def test_alerts_are_delivered_and_a_failing_sink_is_dead_lettered_as_an_event(
        nats_server: LocalServer, receiver: Receiver, smtp_server: SmtpServer) -> None:
    receiver.answer(500)
    store = f"alrt{uuid.uuid4().hex[:8]}"
    cfg = config(store, nats_server.url, receiver, smtp_server)
    alert = Event(EventType.ALERT, "till_cam", 1_700_000_000.0, queue="till", attrs={
        "rule": "long_queue", "kind": "queue_length", "severity": "warning", "value": 5.0, "threshold": 3.0,
        "message": "queue length at till_cam/till: 5 > 3"})

    async def scenario() -> tuple[Event, int, int, AlertsService]:
        service = AlertsService(cfg, list(cfg.cameras))
        await service.start()
        try:
            js = service.nc.jetstream(timeout=5)
            letters = await js.subscribe(f"rva.{store}.till_cam.alert_undelivered", stream=EVENTS_STREAM)
            await EventPublisher(js, store).publish(alert)
            msg = await letters.next_msg(timeout=15)
            letter = Event.from_proto(events_pb2.Event.FromString(msg.data))
            # acknowledged once the deliveries are settled: nothing pending on the durable consumer
            for _ in range(50):
                info = await js.consumer_info(EVENTS_STREAM, f"alerts-{store}-till_cam")
                if info.num_ack_pending == 0 and info.num_pending == 0 and info.delivered.stream_seq > 0:
                    break
                await asyncio.sleep(0.1)
            return letter, info.num_ack_pending, info.num_pending, service
        finally:
            await service.drain(2.0)
            await service.close()

    letter, ack_pending, pending, service = asyncio.run(asyncio.wait_for(scenario(), 60))
    assert (ack_pending, pending) == (0, 0)
    metrics = service.metrics.registry
    assert metrics.get_sample_value("rva_alerts_delivered_total", {"sink": "mail"}) == 1
    assert metrics.get_sample_value("rva_alerts_dead_lettered_total", {"sink": "ops"}) == 1
    assert len(receiver.requests) == 3  # the webhook answered 500 three times
    assert len(smtp_server.mailbox.messages) == 1  # the email went out once
    assert letter.type is EventType.ALERT_UNDELIVERED and (letter.camera, letter.ts) == ("till_cam", alert.ts)
    assert letter.attrs["sink"] == "ops" and letter.attrs["attempts"] == 3 and letter.attrs["status"] == 500
    assert letter.attrs["alert_id"] == alert.event_id(store)
