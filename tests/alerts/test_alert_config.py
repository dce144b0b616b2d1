"""The ``alerts:`` config section: sinks by type, secrets from the environment, rules that name sinks."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from rva.config import load_config, parse_config
from rva.errors import ConfigError

CAMERA = {"id": "c", "source": {"type": "file", "path": "x.mp4"}}
WEBHOOK = {"type": "webhook", "name": "ops", "url": "https://ops.example/rva", "secret": "s" * 32}
SLACK = {"type": "slack", "name": "chat", "url": "https://hooks.slack.com/services/T/B/X"}
EMAIL = {"type": "email", "name": "mail", "host": "smtp.example", "sender": "rva@example.com",
         "recipients": ["m@example.com"], "username": "rva", "password": "pw"}


def alerts(**section: Any) -> dict[str, Any]:
    return {"cameras": [CAMERA], "alerts": section}


def test_a_full_section_parses_with_defaults() -> None:
    cfg = parse_config(alerts(rules=[{"name": "q", "kind": "queue_length", "threshold": 3, "sinks": ["ops"]},
                                     {"name": "f", "kind": "fall", "for_s": 2}],
                              sinks=[WEBHOOK, SLACK, EMAIL])).alerts
    assert [s.type for s in cfg.sinks] == ["webhook", "slack", "email"]
    assert cfg.retry.attempts == 5 and cfg.upright_s == 1.0
    assert cfg.sinks[2].port == 587 and cfg.sinks[2].security == "starttls"  # type: ignore[union-attr]
    assert "s" * 32 not in repr(cfg) and "pw" not in repr(cfg.sinks[2])  # secrets never print
    assert parse_config({"cameras": [CAMERA]}).alerts.rules == []  # the section is optional


@pytest.mark.parametrize(("section", "error"), [
    ({"rules": [{"name": "q", "kind": "queue_length", "threshold": 3, "sinks": ["nope"]}], "sinks": [WEBHOOK]},
     "sinks ['nope'] are not configured"),
    ({"sinks": [WEBHOOK, {**SLACK, "name": "ops"}]}, "sinks: duplicate names ['ops']"),
    ({"rules": [{"name": "f", "kind": "fall"}]}, "for_s must be > 0 for a fall rule"),
    ({"rules": [{"name": "q", "kind": "queue_wait"}]}, "threshold is required"),
    ({"sinks": [{**WEBHOOK, "secret": "short"}]}, "alerts.sinks.0.webhook.secret"),
    ({"sinks": [{**WEBHOOK, "url": "ftp://x.example/"}]}, "expected an http(s):// URL"),
    ({"sinks": [{**SLACK, "url": "hooks.slack.com"}]}, "expected an http(s):// URL"),
    ({"sinks": [{**EMAIL, "password": None}]}, "username and password go together"),
    ({"sinks": [{**EMAIL, "security": "none"}]}, "would travel in clear"),
    ({"sinks": [{**EMAIL, "recipients": []}]}, "alerts.sinks.0.email.recipients"),
    ({"sinks": [{**WEBHOOK, "type": "pager"}]}, "alerts.sinks.0"),
    ({"retry": {"initial_delay_s": 5, "max_delay_s": 1}}, "max_delay_s must be at least initial_delay_s"),
])
def test_bad_sections_fail_naming_the_field(section: dict[str, Any], error: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(error)):
        parse_config(alerts(**section))


def test_secrets_come_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RVA_TEST_HOOK_SECRET", "from-the-environment-0123456789")
    monkeypatch.setenv("RVA_TEST_SLACK_URL", "https://hooks.slack.com/services/T0/B0/abc")
    path = tmp_path / "store.yaml"
    path.write_text(yaml.safe_dump(alerts(sinks=[{**WEBHOOK, "secret": "${RVA_TEST_HOOK_SECRET}"},
                                                 {**SLACK, "url": "${RVA_TEST_SLACK_URL}"}])))
    sinks = load_config(path).alerts.sinks
    assert sinks[0].secret.get_secret_value() == "from-the-environment-0123456789"  # type: ignore[union-attr]
    assert sinks[1].url.get_secret_value().endswith("/abc")  # type: ignore[union-attr]
