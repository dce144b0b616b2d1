"""``python -m rva.scenes --seed N --out DIR``: generate a ground-truth scene."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from rva.scenes.generate import PROBE_NAME, generate_scene, probe_fall
from rva.scenes.truth import read_truth


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, generate the scene, print its statistics; exit 1 if its truth is inconsistent."""
    parser = argparse.ArgumentParser(prog="python -m rva.scenes", description=__doc__)
    parser.add_argument("--seed", type=int, required=True, help="Seed of everything random.")
    parser.add_argument("--out", type=Path, required=True, help="Output folder.")
    parser.add_argument("--duration-s", type=float, default=120.0, help="Scene length in seconds (default 120).")
    parser.add_argument("--people", type=int, default=12, help="How many people (default 12).")
    parser.add_argument("--fps", type=float, default=10.0, help="Frame rate (default 10).")
    parser.add_argument("--no-video", action="store_true", help="Write config.yaml and truth.json only.")
    parser.add_argument(
        "--probe-fall",
        action="store_true",
        help="Run the default detector on the lying frames and write fall_probe.json (did 'Fall' fire?).",
    )
    args = parser.parse_args(argv)
    start = time.perf_counter()
    files = generate_scene(args.seed, args.out, args.duration_s, args.people, args.fps, video=not args.no_video)
    print(json.dumps(files.summary, indent=2))
    if args.probe_fall and files.video is not None:
        rows = probe_fall(files.video, read_truth(files.truth))
        (args.out / PROBE_NAME).write_text(json.dumps(rows, indent=1), encoding="utf-8")
        fired = sum(r["fallen"] for r in rows)
        print(f"fall probe: 'Fall' fired on {fired} of {len(rows)} lying person-frames probed", file=sys.stderr)
    print(f"wrote {args.out} in {time.perf_counter() - start:.1f} s", file=sys.stderr)
    for problem in files.problems:
        print(f"inconsistent truth: {problem}", file=sys.stderr)
    return 1 if files.problems else 0


if __name__ == "__main__":
    sys.exit(main())
