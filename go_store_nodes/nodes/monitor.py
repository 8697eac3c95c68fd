"""Graph monitor: what a person at the store would check first, seen live over DDS.

Subscribes to /tf_static and calibration/status and reports the frames received
(with each frame's position in map), the calibration status and the graph's topics.
Used by `go-store demo`; nothing it prints is computed from the store description.
"""

from __future__ import annotations

from go_store.msg import CalibrationStatus
from rclpy.node import Node

from ..core.tf_buffer import TransformBuffer
from ..ros.tf import STATIC_TF_QOS, StaticTransformListener


class GraphMonitor(Node):
    """Listens to the store's latched topics and summarises the live graph."""

    def __init__(self, map_frame: str = 'map', **kwargs) -> None:
        """Subscribe to /tf_static and calibration/status."""
        super().__init__('graph_monitor', **kwargs)
        self.map_frame = map_frame
        self.buffer = TransformBuffer()
        self._listener = StaticTransformListener(self.buffer, self)
        self.status: CalibrationStatus | None = None
        self.create_subscription(CalibrationStatus, 'calibration/status',
                                 self._on_status, STATIC_TF_QOS)

    def _on_status(self, msg: CalibrationStatus) -> None:
        self.status = msg

    def report(self) -> str:
        """Frames, calibration status and topics received so far, as text."""
        lines = [f'TF frames received on /tf_static: {len(self.buffer.frames())}']
        for frame in sorted(self.buffer.frames() - {self.map_frame}):
            if self.buffer.can_transform(self.map_frame, frame):
                x, y, z = self.buffer.lookup(self.map_frame, frame).translation
                lines.append(f'  {frame:36s} at x={x:6.3f} y={y:6.3f} z={z:6.3f} m in '
                             f'{self.map_frame}')
        if self.status is None:
            lines.append('calibration/status: nothing received')
        else:
            sources = sorted({c.source for c in self.status.cameras})
            lines.append(f'calibration/status: {len(self.status.cameras)} cameras, '
                         f'poses from {", ".join(sources)}')
        lines.append('topics:')
        for name, types in sorted(self.get_topic_names_and_types()):
            publishers = self.count_publishers(name)
            lines.append(f'  {name:32s} {", ".join(types)} ({publishers} publishers)')
        nodes = sorted(f'{ns.rstrip("/")}/{name}'
                       for name, ns in self.get_node_names_and_namespaces())
        lines.append(f'nodes: {", ".join(nodes)}')
        return '\n'.join(lines)
