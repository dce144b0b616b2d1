"""The analytics service: tracks work stream -> zones, lines, queues -> events on JetStream."""
