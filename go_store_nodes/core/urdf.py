"""URDF of the store for rviz2, generated from the store description.

Every link is a TF frame the calibration node publishes (``static_transforms``),
joined to ``map`` by a fixed joint with the same transform, so the model drawn in
rviz2 and the frames the nodes use cannot disagree. Do not run
robot_state_publisher on it: the calibration node is the one source of these frames.
"""

from __future__ import annotations

from xml.sax.saxutils import quoteattr

from .store import static_transforms, StoreDescription
from .transforms import rpy_from_rotation, Transform

CAMERA_BODY_M = (0.090, 0.025, 0.025)  # RealSense D435 housing, m


def _origin(transform: Transform) -> str:
    x, y, z = (f'{v:.6g}' for v in transform.translation)
    roll, pitch, yaw = (f'{v:.9g}' for v in rpy_from_rotation(transform.rotation))
    return f'<origin xyz="{x} {y} {z}" rpy="{roll} {pitch} {yaw}"/>'


def _box_visual(center: tuple[float, float, float], size: tuple[float, float, float],
                material: str) -> str:
    cx, cy, cz = (f'{v:.6g}' for v in center)
    sx, sy, sz = (f'{v:.6g}' for v in size)
    return (f'    <visual><origin xyz="{cx} {cy} {cz}" rpy="0 0 0"/>'
            f'<geometry><box size="{sx} {sy} {sz}"/></geometry>'
            f'<material name="{material}"/></visual>')


def store_urdf(description: StoreDescription) -> str:
    """Return the URDF text drawing floor, gates, shelves, bins and camera bodies."""
    lines = ['<?xml version="1.0"?>',
             '<!-- Generated from the store description by `go-store urdf`; do not edit. -->',
             f'<robot name={quoteattr(description.name)}>',
             '  <material name="floor"><color rgba="0.85 0.85 0.8 1"/></material>',
             '  <material name="shelf"><color rgba="0.55 0.45 0.35 1"/></material>',
             '  <material name="bin"><color rgba="0.3 0.6 0.9 0.5"/></material>',
             '  <material name="camera"><color rgba="0.1 0.1 0.1 1"/></material>',
             '  <material name="entry"><color rgba="0.2 0.8 0.2 0.6"/></material>',
             '  <material name="exit"><color rgba="0.9 0.2 0.2 0.6"/></material>',
             '  <material name="staff"><color rgba="0.9 0.7 0.1 0.6"/></material>',
             f'  <link name={quoteattr(description.map_frame)}>']
    width, depth = description.size_m
    lines.append(_box_visual((width / 2, depth / 2, -0.005), (width, depth, 0.01), 'floor'))
    for gate in description.gates:
        center = ((gate.min_m[0] + gate.max_m[0]) / 2, (gate.min_m[1] + gate.max_m[1]) / 2,
                  0.005)
        size = (gate.max_m[0] - gate.min_m[0], gate.max_m[1] - gate.min_m[1], 0.01)
        lines.append(_box_visual(center, size, gate.kind))
    lines.append('  </link>')
    shelves = {shelf.frame_id: shelf for shelf in description.shelves}
    cameras = {camera.depth_frame_id for camera in description.cameras}
    for parent, child, transform in static_transforms(description):
        lines.append(f'  <link name={quoteattr(child)}>')
        if child in shelves:
            shelf = shelves[child]
            length, shelf_depth, height = shelf.size_m
            lines.append(_box_visual((0.0, shelf_depth / 2, height / 2), shelf.size_m, 'shelf'))
            for shelf_bin in shelf.bins:
                c = shelf_bin.center_m()
                s = shelf_bin.size_m()
                lines.append(_box_visual((c[0], c[1], c[2]), (s[0], s[1], 0.02), 'bin'))
        elif child in cameras:
            lines.append(_box_visual((0.0, 0.0, -0.0125), CAMERA_BODY_M, 'camera'))
        lines.append('  </link>')
        lines.append(f'  <joint name={quoteattr(f"{parent}_to_{child}")} type="fixed">'
                     f'<parent link={quoteattr(parent)}/><child link={quoteattr(child)}/>'
                     f'{_origin(transform)}</joint>')
    lines.append('</robot>')
    return '\n'.join(lines) + '\n'
