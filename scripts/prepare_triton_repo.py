#!/usr/bin/env python
"""Build a Triton model repository for a config's detector: triton_models/ + the detector ONNX.

    python scripts/prepare_triton_repo.py --config rva/configs/vtest.yaml --out out/triton-repo
    python scripts/prepare_triton_repo.py --config FILE --out REPO --model rva_detector_onnx_trt  # GPU host

The ONNX is resolved like the standalone runner does (fetched, reshaped, quantized, cached), made
batch-dynamic, and linked (or with --copy, copied) into <model>/1/model.onnx; it is never committed.
Then serve it: tritonserver --model-repository=REPO (see services.common.servers.TritonServer).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rva.config import load_config
from rva.errors import RVAError
from services.inference.triton_repo import CPU_MODEL, TRITON_MODELS, prepare_model_repository


def main() -> int:
    """Entry point."""
    models = sorted(p.name for p in TRITON_MODELS.iterdir() if (p / "config.pbtxt").is_file())
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=True, type=Path, help="RVA config; its detector section picks the model")
    parser.add_argument("--out", required=True, type=Path, help="repository directory to write")
    parser.add_argument("--model", action="append", choices=models, help=f"model(s) to prepare (default {CPU_MODEL})")
    parser.add_argument("--copy", action="store_true", help="copy the ONNX instead of symlinking it from the cache")
    args = parser.parse_args()
    try:
        repo = prepare_model_repository(
            load_config(args.config).detector, args.out, tuple(args.model or [CPU_MODEL]), link=not args.copy
        )
    except RVAError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(repo)
    return 0


if __name__ == "__main__":
    sys.exit(main())
