"""Pose: top-down stick figures of people near shelves, and which bin each hand is in.

See docs/people.md (Pose).
"""

from .config import PoseConfig
from .estimator import (
    HandInBin,
    PoseEstimator,
    PoseInputError,
    Skeleton,
    SkeletonSet,
    TrackState,
)
from .figure import Figure, Joint, JOINTS, nearest_shelf, ShelfFront, SIDES, stick_figure

__all__ = ['Figure', 'HandInBin', 'Joint', 'JOINTS', 'nearest_shelf', 'PoseConfig',
           'PoseEstimator', 'PoseInputError', 'ShelfFront', 'SIDES', 'Skeleton', 'SkeletonSet',
           'stick_figure', 'TrackState']
