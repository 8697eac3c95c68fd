"""Calibration node: publishes the store's frames as static TF and their calibration status.

Publishes (latched, transient local):
  /tf_static            tf2_msgs/TFMessage: map -> each camera's depth and colour optical
                        frames, map -> each shelf (from the store description, or the
                        extrinsics file it names)
  calibration/status    go_store/CalibrationStatus: where each camera's pose came from
  diagnostics           diagnostic_msgs/DiagnosticArray
A description with a missing or non-orthonormal extrinsic is refused: the node logs
which camera and field, publishes nothing, and exits with status 1.
"""

from __future__ import annotations

import math
import sys

from go_store.msg import CalibrationStatus, CameraCalibration
from rclpy.node import Node

from ..core.store import load_store_description, static_transforms, StoreDescription
from ..ros.diagnostics import NodeDiagnostics, OK
from ..ros.params import declare_parameters, DIAGNOSTICS_PERIOD, STORE_DESCRIPTION
from ..ros.share import default_store_description
from ..ros.tf import STATIC_TF_QOS, StaticTransformBroadcaster, transform_to_msg
from .runner import run_single_node

PARAMETERS = (
    STORE_DESCRIPTION,
    DIAGNOSTICS_PERIOD,
)


class CalibrationNode(Node):
    """Publishes map -> camera and map -> shelf transforms from the store description."""

    def __init__(self, **kwargs) -> None:
        """Load the description and latch its transforms; raise if it is invalid."""
        super().__init__('calibration', **kwargs)
        params = declare_parameters(self, PARAMETERS)
        path = params['store_description'] or str(default_store_description())
        self.diagnostics = NodeDiagnostics(self, params['diagnostics_period_s'])
        self.description: StoreDescription = load_store_description(path)
        self._broadcaster = StaticTransformBroadcaster(self)
        self._status_publisher = self.create_publisher(
            CalibrationStatus, 'calibration/status', STATIC_TF_QOS)
        self.publish_calibration()
        self.diagnostics.values['store_description'] = path
        self.diagnostics.set_status(
            OK, f'{len(self.description.cameras)} cameras, '
            f'{len(self.description.shelves)} shelves published')

    def publish_calibration(self) -> None:
        """Latch every static transform and the calibration status, stamped now."""
        stamp = self.get_clock().now()
        transforms = [transform_to_msg(parent, child, transform, stamp)
                      for parent, child, transform in static_transforms(self.description)]
        self._broadcaster.send(transforms)
        status = CalibrationStatus()
        status.header.stamp = stamp.to_msg()
        status.header.frame_id = self.description.map_frame
        for camera in self.description.cameras:
            quality = self.description.calibration_quality.get(camera.camera_id, {})
            status.cameras.append(CameraCalibration(
                camera_id=camera.camera_id, depth_frame_id=camera.depth_frame_id,
                color_frame_id=camera.color_frame_id,
                source=self.description.extrinsics_source.get(camera.camera_id, ''),
                reprojection_rms_px=quality.get('reprojection_rms_px', math.nan),
                floor_height_error_m=quality.get('floor_height_error_m', math.nan),
                floor_tilt_error_deg=quality.get('floor_tilt_error_deg', math.nan)))
        self._status_publisher.publish(status)
        self.diagnostics.count('transforms_published', len(transforms))
        self.get_logger().info(
            f'published {len(transforms)} static transforms from '
            f'{self.description.source_path}')


def main(args: list[str] | None = None) -> None:
    """Run the calibration node until shut down."""
    sys.exit(run_single_node(CalibrationNode, args))


NODE = CalibrationNode

if __name__ == '__main__':
    main()
