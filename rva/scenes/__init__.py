"""Semi-synthetic store scenes with exact ground truth, made from real footage.

Real people cut out of vtest.avi walk a scripted store drawn on its empty background: walk-throughs,
browsing with dwell in zones, a first-in-first-out checkout queue with people served and people giving
up, crossings of the entrance both ways, people passing behind each other, someone lying on the floor.
``python -m rva.scenes --seed N --out DIR`` writes ``scene.mp4`` (H.264), ``config.yaml`` (an RVA
config reading it) and ``truth.json`` (per-frame boxes, zone visits, line crossings, queue outcomes).
"""

from rva.scenes.generate import SceneFiles, generate_scene
from rva.scenes.truth import derive_truth, read_truth, validate

__all__ = ["SceneFiles", "derive_truth", "generate_scene", "read_truth", "validate"]
