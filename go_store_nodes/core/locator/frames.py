"""What goes into and out of the locator: camera frames, observations, detections.

Also the decoding of raw image buffers (encoding, size, step, bytes, as sensor_msgs/Image
carries them) into arrays, so that the node's edge stays a field copy and every check
on a camera's bytes is tested here.
"""

from __future__ import annotations

from dataclasses import dataclass
import math

import numpy as np
from numpy.typing import NDArray

from ..store import Intrinsics
from ..transforms import Transform

# Encodings of depth images (realsense2_camera: 16UC1 in mm; some drivers: 32FC1 in m).
DEPTH_ENCODINGS_MM = ('16UC1', 'mono16')
DEPTH_ENCODINGS_M = ('32FC1',)
COLOR_ENCODINGS = ('rgb8', 'bgr8')


class FrameRejectedError(ValueError):
    """A frame the locator drops; ``reason`` is a short counter key, e.g. 'out_of_order'."""

    def __init__(self, reason: str, message: str) -> None:
        """Keep the reason key beside the message."""
        super().__init__(message)
        self.reason = reason


def _buffer(encoding: str, height: int, width: int, step: int, data: bytes | NDArray,
            pixel_bytes: int) -> NDArray[np.uint8]:
    """Return the image rows (height, width * pixel_bytes) of a raw buffer, or raise."""
    if height <= 0 or width <= 0:
        raise FrameRejectedError('malformed', f'{encoding} image of size {width}x{height}')
    row = width * pixel_bytes
    if step < row:
        raise FrameRejectedError('malformed', f'{encoding} image {width}x{height}: step {step} '
                            f'is shorter than a row of {row} bytes')
    raw = np.frombuffer(data, dtype=np.uint8) if not isinstance(data, np.ndarray) \
        else data.reshape(-1).view(np.uint8)
    if raw.size < step * (height - 1) + row:
        raise FrameRejectedError('malformed', f'{encoding} image {width}x{height} step {step} '
                            f'needs {step * height} bytes, got {raw.size}')
    rows = np.lib.stride_tricks.as_strided(raw, shape=(height, row), strides=(step, 1))
    return rows


def decode_depth(encoding: str, height: int, width: int, step: int, is_bigendian: bool,
                 data: bytes | NDArray) -> NDArray[np.float32]:
    """Return a depth image in metres (float32 HxW, 0 = no data; NaN/inf become 0)."""
    if encoding in DEPTH_ENCODINGS_MM:
        rows = _buffer(encoding, height, width, step, data, 2)
        dtype = np.dtype('>u2' if is_bigendian else '<u2')
        millimetres = np.ascontiguousarray(rows).view(dtype).reshape(height, width)
        return millimetres.astype(np.float32) * np.float32(0.001)
    if encoding in DEPTH_ENCODINGS_M:
        rows = _buffer(encoding, height, width, step, data, 4)
        float_dtype = np.dtype('>f4' if is_bigendian else '<f4')
        metres = np.ascontiguousarray(rows).view(float_dtype).reshape(height, width)
        metres = metres.astype(np.float32)
        metres[~np.isfinite(metres) | (metres < 0.0)] = 0.0
        return metres
    raise FrameRejectedError('wrong_encoding', f'depth encoding {encoding!r} is not one of '
                        f'{", ".join(DEPTH_ENCODINGS_MM + DEPTH_ENCODINGS_M)}')


def decode_color(encoding: str, height: int, width: int, step: int,
                 data: bytes | NDArray) -> NDArray[np.uint8]:
    """Return a colour image as rgb8 (uint8 HxWx3)."""
    if encoding not in COLOR_ENCODINGS:
        raise FrameRejectedError('wrong_encoding', f'colour encoding {encoding!r} is not one of '
                            f'{", ".join(COLOR_ENCODINGS)}')
    rows = _buffer(encoding, height, width, step, data, 3)
    image = np.ascontiguousarray(rows).reshape(height, width, 3)
    return image[:, :, ::-1].copy() if encoding == 'bgr8' else image


def check_intrinsics(intrinsics: Intrinsics, height: int, width: int, what: str) -> None:
    """Raise FrameRejectedError unless an image of this size fits its camera_info."""
    if (intrinsics.width, intrinsics.height) != (width, height):
        raise FrameRejectedError('wrong_size', f'{what} image is {width}x{height} but its '
                            f'camera_info says {intrinsics.width}x{intrinsics.height}')
    values = (intrinsics.fx, intrinsics.fy, intrinsics.cx, intrinsics.cy) + intrinsics.d
    if not all(math.isfinite(v) for v in values) or intrinsics.fx <= 0 or intrinsics.fy <= 0:
        raise FrameRejectedError('bad_camera_info', f'{what} camera_info has unusable '
                            f'intrinsics fx={intrinsics.fx} fy={intrinsics.fy}')
    if any(intrinsics.d) and intrinsics.distortion_model not in ('plumb_bob',
                                                                 'rational_polynomial'):
        raise FrameRejectedError('bad_camera_info', f'{what} distortion model '
                            f'{intrinsics.distortion_model!r} is not supported')


@dataclass(frozen=True, eq=False)
class DepthFrame:
    """One depth image of one camera with what is needed to place its pixels in map."""

    camera_id: str
    stamp_ns: int                      # capture time (header stamp)
    depth_m: NDArray[np.float32]       # HxW, metres along the optical axis, 0 = no data
    intrinsics: Intrinsics             # of the depth stream
    t_map_depth: Transform             # pose of the depth optical frame in map
    received_ns: int | None = None     # receive time on the locator's clock; None: unknown


@dataclass(frozen=True, eq=False)
class ColorFrame:
    """One colour image of one camera (for appearance only)."""

    camera_id: str
    stamp_ns: int
    rgb: NDArray[np.uint8]             # HxWx3
    intrinsics: Intrinsics
    t_map_color: Transform


@dataclass(frozen=True, eq=False)
class CameraObservation:
    """The foreground of one depth frame, placed in map."""

    camera_id: str
    stamp_ns: int
    points: NDArray[np.float32]        # (N, 3) map points, m
    pixels: NDArray[np.int64]          # (N,) flat depth pixel index of each point
    cells: NDArray[np.int64]           # (N,) flat floor-grid cell of each point
    bands_m: NDArray[np.float32]       # (N,) two RMS depth errors at each point, m
    sideways_m: NDArray[np.float32]    # (N,) RMS horizontal error of each point, m
    sideways_map_m: NDArray[np.float32]  # per floor cell: RMS horizontal error of a point
    #                                    # at standing height there; inf out of view
    intrinsics: Intrinsics             # of the depth frame, and its pose: what the camera
    t_map_depth: Transform             # could see
    foreground_pixels: int             # foreground pixels before the height/floor cut


@dataclass(frozen=True)
class Detection:
    """One person located at one capture time (map frame)."""

    x_m: float                         # floor point below the head
    y_m: float
    height_m: float                    # top of the head above the floor
    area_m2: float                     # floor-projected area of the blob
    confidence: float                  # [0, 1] that the blob is a person
    covariance: NDArray[np.float64]    # 3x3 of (x, y, z) of the position, m^2
    camera_ids: tuple[str, ...]
    appearance: tuple[float, ...]      # unit-norm colour signature; () when no colour


@dataclass(frozen=True)
class LocatedSet:
    """The people located in one approximate-time frame set."""

    stamp_ns: int                      # capture time of the set (mean of its frames)
    camera_ids: tuple[str, ...]        # cameras with a frame in the set
    detections: tuple[Detection, ...]
