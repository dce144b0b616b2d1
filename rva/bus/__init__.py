"""Message bus adapters: analytics events onto NATS JetStream (thin; the cores know nothing of it)."""

from rva.bus.jetstream import EVENTS_STREAM, EVENTS_SUBJECTS, EventPublisher, ensure_stream, subject_for

__all__ = ["EVENTS_STREAM", "EVENTS_SUBJECTS", "EventPublisher", "ensure_stream", "subject_for"]
