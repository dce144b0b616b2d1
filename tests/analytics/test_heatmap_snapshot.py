"""CameraAnalytics.heatmap_snapshot: undecayed person-seconds per cell between snapshots, ready to publish."""

import numpy as np
import pytest
from analytics_scenes import dets

from rva.analytics import CameraAnalytics
from rva.config import CameraConfig
from rva.core.events import EventType
from rva.stores.records import decode, encode

CAM = CameraConfig.model_validate(
    {"id": "cam1", "source": {"type": "file", "path": "x.mp4"}, "heatmap": {"cell_px": 100, "half_life_s": 10}}
)


def test_snapshots_add_up_to_the_window() -> None:
    cam = CameraAnalytics(CAM, (300, 200))  # 3 x 2 cells of 100 px
    assert cam.heatmap_snapshot() is None  # nothing seen yet
    for i in range(11):  # 10 fps for 1 s: track 1 stands in cell (0, 0), track 2 in cell (1, 2)
        cam.update(dets({1: (50.0, 50.0), 2: (250.0, 150.0)}), i * 0.1)
    first = cam.heatmap_snapshot()
    assert first is not None and first.type is EventType.HEATMAP_SNAPSHOT and first.ts == pytest.approx(1.0)
    assert first.attrs["shape"] == [2, 3] and first.attrs["cell_px"] == 100 and first.attrs["from_ts"] == 0.0
    assert first.attrs["cells"] == [0, 5]
    assert first.attrs["seconds"] == pytest.approx([1.0, 1.0])  # undecayed, although half_life_s is 10
    for i in range(11, 31):  # 2 more seconds, only track 1, now in cell (1, 0)
        cam.update(dets({1: (50.0, 150.0)}), i * 0.1)
    second = cam.heatmap_snapshot(3.5)
    assert second is not None and second.attrs["from_ts"] == pytest.approx(1.0)
    assert second.attrs["cells"] == [3] and second.attrs["seconds"] == pytest.approx([2.0])
    total = np.zeros(6)
    for snap in (first, second):
        np.add.at(total, snap.attrs["cells"], snap.attrs["seconds"])
    assert total.sum() == pytest.approx(4.0)  # 1 + 1 + 2 person-seconds, each counted once
    assert cam.heatmap_snapshot(4.0) is None  # nobody since
    with pytest.raises(ValueError, match="expected >= last update"):
        cam.heatmap_snapshot(2.0)


def test_snapshot_event_passes_the_store_validation() -> None:
    cam = CameraAnalytics(CAM, (300, 200))
    cam.update(dets({1: (50.0, 50.0)}), 0.0)
    cam.update(dets({1: (50.0, 50.0)}), 0.5)
    snap = cam.heatmap_snapshot()
    assert snap is not None
    subject, payload, headers = encode("s1", snap)
    assert subject == "rva.s1.cam1.heatmap_snapshot"
    assert decode("t", subject, payload, headers).event == snap
