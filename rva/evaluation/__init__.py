"""Accuracy evaluation against real ground truth: MOTChallenge tracking (see :mod:`rva.evaluation.mot`)."""

from rva.evaluation.mot import (
    NOISE_LEVELS,
    TUD_SEQUENCES,
    MotSequence,
    NoiseLevel,
    RvaByteTrackAdapter,
    TrackerAdapter,
    TrackerRun,
    TrackingScores,
    occlusion_fraction,
    parse_mot,
    perturb,
    run_tracker,
    score_tracking,
    tud_sequence,
)

__all__ = [
    "NOISE_LEVELS",
    "TUD_SEQUENCES",
    "MotSequence",
    "NoiseLevel",
    "RvaByteTrackAdapter",
    "TrackerAdapter",
    "TrackerRun",
    "TrackingScores",
    "occlusion_fraction",
    "parse_mot",
    "perturb",
    "run_tracker",
    "score_tracking",
    "tud_sequence",
]
