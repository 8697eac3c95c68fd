"""Plain marker descriptions: what the node turns into visualization_msgs/Marker.

Kinds and actions are names here; the node maps them onto the Marker constants. Every
position is in the map frame (m), colours are RGBA in [0, 1], quaternions x, y, z, w.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

Vec3 = tuple[float, float, float]
Rgba = tuple[float, float, float, float]


class MarkerKind(str, Enum):
    """Shapes used by the store view (a subset of visualization_msgs/Marker types)."""

    CUBE = 'cube'
    SPHERE = 'sphere'
    CYLINDER = 'cylinder'
    LINE_STRIP = 'line_strip'
    LINE_LIST = 'line_list'
    SPHERE_LIST = 'sphere_list'
    TEXT = 'text'          # TEXT_VIEW_FACING; scale z is the letter height


class MarkerAction(str, Enum):
    """Add (or replace) a marker, delete one, or delete every marker shown so far."""

    ADD = 'add'
    DELETE = 'delete'
    DELETE_ALL = 'delete_all'


@dataclass(frozen=True)
class Marker:
    """One marker: (namespace, marker_id) names it for as long as what it draws lives."""

    namespace: str
    marker_id: int
    kind: MarkerKind = MarkerKind.CUBE
    action: MarkerAction = MarkerAction.ADD
    position: Vec3 = (0.0, 0.0, 0.0)
    orientation_xyzw: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 1.0)
    scale: Vec3 = (1.0, 1.0, 1.0)
    color: Rgba = (1.0, 1.0, 1.0, 1.0)
    points: tuple[Vec3, ...] = ()
    text: str = ''
    lifetime_s: float = 0.0        # 0: until replaced or deleted

    @property
    def key(self) -> tuple[str, int]:
        """(namespace, id): the identity rviz2 and Foxglove use."""
        return (self.namespace, self.marker_id)


def delete(namespace: str, marker_id: int) -> Marker:
    """Return the DELETE of one marker."""
    return Marker(namespace, marker_id, action=MarkerAction.DELETE)


@dataclass(frozen=True)
class MarkerSet:
    """Markers to publish at once, stamped ``stamp_ns`` (newest input), in ``frame_id``."""

    stamp_ns: int
    frame_id: str
    markers: tuple[Marker, ...]

    def by_key(self) -> dict[tuple[str, int], Marker]:
        """Markers by (namespace, id); a later entry replaces an earlier one."""
        return {m.key: m for m in self.markers}

    def namespaces(self) -> set[str]:
        """Namespaces of the markers added or deleted."""
        return {m.namespace for m in self.markers if m.action != MarkerAction.DELETE_ALL}
