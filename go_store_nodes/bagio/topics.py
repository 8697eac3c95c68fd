"""Absolute topic names and types of go_store bags (docs/topics.md, realsense2_camera)."""

from __future__ import annotations

from dataclasses import dataclass

from ..core.topics import (  # noqa: F401 - re-exported for the recorder
    CALIBRATION_STATUS_TOPIC,
    CART_EVENTS_TOPIC,
    CHECK_IN_RESULT_TOPIC,
    DETECTIONS_TOPIC,
    MARKERS_TOPIC,
    PRODUCT_OBSERVATIONS_TOPIC,
    RECEIPTS_TOPIC,
    SHELF_EVENTS_TOPIC,
    SKELETONS_TOPIC,
    TRACKS_TOPIC,
    VISITS_TOPIC,
)

IMAGE = 'sensor_msgs/msg/Image'
CAMERA_INFO = 'sensor_msgs/msg/CameraInfo'
LOAD_CELL_BATCH = 'go_store/msg/LoadCellBatch'
CHECK_IN = 'go_store/msg/CheckIn'
TF_MESSAGE = 'tf2_msgs/msg/TFMessage'
CLOCK = 'rosgraph_msgs/msg/Clock'
TF_STATIC_TOPIC = '/tf_static'
CLOCK_TOPIC = '/clock'

# custom_data keys the replay recorder writes into the output bag's metadata.yaml.
CUSTOM_REAL_TIME_FACTOR = 'go_store.replay.real_time_factor'
CUSTOM_SOURCE_BAG = 'go_store.replay.source_bag'

# What the node graph produces: the recorder of `go-store replay` records these.
OUTPUT_TOPICS: dict[str, str] = {
    DETECTIONS_TOPIC: 'go_store/msg/PersonDetectionArray',
    TRACKS_TOPIC: 'go_store/msg/TrackArray',
    SKELETONS_TOPIC: 'go_store/msg/SkeletonArray',
    SHELF_EVENTS_TOPIC: 'go_store/msg/ShelfEvent',
    CART_EVENTS_TOPIC: 'go_store/msg/CartEvent',
    VISITS_TOPIC: 'go_store/msg/Visit',
    RECEIPTS_TOPIC: 'go_store/msg/Receipt',
    CHECK_IN_RESULT_TOPIC: 'go_store/msg/CheckInResult',
    CALIBRATION_STATUS_TOPIC: 'go_store/msg/CalibrationStatus',
    PRODUCT_OBSERVATIONS_TOPIC: 'go_store/msg/ProductObservationArray',
}
# What the graph draws for viewers (rviz2 live, Foxglove on the recorded MCAP): recorded
# beside the outputs, never read by the evaluation.
VIEW_TOPICS: dict[str, str] = {MARKERS_TOPIC: 'visualization_msgs/msg/MarkerArray'}
RECORDED_TOPICS: dict[str, str] = {**OUTPUT_TOPICS, **VIEW_TOPICS}
# Latched (transient local) topics: the recorder and the player keep their QoS.
LATCHED_TOPICS = frozenset({TF_STATIC_TOPIC, CALIBRATION_STATUS_TOPIC})


@dataclass(frozen=True)
class CameraTopics:
    """The four topics of one RealSense camera under /cameras/<cam>/."""

    depth_image: str
    depth_info: str
    color_image: str
    color_info: str


def camera_topics(camera_id: str) -> CameraTopics:
    """Return realsense2_camera's topic names of ``camera_id`` under /cameras."""
    base = f'/cameras/{camera_id}'
    return CameraTopics(f'{base}/depth/image_rect_raw', f'{base}/depth/camera_info',
                        f'{base}/color/image_raw', f'{base}/color/camera_info')


def weights_topic(shelf_id: str) -> str:
    """Return the load-cell topic of a shelf."""
    return f'/shelves/{shelf_id}/weights'


def check_in_topic(gate_id: str) -> str:
    """Return the QR check-in topic of a gate."""
    return f'/gates/{gate_id}/check_in'
