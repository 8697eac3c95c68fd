"""Build rosbags message objects from core data: images, camera info, load cells, TF."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ..core.store import Intrinsics, static_transforms, StoreDescription
from .topics import CAMERA_INFO, CHECK_IN, IMAGE, LOAD_CELL_BATCH, TF_MESSAGE
from .typestore import message_class

_NS = 1_000_000_000


def time_msg(stamp_ns: int) -> object:
    """Return a builtin_interfaces/Time of integer nanoseconds."""
    sec, nanosec = divmod(int(stamp_ns), _NS)
    return message_class('builtin_interfaces/msg/Time')(sec=sec, nanosec=nanosec)


def time_ns(stamp: object) -> int:
    """Return the integer nanoseconds of a builtin_interfaces/Time message."""
    return int(stamp.sec) * _NS + int(stamp.nanosec)  # type: ignore[attr-defined]


def header(stamp_ns: int, frame_id: str) -> object:
    """Return a std_msgs/Header."""
    return message_class('std_msgs/msg/Header')(stamp=time_msg(stamp_ns), frame_id=frame_id)


def image(array: np.ndarray, stamp_ns: int, frame_id: str) -> object:
    """Return a sensor_msgs/Image of a uint16 HxW (16UC1) or uint8 HxWx3 (rgb8) array."""
    array = np.ascontiguousarray(array)
    if array.dtype == np.uint16 and array.ndim == 2:
        encoding, channels = '16UC1', 1
        array = array.astype('<u2', copy=False)
    elif array.dtype == np.uint8 and array.ndim == 3 and array.shape[2] == 3:
        encoding, channels = 'rgb8', 3
    else:
        raise ValueError(f'unsupported image array {array.dtype} {array.shape}: '
                         'expected uint16 HxW depth or uint8 HxWx3 colour')
    height, width = array.shape[:2]
    return message_class(IMAGE)(
        header=header(stamp_ns, frame_id), height=height, width=width, encoding=encoding,
        is_bigendian=0, step=width * channels * array.itemsize,
        data=np.frombuffer(array.tobytes(), dtype=np.uint8))


def camera_info(intrinsics: Intrinsics, stamp_ns: int, frame_id: str) -> object:
    """Return the sensor_msgs/CameraInfo of pinhole intrinsics (no rectification)."""
    k = intrinsics.k()
    p = np.zeros((3, 4))
    p[:, :3] = k
    return message_class(CAMERA_INFO)(
        header=header(stamp_ns, frame_id), height=intrinsics.height, width=intrinsics.width,
        distortion_model=intrinsics.distortion_model,
        d=np.asarray(intrinsics.d, dtype=np.float64), k=k.reshape(9).astype(np.float64),
        r=np.eye(3).reshape(9), p=p.reshape(12), binning_x=0, binning_y=0,
        roi=message_class('sensor_msgs/msg/RegionOfInterest')(
            x_offset=0, y_offset=0, height=0, width=0, do_rectify=False))


def load_cell_batch(shelf_id: str, bin_ids: Sequence[str], first_stamp_ns: int,
                    period_ns: int, grams: np.ndarray) -> object:
    """Return a go_store/LoadCellBatch of a (samples x bins) array of grams."""
    grams = np.asarray(grams, dtype=np.float32)
    if grams.ndim != 2 or grams.shape[1] != len(bin_ids):
        raise ValueError(f'grams must be samples x {len(bin_ids)} bins, got {grams.shape}')
    return message_class(LOAD_CELL_BATCH)(
        header=header(first_stamp_ns, shelf_id), shelf_id=shelf_id, bin_ids=list(bin_ids),
        sample_period_ns=int(period_ns), sample_count=int(grams.shape[0]),
        grams=grams.reshape(-1))


def check_in(gate_id: str, token: str, stamp_ns: int) -> object:
    """Return a go_store/CheckIn: one QR scan at a gate."""
    return message_class(CHECK_IN)(header=header(stamp_ns, gate_id), gate_id=gate_id,
                                   token=token)


def tf_static(description: StoreDescription, stamp_ns: int) -> object:
    """Return the tf2_msgs/TFMessage the calibration node latches for this store."""
    transform_stamped = message_class('geometry_msgs/msg/TransformStamped')
    transform = message_class('geometry_msgs/msg/Transform')
    vector = message_class('geometry_msgs/msg/Vector3')
    quaternion = message_class('geometry_msgs/msg/Quaternion')
    transforms = []
    for parent, child, t in static_transforms(description):
        x, y, z = (float(v) for v in t.translation)
        qx, qy, qz, qw = (float(v) for v in t.quaternion_xyzw())
        transforms.append(transform_stamped(
            header=header(stamp_ns, parent), child_frame_id=child,
            transform=transform(translation=vector(x=x, y=y, z=z),
                                rotation=quaternion(x=qx, y=qy, z=qz, w=qw))))
    return message_class(TF_MESSAGE)(transforms=transforms)
