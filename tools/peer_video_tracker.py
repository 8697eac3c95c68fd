"""ByteTrack (roboflow ``trackers``) on the detections `go-store track-video` linked.

`go-store track-video ... --save-detections DET` writes the detections it fed its own
linker (MOT det format); this script runs ``trackers.ByteTrackTracker`` on the same
file and writes MOT tracks, so the two linkers can be compared on equal input.
``trackers`` 2.6.1 runs on numpy 2 without torch, but it depends on opencv-python (the
GUI build, which would overwrite this project's opencv-python-headless) and supervision,
so it is not in requirements.txt: run this script with a separate venv
(``python -m venv /tmp/peer && /tmp/peer/bin/pip install trackers==2.6.1``) and
PYTHONPATH pointing at the checkout (only ``go_store_nodes.core.video`` is imported).

Usage:
  /tmp/peer/bin/python tools/peer_video_tracker.py DET --out TRACKS [--fps 10]
"""

from __future__ import annotations

import argparse
import pathlib
import time

import numpy as np

from go_store_nodes.core.video import format_mot, MotRow, parse_mot, rows_by_frame


def main() -> None:
    """Run ByteTrack on a MOT det file; write MOT tracks and print the cost per frame."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('detections', help='MOT det file (frame,-1,x,y,w,h,score,...)')
    parser.add_argument('--out', required=True, help='MOT tracks file to write')
    parser.add_argument('--fps', type=float, default=10.0, help='frame rate (frames/s)')
    parser.add_argument('--frames', type=int, default=0,
                        help='frames in the video (0: the last frame with a detection)')
    args = parser.parse_args()

    from importlib.metadata import version

    import supervision as sv
    from trackers import ByteTrackTracker

    frames = rows_by_frame(parse_mot(pathlib.Path(args.detections).read_text()))
    last = args.frames or max(frames)
    # Defaults of trackers 2.6.1 but for the frame rate; the lost-track buffer is in
    # 30 fps frames (30 = 1 s).
    tracker = ByteTrackTracker(frame_rate=args.fps)
    rows = []
    spent_s = 0.0
    for frame in range(1, last + 1):
        dets = frames.get(frame, [])
        xyxy = np.array([r.corners for r in dets], dtype=float).reshape(-1, 4)
        detections = sv.Detections(xyxy=xyxy,
                                   confidence=np.array([r.conf for r in dets], dtype=float))
        started = time.perf_counter()
        tracked = tracker.update(detections)
        spent_s += time.perf_counter() - started
        for (x0, y0, x1, y1), track_id in zip(tracked.xyxy, tracked.tracker_id, strict=True):
            if track_id >= 0:
                rows.append(MotRow(frame, int(track_id), round(float(x0), 3),
                                   round(float(y0), 3), round(float(x1 - x0), 3),
                                   round(float(y1 - y0), 3)))
    pathlib.Path(args.out).write_text(format_mot(rows))
    print(f'trackers {version("trackers")} ByteTrack: {last} frames, '
          f'{len({r.track_id for r in rows})} tracks, {len(rows)} boxes -> {args.out}; '
          f'{1000 * spent_s / last:.2f} ms per update')


if __name__ == '__main__':
    main()
