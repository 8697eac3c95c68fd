"""TF over rclpy without tf2_ros: static broadcaster, listener into a TransformBuffer."""

from __future__ import annotations

from typing import Iterable

from geometry_msgs.msg import TransformStamped
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from rclpy.time import Time
from tf2_msgs.msg import TFMessage

from ..core.tf_buffer import TransformBuffer
from ..core.transforms import Transform

# tf2_ros's static QoS: reliable, transient local, keep all (latched for late joiners).
STATIC_TF_QOS = QoSProfile(depth=1, history=HistoryPolicy.KEEP_LAST,
                           reliability=ReliabilityPolicy.RELIABLE,
                           durability=DurabilityPolicy.TRANSIENT_LOCAL)


def transform_to_msg(parent_frame: str, child_frame: str, transform: Transform,
                     stamp: Time) -> TransformStamped:
    """Build a TransformStamped (T_parent_child) stamped ``stamp``."""
    msg = TransformStamped()
    msg.header.stamp = stamp.to_msg()
    msg.header.frame_id = parent_frame
    msg.child_frame_id = child_frame
    x, y, z = (float(v) for v in transform.translation)
    msg.transform.translation.x, msg.transform.translation.y = x, y
    msg.transform.translation.z = z
    qx, qy, qz, qw = (float(v) for v in transform.quaternion_xyzw())
    rotation = msg.transform.rotation
    rotation.x, rotation.y, rotation.z, rotation.w = qx, qy, qz, qw
    return msg


def transform_from_msg(msg: TransformStamped) -> Transform:
    """Return the core Transform (T_parent_child) of a TransformStamped."""
    t = msg.transform.translation
    q = msg.transform.rotation
    return Transform.from_quaternion_xyzw((q.x, q.y, q.z, q.w), (t.x, t.y, t.z))


class StaticTransformBroadcaster:
    """Publishes a set of static transforms once, latched on /tf_static."""

    def __init__(self, node: Node) -> None:
        """Create the /tf_static publisher on ``node``."""
        self._publisher = node.create_publisher(TFMessage, '/tf_static', STATIC_TF_QOS)

    def send(self, transforms: Iterable[TransformStamped]) -> None:
        """Publish every transform in one latched message (replaces earlier ones)."""
        self._publisher.publish(TFMessage(transforms=list(transforms)))


class StaticTransformListener:
    """Fills a TransformBuffer from /tf_static; takes a node rather than being one."""

    def __init__(self, buffer: TransformBuffer, node: Node) -> None:
        """Subscribe ``node`` to /tf_static and store what arrives in ``buffer``."""
        self.buffer = buffer
        self._node = node
        self._subscription = node.create_subscription(
            TFMessage, '/tf_static', self._on_message, STATIC_TF_QOS)

    def _on_message(self, msg: TFMessage) -> None:
        for transform in msg.transforms:
            try:
                self.buffer.set_transform(transform.header.frame_id, transform.child_frame_id,
                                          transform_from_msg(transform))
            except ValueError as error:
                self._node.get_logger().error(
                    f'dropped transform {transform.header.frame_id!r} -> '
                    f'{transform.child_frame_id!r}: {error}')
