"""Where alerts go: a signed webhook, a Slack-compatible incoming webhook, email over SMTP.

Each sink makes one delivery attempt per :meth:`AlertSink.send` and raises
:class:`~rva.alerts.errors.DeliveryError` saying whether another attempt may help; retries and dead
letters are :class:`~rva.alerts.notify.Notifier`'s.

Webhook signature (verify it with :func:`verify_signature`, or in any language):

* ``X-RVA-Timestamp``: Unix seconds when the attempt was made (each retry is signed afresh);
* ``X-RVA-Signature``: ``sha256=`` + hex HMAC-SHA256, keyed with the sink's ``secret``, of the bytes
  ``<X-RVA-Timestamp>.<raw request body>`` (the timestamp, one ``.``, then the body exactly as received);
* a receiver recomputes it, compares in constant time and refuses timestamps older than a few minutes,
  so a captured request cannot be replayed later;
* ``Idempotency-Key``: the alert's ``event_id``, the same on every retry and redelivery: a receiver
  that saw it already answers 2xx and does nothing.
"""

from __future__ import annotations

import abc
import asyncio
import hashlib
import hmac
import json
import smtplib
import ssl
import time
from collections.abc import Iterable, Mapping
from email.message import EmailMessage
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from rva.alerts.config import EmailSinkConfig, SinkConfig, SlackSinkConfig, WebhookSinkConfig
from rva.alerts.errors import DeliveryError
from rva.core.events import Event

SIGNATURE_HEADER = "X-RVA-Signature"
TIMESTAMP_HEADER = "X-RVA-Timestamp"
IDEMPOTENCY_HEADER = "Idempotency-Key"
USER_AGENT = "rva-alerts/1"
_ICONS = {"critical": ":rotating_light:", "warning": ":warning:", "info": ":information_source:"}


def alert_payload(alert: Event, store: str) -> dict[str, Any]:
    """The JSON body of a webhook: the alert flattened, with its id and store.

    Returns:
        ``{"type": "alert", "event_id", "store", "camera", "ts", "rule", "kind", "severity", "message",
        "value", "threshold", "zone", "queue", "track_id"}`` (absent values are null).

    """
    a = alert.attrs
    return {
        "type": str(alert.type), "event_id": alert.event_id(store), "store": store, "camera": alert.camera,
        "ts": alert.ts, "rule": a.get("rule"), "kind": a.get("kind"), "severity": a.get("severity"),
        "message": a.get("message"), "value": a.get("value"), "threshold": a.get("threshold"), "zone": alert.zone,
        "queue": alert.queue, "track_id": alert.track_id,
    }


def sign(secret: str | bytes, timestamp: str, body: bytes) -> str:
    """``sha256=<hex HMAC-SHA256 of "<timestamp>.<body>">``, the value of ``X-RVA-Signature``."""
    key = secret.encode() if isinstance(secret, str) else secret
    return "sha256=" + hmac.new(key, timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


def verify_signature(secret: str | bytes, body: bytes, headers: Mapping[str, str], tolerance_s: float = 300.0,
                     now: float | None = None) -> bool:
    """Whether a webhook request is genuine and fresh.

    Args:
        secret: The sink's shared secret.
        body: The raw request body, exactly as received (not re-serialized JSON).
        headers: The request headers (any case).
        tolerance_s: Refuse timestamps further than this from ``now`` (replays).
        now: Unix seconds (default: the clock).

    Returns:
        True when ``X-RVA-Signature`` matches the body and ``X-RVA-Timestamp`` is within the tolerance.

    """
    lower = {k.lower(): v for k, v in headers.items()}
    timestamp, signature = lower.get(TIMESTAMP_HEADER.lower()), lower.get(SIGNATURE_HEADER.lower())
    if not timestamp or not signature or not timestamp.isdigit():
        return False
    if abs((time.time() if now is None else now) - int(timestamp)) > tolerance_s:
        return False
    return hmac.compare_digest(sign(secret, timestamp, body), signature)


def slack_payload(alert: Event, store: str) -> dict[str, Any]:
    """A Slack incoming-webhook message: ``text`` (notifications, fallback) and ``blocks`` (the layout)."""
    a = alert.attrs
    severity = str(a.get("severity", "warning"))
    message = _mrkdwn(str(a.get("message", "")))
    fields = [("Store", store), ("Camera", alert.camera), ("Rule", a.get("rule")), ("Severity", severity)]
    target = alert.zone or alert.queue
    if target:
        fields.append(("Zone" if alert.zone else "Queue", target))
    if alert.track_id is not None:
        fields.append(("Track", alert.track_id))
    if a.get("value") is not None:
        fields.append(("Value", f"{a['value']:g}" + (f" (limit {a['threshold']:g})" if a.get("threshold") is not None
                                                      else "")))
    icon = _ICONS.get(severity, ":bell:")
    return {
        "text": f"{icon} [{severity.upper()}] {message} ({_mrkdwn(store)})",
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": f"{severity.upper()}: {a.get('rule')}"[:150],
                                        "emoji": True}},
            {"type": "section", "text": {"type": "mrkdwn", "text": f"{icon} {message}"[:3000]}},
            {"type": "section", "fields": [{"type": "mrkdwn", "text": f"*{k}*\n{_mrkdwn(str(v))}"[:2000]}
                                           for k, v in fields[:10]]},
            {"type": "context", "elements": [{"type": "mrkdwn",
                                              "text": f"event `{alert.event_id(store)}` at {alert.ts:.1f} s"}]},
        ],
    }


