"""Which services ``python -m services up`` starts for a config."""

from rva.config import parse_config
from services.stack import services_for

CAMERA = {"id": "c", "source": {"type": "file", "path": "x.mp4"}}


def test_the_pipeline_alone_by_default() -> None:
    assert services_for(parse_config({"cameras": [CAMERA]})) == ("decode", "inference", "tracking", "analytics")


def test_alerts_with_sinks_and_sync_with_a_cloud() -> None:
    cfg = parse_config({
        "cameras": [CAMERA],
        "alerts": {"sinks": [{"type": "webhook", "name": "ops", "url": "https://ops.example/hook",
                              "secret": "s" * 32}]},
        "services": {"sync": {"cloud_url": "https://cloud.example"}},
    })
    assert services_for(cfg)[-2:] == ("alerts", "sync")
