"""Record a simulation run as a rosbag2 MCAP bag, and its truth.json apart (`go-store simulate`).

The simulation and the renderer follow docs/simulation.md: ``Simulation.run()`` yields
``Tick`` objects in time order and ``Simulation.truth`` is complete afterwards;
``Renderer.render(camera_id, bodies, stamp_ns)`` returns (depth uint16 mm, colour rgb8)
and ``Renderer.intrinsics(camera_id)`` the scaled (depth, colour) intrinsics; a tick that
carries the shelf stock hands it to ``Renderer.set_stock`` before its cameras render.
Every message is stored at its tick's time; headers carry the sensor stamps.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
import json
import pathlib
import time
from typing import Any, Callable

from ..core.store import StoreDescription
from . import messages
from .topics import (
    CAMERA_INFO,
    camera_topics,
    CHECK_IN,
    check_in_topic,
    IMAGE,
    LOAD_CELL_BATCH,
    TF_MESSAGE,
    TF_STATIC_TOPIC,
    weights_topic,
)
from .writer import BagWriter

# custom_data keys written into metadata.yaml of a simulated bag.
CUSTOM_SCENARIO = 'go_store.scenario'
CUSTOM_SEED = 'go_store.seed'
CUSTOM_STORE = 'go_store.store'

ProgressCallback = Callable[[float, float], None]


@dataclass(frozen=True)
class RecordedBag:
    """What ``record_simulation`` wrote."""

    path: pathlib.Path
    truth_path: pathlib.Path
    counts: dict[str, int]
    sim_duration_s: float
    wall_s: float


def truth_document(truth: Any) -> dict:
    """Return the JSON document (dict) of a ``Truth`` object (or a dict as it is)."""
    if isinstance(truth, dict):
        return truth
    for name in ('to_dict', 'to_json_dict', 'as_dict'):
        method = getattr(truth, name, None)
        if callable(method):
            return dict(method())
    to_json = getattr(truth, 'to_json', None)
    if callable(to_json):
        return json.loads(to_json())
    if dataclasses.is_dataclass(truth) and not isinstance(truth, type):
        return dataclasses.asdict(truth)
    raise TypeError(f'cannot turn {type(truth).__name__} into truth.json')


def truth_outside_bag(out_dir: pathlib.Path, truth_path: pathlib.Path) -> None:
    """Refuse a truth file inside the bag folder: whoever reads the bag must not find truth."""
    bag = out_dir.resolve()
    truth = truth_path.resolve()
    if truth == bag or bag in truth.parents:
        raise ValueError(f'{truth_path} is inside the bag folder {out_dir}; write the truth '
                         'somewhere a replay of the bag does not look (e.g. beside the folder)')


def record_simulation(simulation: Any, renderer: Any, description: StoreDescription,
                      out_dir: str | pathlib.Path, truth_path: str | pathlib.Path, *,
                      total_s: float = 0.0,
                      custom_data: dict[str, str] | None = None,
                      compression_level: int | None = None,
                      progress: ProgressCallback | None = None) -> RecordedBag:
    """Run ``simulation`` to the end, render its camera frames and write the bag.

    ``out_dir`` becomes the bag folder (metadata.yaml, .mcap); the truth goes to
    ``truth_path``, which must lie outside it.
    """
    out = pathlib.Path(out_dir)
    truth_file = pathlib.Path(truth_path)
    truth_outside_bag(out, truth_file)
    wall_start = time.monotonic()
    cameras = [(c, camera_topics(c.camera_id)) for c in description.cameras]
    shelf_bins = {s.shelf_id: [b.bin_id for b in s.bins] for s in description.shelves}
    first_ns: int | None = None
    last_ns = 0
    with BagWriter(out, custom_data=custom_data, compression_level=compression_level) as bag:
        for tick in simulation.run():
            stamp_ns = int(tick.stamp_ns)
            if first_ns is None:
                first_ns = stamp_ns
                bag.write(TF_STATIC_TOPIC, TF_MESSAGE, stamp_ns,
                          messages.tf_static(description, stamp_ns))
            last_ns = stamp_ns
            for data in tick.check_ins:
                bag.write(check_in_topic(data.gate_id), CHECK_IN, stamp_ns,
                          messages.check_in(data.gate_id, data.token, stamp_ns))
            for batch in tick.load_cells:
                bin_ids = list(getattr(batch, 'bin_ids', None) or shelf_bins[batch.shelf_id])
                bag.write(weights_topic(batch.shelf_id), LOAD_CELL_BATCH, stamp_ns,
                          messages.load_cell_batch(batch.shelf_id, bin_ids,
                                                   int(batch.first_stamp_ns),
                                                   int(batch.period_ns), batch.grams))
            if tick.camera_frame:
                stock = getattr(tick, 'stock', None)
                if stock is not None:
                    renderer.set_stock(stock)
                for camera, topics in cameras:
                    if camera.camera_id in tick.dropped_cameras:
                        continue
                    depth, color = renderer.render(camera.camera_id, tick.bodies, stamp_ns)
                    depth_k, color_k = renderer.intrinsics(camera.camera_id)
                    bag.write(topics.depth_image, IMAGE, stamp_ns,
                              messages.image(depth, stamp_ns, camera.depth_frame_id))
                    bag.write(topics.depth_info, CAMERA_INFO, stamp_ns,
                              messages.camera_info(depth_k, stamp_ns, camera.depth_frame_id))
                    bag.write(topics.color_image, IMAGE, stamp_ns,
                              messages.image(color, stamp_ns, camera.color_frame_id))
                    bag.write(topics.color_info, CAMERA_INFO, stamp_ns,
                              messages.camera_info(color_k, stamp_ns, camera.color_frame_id))
            if progress is not None:
                progress((stamp_ns - first_ns) / 1e9, total_s)
        counts = dict(bag.counts)
    truth_file.parent.mkdir(parents=True, exist_ok=True)
    truth_file.write_text(json.dumps(truth_document(simulation.truth),
                                     separators=(',', ':')) + '\n')
    return RecordedBag(out, truth_file, counts,
                       (last_ns - (first_ns or last_ns)) / 1e9, time.monotonic() - wall_start)
