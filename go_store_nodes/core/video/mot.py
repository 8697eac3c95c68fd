"""MOTChallenge track files: ``frame,id,x,y,w,h,conf,-1,-1,-1`` per line.

Frames count from 1, ``x, y`` is the top-left corner of the box and ``w, h`` its size,
all in pixels; ``conf`` is the detection or track confidence (ground truth files use it
as the "consider" flag, 0 = ignore). Columns after the seventh (class, visibility or 3D
position in the variants of the benchmark) are kept as read and written back as -1 when
absent.
"""

from __future__ import annotations

from dataclasses import dataclass
import math
from typing import Iterable, Sequence

from ..tracker import Track


class MotFormatError(ValueError):
    """A line of a MOT file cannot be read."""


@dataclass(frozen=True)
class MotRow:
    """One box of one track in one frame (px; frame 1-based)."""

    frame: int
    track_id: int
    x: float
    y: float
    w: float
    h: float
    conf: float = 1.0
    extra: tuple[float, ...] = (-1.0, -1.0, -1.0)

    def __post_init__(self) -> None:
        """Validate frame number and box."""
        if self.frame < 1:
            raise ValueError(f'frame must be >= 1 (MOT frames are 1-based), got {self.frame}')
        if not all(math.isfinite(v) for v in (self.x, self.y, self.w, self.h, self.conf)):
            raise ValueError(f'box and confidence must be finite, got {self}')
        if self.w < 0.0 or self.h < 0.0:
            raise ValueError(f'box width and height must be >= 0, got {self.w} x {self.h}')

    @property
    def corners(self) -> tuple[float, float, float, float]:
        """Return (x min, y min, x max, y max) in px."""
        return self.x, self.y, self.x + self.w, self.y + self.h


def _number(value: float) -> str:
    """Shortest text that reads back as the same float; integers without '.0'."""
    text = repr(float(value))
    text = text[:-2] if text.endswith('.0') else text
    return '0' if text == '-0' else text


def parse_mot(text: str, source: str = '<mot>') -> list[MotRow]:
    """Read MOT lines (comma or whitespace separated); blank lines are skipped."""
    rows = []
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line:
            continue
        parts = line.replace(',', ' ').split()
        if len(parts) < 6:
            raise MotFormatError(f'{source}:{number}: expected at least 6 values '
                                 f'(frame,id,x,y,w,h), got {len(parts)}')
        try:
            values = [float(p) for p in parts]
        except ValueError as error:
            raise MotFormatError(f'{source}:{number}: {error}') from None
        if not (values[0].is_integer() and values[1].is_integer()):
            raise MotFormatError(f'{source}:{number}: frame and id must be integers')
        try:
            rows.append(MotRow(int(values[0]), int(values[1]), values[2], values[3],
                               values[4], values[5],
                               conf=values[6] if len(values) > 6 else 1.0,
                               extra=tuple(values[7:]) if len(values) > 7
                               else (-1.0, -1.0, -1.0)))
        except ValueError as error:
            raise MotFormatError(f'{source}:{number}: {error}') from None
    return rows


def format_mot(rows: Iterable[MotRow]) -> str:
    """Write rows as MOT text, sorted by frame then id; ``parse_mot`` reads them back."""
    lines = []
    for row in sorted(rows, key=lambda r: (r.frame, r.track_id)):
        values = [f'{row.frame:d}', f'{row.track_id:d}',
                  *(_number(v) for v in (row.x, row.y, row.w, row.h, row.conf)),
                  *(_number(v) for v in row.extra)]
        lines.append(','.join(values))
    return '\n'.join(lines) + ('\n' if lines else '')


def rows_by_frame(rows: Iterable[MotRow]) -> dict[int, list[MotRow]]:
    """Group rows by frame number (frames without rows are absent)."""
    frames: dict[int, list[MotRow]] = {}
    for row in rows:
        frames.setdefault(row.frame, []).append(row)
    return frames


def tracks_to_rows(frame: int, tracks: Sequence[Track], max_unseen_s: float = 0.0,
                   width: float | None = None, height: float | None = None) -> list[MotRow]:
    """Convert ``image_box`` tracks of one frame to MOT rows.

    ``max_unseen_s``: tracks not matched to a detection for longer than this are left out
    (0: only tracks seen in this frame): a coasting prediction is not a box anyone saw,
    and MOT scores count it as a false positive when the person is hidden. ``width`` and
    ``height`` (px) clip boxes to the image when given.
    """
    rows = []
    for track in tracks:
        if track.position.shape[0] != 4:
            raise ValueError(f'track {track.track_id}: expected an image_box track '
                             f'(cx, cy, w, h), got {track.position.shape[0]} values')
        if track.unseen_s > max_unseen_s:
            continue
        cx, cy, w, h = (float(v) for v in track.position)
        x0, y0, x1, y1 = cx - w / 2.0, cy - h / 2.0, cx + w / 2.0, cy + h / 2.0
        if width is not None:
            x0, x1 = min(max(x0, 0.0), width), min(max(x1, 0.0), width)
        if height is not None:
            y0, y1 = min(max(y0, 0.0), height), min(max(y1, 0.0), height)
        if x1 <= x0 or y1 <= y0:
            continue
        # 1/1000 px is far below any detector's precision and keeps the file short.
        rows.append(MotRow(frame, track.track_id, round(x0, 3), round(y0, 3),
                           round(x1 - x0, 3), round(y1 - y0, 3),
                           conf=round(track.confidence, 3)))
    return rows
