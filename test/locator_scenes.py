"""Hand-built depth scenes for the locator tests: a floor, boxes, cylinders and spheres.

Each pixel's ray from a pinhole camera is intersected with every shape; the nearest hit
gives the optical depth (m). Noise follows the D435 model the locator assumes, from a
seeded generator, so a scene is the same on every run.
"""

from __future__ import annotations

from dataclasses import dataclass
import math

import numpy as np

from go_store_nodes.core.store import Intrinsics
from go_store_nodes.core.transforms import rotation_from_rpy, Transform

D435_FX_424 = 223.4


def intrinsics(width=212, height=120):
    """D435 depth intrinsics scaled to width x height (424x240 at full size)."""
    scale = width / 424.0
    return Intrinsics(width, height, D435_FX_424 * scale, D435_FX_424 * scale,
                      (211.5 + 0.5) * scale - 0.5, (119.5 + 0.5) * scale - 0.5, 'plumb_bob',
                      (0.0,) * 5)


def camera_pose(x, y, z, tilt_deg=0.0, yaw_deg=0.0):
    """Pose of an optical frame at (x, y, z) looking down, tilted towards +y by tilt_deg."""
    down = np.array([[1.0, 0.0, 0.0], [0.0, -1.0, 0.0], [0.0, 0.0, -1.0]])
    rotation = rotation_from_rpy(math.radians(tilt_deg), 0.0, math.radians(yaw_deg)) @ down
    return Transform(rotation, np.array([x, y, z], dtype=float))


@dataclass(frozen=True)
class Box:
    low: tuple[float, float, float]
    high: tuple[float, float, float]


@dataclass(frozen=True)
class Cylinder:
    x: float
    y: float
    radius: float
    height: float


@dataclass(frozen=True)
class Sphere:
    x: float
    y: float
    z: float
    radius: float


def person(x, y, height=1.75, shoulder_radius=0.21):
    """Return a standing person: a body cylinder up to the shoulders and a head sphere."""
    head_radius = 0.11
    return (Cylinder(x, y, shoulder_radius, height - 0.28),
            Sphere(x, y, height - head_radius, head_radius))


def bending_adult(x, y):
    """Return an adult bending forward (+x): legs, a level back, the head forward."""
    return (Cylinder(x, y, 0.15, 0.85), Box((x - 0.1, y - 0.2, 0.8), (x + 0.5, y + 0.2, 1.05)),
            Sphere(x + 0.55, y, 1.0, 0.11))


def _rays(k: Intrinsics, pose: Transform):
    u, v = np.meshgrid(np.arange(k.width, dtype=float), np.arange(k.height, dtype=float))
    d_cam = np.stack([(u - k.cx) / k.fx, (v - k.cy) / k.fy, np.ones_like(u)], axis=-1)
    d_cam = d_cam.reshape(-1, 3)
    return np.asarray(pose.translation), d_cam @ np.asarray(pose.rotation).T, d_cam


def render_depth(k: Intrinsics, pose: Transform, shapes=(), noise_subpixel=0.08, seed=0,
                 floor=True):
    """Optical depth (float32 m, 0 = no hit) of a scene seen by one camera."""
    origin, directions, _ = _rays(k, pose)
    # Directions have unit optical-z, so ray parameter t equals the optical depth.
    t = np.full(len(directions), np.inf)
    if floor:
        dz = directions[:, 2]
        with np.errstate(divide='ignore', invalid='ignore'):
            hit = -origin[2] / dz
        t = np.where((hit > 0) & np.isfinite(hit), hit, t)
    for shape in shapes:
        t = np.minimum(t, _intersect(shape, origin, directions))
    depth = np.where(np.isfinite(t), t, 0.0)
    if noise_subpixel > 0:
        rng = np.random.default_rng(seed)
        rms = depth ** 2 * noise_subpixel / (k.fx * 0.050)
        depth = np.where(depth > 0, depth + rms * rng.standard_normal(depth.shape), 0.0)
    # Quantised to mm, as a 16UC1 image would be.
    return (np.rint(depth * 1000.0) / 1000.0).reshape(k.height, k.width).astype(np.float32)


def _intersect(shape, origin, d):
    inf = np.full(len(d), np.inf)
    if isinstance(shape, Box):
        low, high = np.array(shape.low), np.array(shape.high)
        with np.errstate(divide='ignore', invalid='ignore'):
            t1 = (low - origin) / d
            t2 = (high - origin) / d
        near = np.nanmax(np.minimum(t1, t2), axis=1)
        far = np.nanmin(np.maximum(t1, t2), axis=1)
        return np.where((far >= near) & (near > 0), near, inf)
    if isinstance(shape, Sphere):
        c = np.array([shape.x, shape.y, shape.z])
        oc = origin - c
        a = np.einsum('ij,ij->i', d, d)
        b = 2.0 * d @ oc
        cc = oc @ oc - shape.radius ** 2
        disc = b * b - 4 * a * cc
        root = (-b - np.sqrt(np.maximum(disc, 0.0))) / (2 * a)
        return np.where((disc >= 0) & (root > 0), root, inf)
    # Vertical cylinder with a flat top, standing on the floor.
    ox, oy = origin[0] - shape.x, origin[1] - shape.y
    a = d[:, 0] ** 2 + d[:, 1] ** 2
    b = 2 * (ox * d[:, 0] + oy * d[:, 1])
    cc = ox * ox + oy * oy - shape.radius ** 2
    disc = b * b - 4 * a * cc
    with np.errstate(divide='ignore', invalid='ignore'):
        side = (-b - np.sqrt(np.maximum(disc, 0.0))) / (2 * a)
        z_side = origin[2] + side * d[:, 2]
        side_ok = (disc >= 0) & (side > 0) & (z_side >= 0) & (z_side <= shape.height)
        top = (shape.height - origin[2]) / d[:, 2]
    px, py = ox + top * d[:, 0], oy + top * d[:, 1]
    top_ok = (top > 0) & (px * px + py * py <= shape.radius ** 2)
    return np.minimum(np.where(side_ok, side, inf), np.where(top_ok, top, inf))


def project(point, k: Intrinsics, pose: Transform):
    """Pixel (u, v) of a map point."""
    p = pose.inverse().apply(np.asarray(point, dtype=float))
    return k.fx * p[0] / p[2] + k.cx, k.fy * p[1] / p[2] + k.cy
