"""Bad input gets a clear error, a non-zero exit, and leaves nothing that looks complete."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.timeout(300)


def _rva(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "rva.cli", *args], capture_output=True, text=True,
                          timeout=280, check=False)


def _config(tmp_path: Path, source: dict, **extra: object) -> Path:
    cfg = {"cameras": [{"id": "cam", "source": source}], **extra}
    path = tmp_path / "rva.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def _finished_outputs(out: Path) -> list[str]:
    if not out.exists():
        return []
    return sorted(p.name for p in out.iterdir() if not p.name.endswith(".part"))


@pytest.mark.parametrize(
    ("camera", "message"),
    [
        ({"id": "cam", "source": {"type": "file", "path": "x.mp4"},
          "zones": [{"name": "z", "polygon": [[0, 0], [1, 1]]}]}, "cameras.0.zones.0.polygon"),
        ({"id": "cam", "source": {"type": "stream", "url": "ftp://cam"}}, "cameras.0.source.stream.url"),
        ({"id": "cam", "source": {"type": "file", "path": "x.mp4"}, "colour": "red"}, "cameras.0.colour"),
        ({"id": "cam", "source": {"type": "file", "path": "x.mp4"}, "frame_size": [100, 100],
          "lines": [{"name": "l", "start": [0, 0], "end": [500, 0]}]}, "outside the 100x100 frame"),
        ({"id": "bad id!", "source": {"type": "file", "path": "x.mp4"}}, "cameras.0.id"),
    ],
)
def test_bad_config_names_the_field(tmp_path: Path, camera: dict, message: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({"cameras": [camera]}))
    proc = _rva("run", "--config", str(path), "--out", str(tmp_path / "out"))
    assert proc.returncode == 2
    assert message in proc.stderr
    assert _finished_outputs(tmp_path / "out") == []
    check = _rva("check", str(path))
    assert check.returncode == 2


def test_config_that_is_not_yaml(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("cameras: [\n  - id: x\n  source: {")
    proc = _rva("check", str(path))
    assert proc.returncode == 2 and "not valid YAML" in proc.stderr


def test_missing_model_is_a_clear_error(tmp_path: Path, vtest_path: Path) -> None:
    missing = tmp_path / "nowhere" / "model.onnx"
    path = _config(tmp_path, {"type": "file", "path": str(vtest_path)},
                   detector={"type": "onnx", "model": str(missing)})
    proc = _rva("run", "--config", str(path), "--out", str(tmp_path / "out"))
    assert proc.returncode == 2
    assert str(missing) in proc.stderr
    assert _finished_outputs(tmp_path / "out") == []


@pytest.mark.parametrize("kind", ["random", "empty", "text"])
def test_unreadable_video_fails_at_start(tmp_path: Path, kind: str) -> None:
    video = tmp_path / "broken.mp4"
    video.write_bytes({"random": bytes(range(256)) * 400, "empty": b"", "text": b"not a video\n" * 50}[kind])
    proc = _rva("run", "--config", str(_config(tmp_path, {"type": "file", "path": str(video)})),
                "--out", str(tmp_path / "out"))
    assert proc.returncode == 2
    assert "cannot open video file" in proc.stderr
    assert _finished_outputs(tmp_path / "out") == []


def test_truncated_video_processes_what_is_there(tmp_path: Path, vtest_path: Path) -> None:
    video = tmp_path / "truncated.avi"
    video.write_bytes(vtest_path.read_bytes()[: 400_000])
    out = tmp_path / "out"
    proc = _rva("run", "--config", str(_config(tmp_path, {"type": "file", "path": str(video)})),
                "--out", str(out), "--quiet")
    assert proc.returncode == 0, proc.stderr[-2000:]
    import json

    summary = json.loads((out / "summary.json").read_text())
    assert 0 < summary["frames"] < 795  # what the file holds, no more
    assert summary["cameras"]["cam"]["source"]["state"] in {"ended", "failed"}
