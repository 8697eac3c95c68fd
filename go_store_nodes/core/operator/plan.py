"""The store's floor plan for the page, from the store description (map frame, metres)."""

from __future__ import annotations

import numpy as np

from ..store import StoreDescription


def floor_plan(description: StoreDescription) -> dict:
    """Return the floor size, shelf footprints, gate zones and camera positions (JSON).

    A shelf frame has its origin on the floor at the middle of the front edge, x along the
    front, y into the shelf: the footprint is x in [-w/2, w/2], y in [0, depth].
    """
    shelves = []
    for shelf in description.shelves:
        width, depth = shelf.size_m[0], shelf.size_m[1]
        corners = np.array([[-width / 2, 0.0, 0.0], [width / 2, 0.0, 0.0],
                            [width / 2, depth, 0.0], [-width / 2, depth, 0.0]])
        points = shelf.t_map_shelf.apply(corners)[:, :2]
        bins = []
        for bin_ in shelf.bins:
            center = shelf.t_map_shelf.apply(bin_.center_m()[None])[0]
            bins.append({'bin_id': bin_.bin_id, 'x': round(float(center[0]), 3),
                         'y': round(float(center[1]), 3)})
        shelves.append({'shelf_id': shelf.shelf_id,
                        'points': [[round(float(x), 3), round(float(y), 3)] for x, y in points],
                        'bins': bins})
    gates = [{'gate_id': g.gate_id, 'kind': g.kind, 'min': list(g.min_m), 'max': list(g.max_m)}
             for g in description.gates]
    cameras = [{'camera_id': c.camera_id,
                'x': round(float(c.t_map_depth.translation[0]), 3),
                'y': round(float(c.t_map_depth.translation[1]), 3)}
               for c in description.cameras]
    return {'name': description.name, 'width_m': description.size_m[0],
            'depth_m': description.size_m[1], 'shelves': shelves, 'gates': gates,
            'cameras': cameras}