def _mrkdwn(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def email_message(alert: Event, store: str, cfg: EmailSinkConfig) -> EmailMessage:
    """The email of an alert: severity and message in the subject, every field in the body."""
    a = alert.attrs
    severity = str(a.get("severity", "warning")).upper()
    msg = EmailMessage()
    msg["Subject"] = f"{cfg.subject_prefix} {severity}: {a.get('message', '')}"[:250]
    msg["From"] = cfg.sender
    msg["To"] = ", ".join(cfg.recipients)
    event_id = alert.event_id(store)
    msg["Message-ID"] = f"<{event_id}.{cfg.name}@rva.alerts>"  # the same on a retry: clients can fold duplicates
    msg["X-RVA-Severity"] = severity.lower()
    msg["X-RVA-Rule"] = str(a.get("rule", ""))
    msg["X-RVA-Event-Id"] = event_id
    lines = [str(a.get("message", "")), ""]
    for key, value in alert_payload(alert, store).items():
        if value is not None and key != "message":
            lines.append(f"{key}: {value}")
    msg.set_content("\n".join(lines) + "\n")
    return msg


class AlertSink(abc.ABC):
    """One place alerts are delivered to.

    Attributes:
        name: The configured sink name (rules pick sinks by it).
        kind: ``webhook``, ``slack`` or ``email``.

    """

    name: str
    kind: str

    @abc.abstractmethod
    async def send(self, alert: Event, store: str) -> None:
        """Make one delivery attempt.

        Raises:
            DeliveryError: It failed; ``retryable`` says whether another attempt may succeed.

        """

    async def close(self) -> None:  # noqa: B027 - optional
        """Release connections."""


class _HttpSink(AlertSink):
    """A sink that POSTs JSON; maps responses and transport errors to :class:`DeliveryError`."""

    def __init__(self, name: str, timeout_s: float) -> None:
        self.name = name
        self.timeout_s = timeout_s
        self._client: httpx.AsyncClient | None = None

    async def _post(self, url: str, body: bytes, headers: Mapping[str, str]) -> None:
        if self._client is None:  # made on first use: it belongs to the running event loop
            self._client = httpx.AsyncClient(timeout=self.timeout_s, follow_redirects=False)
        try:
            response = await self._client.post(url, content=body, headers={
                "Content-Type": "application/json", "User-Agent": USER_AGENT, **headers})
        except httpx.HTTPError as err:
            # Refused, reset, timed out: the receiver may come back; a bad URL and friends: no retry helps.
            # The URL never goes into the message: Slack's is a secret, and dead letters are listed.
            text = f"{type(err).__name__}: {err}".replace(url, "<url>")
            raise DeliveryError(text, retryable=isinstance(err, httpx.TransportError)) from None
        status = response.status_code
        if 200 <= status < 300:
            return
        retryable = status == 429 or status >= 500
        raise DeliveryError(f"HTTP {status}: {response.text[:200]}", retryable=retryable, status=status,
                            retry_after_s=_retry_after(response.headers.get("Retry-After")) if retryable else None)

    async def close(self) -> None:
        """Close the HTTP connection pool."""
        if self._client is not None:
            await self._client.aclose()
            self._client = None


def _retry_after(value: str | None) -> float | None:
    """``Retry-After`` as seconds: a number of seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


class WebhookSink(_HttpSink):
    """POST of :func:`alert_payload` as JSON, signed (see the module docs) with an ``Idempotency-Key``."""

    kind = "webhook"

    def __init__(self, cfg: WebhookSinkConfig) -> None:
        super().__init__(cfg.name, cfg.timeout_s)
        self.url = cfg.url
        self._secret = cfg.secret.get_secret_value().encode()

    async def send(self, alert: Event, store: str) -> None:
        """POST the alert once."""
        body = json.dumps(alert_payload(alert, store), separators=(",", ":"), sort_keys=True).encode()
        timestamp = str(int(time.time()))
        await self._post(self.url, body, {
            TIMESTAMP_HEADER: timestamp, SIGNATURE_HEADER: sign(self._secret, timestamp, body),
            IDEMPOTENCY_HEADER: alert.event_id(store)})


class SlackSink(_HttpSink):
    """POST of :func:`slack_payload` to a Slack-compatible incoming webhook."""

    kind = "slack"

    def __init__(self, cfg: SlackSinkConfig) -> None:
        super().__init__(cfg.name, cfg.timeout_s)
        self._url = cfg.url.get_secret_value()

    async def send(self, alert: Event, store: str) -> None:
        """POST the message once."""
        body = json.dumps(slack_payload(alert, store), separators=(",", ":")).encode()
        await self._post(self._url, body, {})


class EmailSink(AlertSink):
    """One email per alert over SMTP (smtplib in a worker thread; its socket timeout bounds each step)."""

    kind = "email"

    def __init__(self, cfg: EmailSinkConfig) -> None:
        self.name = cfg.name
        self.cfg = cfg

    async def send(self, alert: Event, store: str) -> None:
        """Send the email once."""
        await asyncio.to_thread(self._send, email_message(alert, store, self.cfg))

    def _send(self, msg: EmailMessage) -> None:
        cfg = self.cfg
        try:
            smtp = (smtplib.SMTP_SSL(cfg.host, cfg.port, timeout=cfg.timeout_s, context=ssl.create_default_context())
                    if cfg.security == "tls" else smtplib.SMTP(cfg.host, cfg.port, timeout=cfg.timeout_s))
            with smtp:
                if cfg.security == "starttls":
                    smtp.starttls(context=ssl.create_default_context())
                if cfg.username is not None and cfg.password is not None:
                    smtp.login(cfg.username, cfg.password.get_secret_value())
                smtp.send_message(msg)
        except smtplib.SMTPRecipientsRefused as err:
            codes = [code for code, _ in err.recipients.values()]
            raise DeliveryError(f"SMTP recipients refused: {err.recipients}", status=max(codes, default=None),
                                retryable=any(400 <= c < 500 for c in codes)) from None
        except smtplib.SMTPResponseException as err:  # 4xx: try again later; 5xx: permanent (SMTP's own rule)
            raw = err.smtp_error
            reply = raw.decode(errors="replace") if isinstance(raw, bytes) else str(raw)
            raise DeliveryError(f"SMTP {err.smtp_code}: {reply[:200]}", status=err.smtp_code,
                                retryable=400 <= err.smtp_code < 500) from None
        except (smtplib.SMTPNotSupportedError, ssl.SSLError) as err:  # no STARTTLS, a bad certificate
            raise DeliveryError(f"{type(err).__name__}: {err}", retryable=False) from None
        except (smtplib.SMTPException, OSError) as err:  # disconnected, refused, timed out
            raise DeliveryError(f"{type(err).__name__}: {err}", retryable=True) from None


def build_sink(cfg: SinkConfig) -> AlertSink:
    """The sink a config describes."""
    if isinstance(cfg, WebhookSinkConfig):
        return WebhookSink(cfg)
    if isinstance(cfg, SlackSinkConfig):
        return SlackSink(cfg)
    return EmailSink(cfg)


def build_sinks(configs: Iterable[SinkConfig]) -> list[AlertSink]:
    """Every configured sink."""
    return [build_sink(c) for c in configs]
