"""The alerts service: alert events from JetStream -> webhook, Slack and email sinks; dead letters back as events."""
