"""Alerts: rules evaluated on live numbers, tracks and events (pure core), and their delivery.

:class:`~rva.alerts.engine.AlertEngine` (no I/O) turns live views, tracks and events into ``alert``
events; the edge runner and the gateway both call it. Delivery lives apart, in
:mod:`rva.alerts.sinks` (webhook, Slack, email) and :mod:`rva.alerts.notify` (retries, dead letters);
those need ``httpx`` (the ``sync`` extra) and are imported from their modules.
"""

from rva.alerts.config import (
    AlertRuleConfig,
    AlertsConfig,
    EmailSinkConfig,
    RetryConfig,
    SinkConfig,
    SlackSinkConfig,
    WebhookSinkConfig,
)
from rva.alerts.engine import AlertEngine, AlertState, Reading, camera_readings, store_readings

__all__ = [
    "AlertEngine",
    "AlertRuleConfig",
    "AlertState",
    "AlertsConfig",
    "EmailSinkConfig",
    "Reading",
    "RetryConfig",
    "SinkConfig",
    "SlackSinkConfig",
    "WebhookSinkConfig",
    "camera_readings",
    "store_readings",
]
