"""People in video: MOTChallenge track files and image-plane linking (pure; docs/people.md)."""

from .linking import (
    border_zones,
    BoxDetection,
    hsv_signature,
    non_max_suppression,
    video_tracker_config,
    VideoLinker,
)
from .mot import (
    format_mot,
    MotFormatError,
    MotRow,
    parse_mot,
    rows_by_frame,
    tracks_to_rows,
)

__all__ = ['border_zones', 'BoxDetection', 'format_mot', 'hsv_signature', 'MotFormatError',
           'MotRow', 'non_max_suppression', 'parse_mot', 'rows_by_frame', 'tracks_to_rows',
           'video_tracker_config', 'VideoLinker']
