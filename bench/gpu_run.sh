#!/usr/bin/env bash
# Runs bench/gpu_streams.py on the GPU machine (device tool) from the carried folder .carry/ (see
# bench/gpu_notes.md for what it holds and how it is made). Writes everything under $OUT.
#   bench/gpu_run.sh [extra gpu_streams.py arguments]
set -uo pipefail
export PYTHONUNBUFFERED=1 NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
OUT=${OUT:-out/gpu}
mkdir -p "$OUT"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
  .carry/whl/*.whl || exit 1
export PYTHONPATH="/tmp/site:$PWD/.carry/pnv:$PWD"
{ nvidia-smi; nproc; python3 -c "import torch, PyNvVideoCodec, pydantic, pynvml; \
print(torch.__version__, torch.cuda.get_device_name(0), PyNvVideoCodec.__version__, pydantic.__version__)"; } \
  >"$OUT/env.txt" 2>&1
tail -3 "$OUT/env.txt"
python3 bench/gpu_streams.py --json "$OUT/gpu_streams.json" --clip .carry/clip1080.mp4 \
  --pose-n .carry/w/yolo11n-pose.pt --fall-s .carry/w/best.pt --reference .carry/reference.npz "$@" \
  2>&1 | tee "$OUT/log.txt"
