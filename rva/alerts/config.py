"""The ``alerts:`` section of the config: rules, the sinks alerts go to, and how deliveries are retried.

Rules are the store's; sinks are named so a rule can pick some (``sinks: [ops_webhook]``; null: all).
Secrets (the webhook key, Slack's URL, the SMTP password) come in as ``${ENV}`` interpolation, never in
the file, and never print (``SecretStr``).

```yaml
alerts:
  rules:
    - {name: long_queue, kind: queue_length, target: till_1, threshold: 4, for_s: 30, cooldown_s: 300}
    - {name: fall, kind: fall, for_s: 2, severity: critical, sinks: [ops, managers]}
  sinks:
    - {type: webhook, name: ops, url: "https://ops.example/rva", secret: "${RVA_WEBHOOK_SECRET}"}
    - {type: slack, name: managers, url: "${SLACK_WEBHOOK_URL}"}
    - {type: email, name: mail, host: smtp.example, sender: rva@example.com, recipients: [m@example.com],
       username: rva, password: "${SMTP_PASSWORD}"}
  retry: {attempts: 5, initial_delay_s: 0.5, max_delay_s: 30}
```
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

_NAME = r"^[A-Za-z0-9_-]{1,64}$"
SinkName = Annotated[str, Field(pattern=_NAME)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AlertRuleConfig(_Model):
    """When to tell a store manager: a condition on live numbers or events, held, then cooled down."""

    name: str = Field(pattern=_NAME, description="Unique within the store.")
    kind: Literal["queue_length", "queue_wait", "occupancy", "dwell", "camera_offline", "fall"] = Field(
        description="queue_length: people waiting > threshold; queue_wait: wait estimate (s) > threshold; "
        "occupancy: people in a zone > threshold (default: the zone's capacity); dwell: a visit longer than "
        "threshold seconds; camera_offline: a camera reconnecting or failed; fall: a person seen upright, then "
        "flagged lying down for for_s seconds (target: only inside that zone)."
    )
    camera: str | None = Field(None, pattern=_NAME, description="One camera (null: any).")
    target: str | None = Field(None, min_length=1, max_length=64, description="Zone or queue name (null: any).")
    threshold: float | None = Field(None, ge=0, le=1e9, description="Limit the live value must exceed.")
    for_s: float = Field(0.0, ge=0, le=86400, description="The condition must hold this long before it fires.")
    cooldown_s: float = Field(300.0, ge=0, le=7 * 86400, description="Fire at most once per this many seconds.")
    severity: Literal["info", "warning", "critical"] = Field("warning", description="How urgent.")
    enabled: bool = Field(True, description="Disabled rules are kept but never fire.")
    sinks: list[SinkName] | None = Field(
        None, max_length=32, description="Names of the sinks to notify (null: every configured sink)."
    )

    @model_validator(mode="after")
    def _threshold(self) -> AlertRuleConfig:
        if self.kind in ("queue_length", "queue_wait", "dwell") and self.threshold is None:
            raise ValueError(f"threshold is required for a {self.kind} rule")
        if self.kind == "fall" and self.for_s <= 0:
            # One flagged frame is detector flicker more often than a fall (see AlertEngine).
            raise ValueError("for_s must be > 0 for a fall rule (a person flagged lying down this long; try 2)")
        if self.sinks is not None and len(set(self.sinks)) != len(self.sinks):
            raise ValueError(f"sinks: duplicate names in {self.sinks}")
        return self


class _SinkBase(_Model):
    name: str = Field(pattern=_NAME, description="Unique sink name; rules pick sinks by it.")
    timeout_s: float = Field(10.0, gt=0, le=120, description="Deadline of one delivery attempt.")


def _http_url(url: str) -> str:
    if not url.startswith(("http://", "https://")) or len(url) < 10:
        raise ValueError("expected an http(s):// URL")
    return url


class WebhookSinkConfig(_SinkBase):
    """A generic HTTPS webhook: POST of the alert as JSON, signed with HMAC-SHA256 (see ``rva.alerts.sinks``)."""

    type: Literal["webhook"] = "webhook"
    url: str = Field(max_length=2048, description="Where the alert is POSTed (https:// in production).")
    secret: SecretStr = Field(
        min_length=16, description="HMAC-SHA256 key the receiver shares; pass it as ${ENV}, never in a file."
    )

    _url = field_validator("url")(lambda cls, v: _http_url(v))


class SlackSinkConfig(_SinkBase):
    """A Slack-compatible incoming webhook (``text`` + ``blocks``); Mattermost and others accept it too."""

    type: Literal["slack"] = "slack"
    url: SecretStr = Field(description="The incoming-webhook URL (it is the secret): pass it as ${ENV}.")

    @field_validator("url")
    @classmethod
    def _url(cls, v: SecretStr) -> SecretStr:
        _http_url(v.get_secret_value())
        return v


class EmailSinkConfig(_SinkBase):
    """Email over SMTP (STARTTLS, implicit TLS or plain for a local relay; optional login)."""

    type: Literal["email"] = "email"
    host: str = Field(min_length=1, max_length=253, description="SMTP server.")
    port: int = Field(587, ge=1, le=65535, description="SMTP port (587 STARTTLS, 465 TLS, 25 relay).")
    security: Literal["starttls", "tls", "none"] = Field(
        "starttls", description="starttls: upgrade after connecting; tls: TLS from the start; none: a local relay."
    )
    username: str | None = Field(None, min_length=1, description="Login name (null: no login).")
    password: SecretStr | None = Field(None, description="Login password; pass it as ${ENV}.")
    sender: str = Field(pattern=r"^[^@\s]+@[^@\s]+$", description="From address.")
    recipients: list[Annotated[str, Field(pattern=r"^[^@\s]+@[^@\s]+$")]] = Field(
        min_length=1, max_length=100, description="To addresses."
    )
    subject_prefix: str = Field("[RVA]", max_length=32, description="Put before every subject.")

    @model_validator(mode="after")
    def _login(self) -> EmailSinkConfig:
        if (self.username is None) != (self.password is None):
            raise ValueError("username and password go together")
        if self.username is not None and self.security == "none":
            raise ValueError("a login needs security starttls or tls (the password would travel in clear)")
        return self


SinkConfig = Annotated[WebhookSinkConfig | SlackSinkConfig | EmailSinkConfig, Field(discriminator="type")]


class RetryConfig(_Model):
    """How one sink's delivery is retried before the alert is dead-lettered."""

    attempts: int = Field(5, ge=1, le=20, description="Attempts per sink, the first included.")
    initial_delay_s: float = Field(0.5, gt=0, le=60, description="Wait before the second attempt.")
    max_delay_s: float = Field(
        30.0, gt=0, le=600, description="Ceiling of the exponential backoff, and of a receiver's Retry-After."
    )
    jitter: float = Field(
        0.5, ge=0, le=1, description="Each wait is shortened by up to this share at random (spreads retries)."
    )

    @model_validator(mode="after")
    def _order(self) -> RetryConfig:
        if self.max_delay_s < self.initial_delay_s:
            raise ValueError("max_delay_s must be at least initial_delay_s")
        return self


class AlertsConfig(_Model):
    """Alert rules, where alerts go, and how hard delivery tries."""

    rules: list[AlertRuleConfig] = Field(default_factory=list, max_length=1000)
    sinks: list[SinkConfig] = Field(default_factory=list, max_length=100)
    retry: RetryConfig = Field(default_factory=RetryConfig)
    upright_s: float = Field(
        1.0, ge=0, le=60,
        description="fall rules: a track must have been seen upright this long (continuously) before a fall "
        "counts, so something flagged lying down from its first frame (a jacket on the grass) never fires; "
        "0 turns the check off.",
    )

    @model_validator(mode="after")
    def _names(self) -> AlertsConfig:
        for what, names in (("rules", [r.name for r in self.rules]), ("sinks", [s.name for s in self.sinks])):
            dupes = sorted({n for n in names if names.count(n) > 1})
            if dupes:
                raise ValueError(f"{what}: duplicate names {dupes}")
        known = {s.name for s in self.sinks}
        for rule in self.rules:
            unknown = sorted(set(rule.sinks or ()) - known)
            if unknown:
                raise ValueError(f"rule {rule.name!r}: sinks {unknown} are not configured (have {sorted(known)})")
        return self
