"""Shelf fusion node: shelf load-cell batches -> settled shelf events with SKU candidates.

Subscribes:
  shelves/<shelf_id>/weights  go_store/LoadCellBatch (reliable, keep last 50), one per
                              shelf of the store description
Publishes:
  shelves/events              go_store/ShelfEvent (reliable, keep last 100): one per
                              settled change; header stamp = settle time computed from the
                              sample stamps, frame_id = the shelf frame
  diagnostics                 diagnostic_msgs/DiagnosticArray
Bad input (unknown shelf, bins that do not match the store description, wrong array
length, NaN-only batch, stamps out of order or ahead of the node clock) is logged,
counted in diagnostics and dropped; a cell stuck at one value is reported (WARN, the
``dead_cells`` value) and ignored until it changes. The node keeps running.
Logic: go_store_nodes.core.fusion; docs/shelf-to-cart.md.
"""

from __future__ import annotations

import math
import sys
import time

from builtin_interfaces.msg import Time
from go_store.msg import LoadCellBatch, ShelfEvent, SkuLikelihood
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from std_msgs.msg import Header

from ..core.fusion import (
    FusionConfig,
    FusionInputError,
    layout_from_store,
    LoadCellSamples,
    PICK,
    RETURN,
    samples_from_flat,
    ShelfFusion,
)
from ..core.fusion import ShelfEvent as CoreShelfEvent
from ..core.store import load_store_description
from ..ros.diagnostics import NodeDiagnostics, OK, WARN
from ..ros.params import (
    declare_parameters,
    DIAGNOSTICS_PERIOD,
    MissingParameterError,
    ParamSpec,
    STORE_DESCRIPTION,
)
from ..ros.share import default_store_description
from .runner import run_single_node

DOUBLE = Parameter.Type.DOUBLE
INTEGER = Parameter.Type.INTEGER
NS_PER_S = 1_000_000_000

# (FusionConfig field, spec); units in the descriptions, values in config/go_store.yaml.
CONFIG_PARAMETERS: tuple[tuple[str, ParamSpec], ...] = (
    ('median_samples', ParamSpec(
        'median_samples', INTEGER, 'odd length of the running median of a cell (removes '
        'spikes of up to half of it)', 1, 31)),
    ('stable_window_samples', ParamSpec(
        'stable_window_samples', INTEGER, 'samples whose spread decides whether a weight is '
        'still', 2, 600)),
    ('stable_band_g', ParamSpec(
        'stable_band_g', DOUBLE, 'g, largest max - min spread of a still window (about 5 x '
        'the white noise RMS of a cell)', 0.1, 1000.0)),
    ('hold_margin_g', ParamSpec(
        'hold_margin_g', DOUBLE, 'g added to half the band for samples extending a plateau',
        0.0, 1000.0)),
    ('depart_g', ParamSpec(
        'depart_g', DOUBLE, 'g from the settled level at which a change or touch begins',
        0.1, 1000.0)),
    ('settle_s', ParamSpec(
        'settle_s', DOUBLE, 's a new level must hold to count as settled (longer than a '
        'unit lifted and put straight back stays off the plate)', 0.05, 30.0)),
    ('split_plateau_s', ParamSpec(
        'split_plateau_s', DOUBLE, 's an intermediate level must hold to split an unsettled '
        'period into separate events', 0.0, 30.0)),
    ('split_flatness_g', ParamSpec(
        'split_flatness_g', DOUBLE, "g, such a level's first, middle and last thirds must "
        'agree within this (the top of a slow press is not a level)', 0.0, 1000.0)),
    ('split_fit_sigmas', ParamSpec(
        'split_fit_sigmas', DOUBLE, 'every part of a split must be whole units of a SKU the '
        'bin holds within this many standard deviations', 0.1, 100.0)),
    ('level_s', ParamSpec(
        'level_s', DOUBLE, 's of settled samples averaged for the level before a change',
        0.01, 30.0)),
    ('level_guard_samples', ParamSpec(
        'level_guard_samples', INTEGER, 'settled samples just before a change left out of '
        'the level before it', 0, 600)),
    ('level_tau_s', ParamSpec(
        'level_tau_s', DOUBLE, 's, time constant of the settled level following drift',
        0.01, 3600.0)),
    ('min_event_g', ParamSpec(
        'min_event_g', DOUBLE, 'g, smaller settled changes are touches or drift, not '
        'events', 0.1, 10000.0)),
    ('dead_cell_s', ParamSpec(
        'dead_cell_s', DOUBLE, 's of bit-identical samples after which a cell is dead',
        0.1, 3600.0)),
    ('max_quantity', ParamSpec(
        'max_quantity', INTEGER, 'most units one event may explain', 1, 100)),
    ('quantity_decay', ParamSpec(
        'quantity_decay', DOUBLE, 'prior of q units of a SKU the bin holds relative to '
        'q - 1', 0.001, 1.0)),
    ('foreign_quantity_decay', ParamSpec(
        'foreign_quantity_decay', DOUBLE, 'prior of q units of a SKU the bin is not known '
        'to hold relative to q - 1 (misplaced items come singly)', 0.001, 1.0)),
    ('tolerance_sigmas', ParamSpec(
        'tolerance_sigmas', DOUBLE, 'standard deviations of a unit weight that the catalog '
        'weight_tolerance_g spans', 0.1, 10.0)),
    ('measurement_std_g', ParamSpec(
        'measurement_std_g', DOUBLE, 'g, std of a settled change', 0.01, 1000.0)),
    ('foreign_pick_prior', ParamSpec(
        'foreign_pick_prior', DOUBLE, 'prior that a pick is of a SKU the bin is not known '
        'to hold', 0.0, 0.999)),
    ('foreign_return_prior', ParamSpec(
        'foreign_return_prior', DOUBLE, 'prior that a return is of a SKU the bin is not '
        'known to hold (put back on the wrong shelf)', 0.0, 0.999)),
    ('misplaced_unit_prior', ParamSpec(
        'misplaced_unit_prior', DOUBLE, 'prior weight of one misplaced unit relative to one '
        'planogram SKU of the bin', 0.001, 100.0)),
    ('unexplained_prior', ParamSpec(
        'unexplained_prior', DOUBLE, 'prior that a change has no catalog explanation',
        0.0, 0.999)),
    ('unexplained_range_g', ParamSpec(
        'unexplained_range_g', DOUBLE, 'g, range over which unexplained changes spread',
        1.0, 100000.0)),
    ('adopt_min_likelihood', ParamSpec(
        'adopt_min_likelihood', DOUBLE, 'a return is added to a bin as misplaced when SKUs '
        'outside the bin explain it with at least this likelihood', 0.0, 0.999)),
    ('min_likelihood', ParamSpec(
        'min_likelihood', DOUBLE, 'candidates below this likelihood are not listed',
        0.0, 0.999)),
    ('max_candidates', ParamSpec(
        'max_candidates', INTEGER, 'most candidates one event lists', 1, 1000)),
    ('max_future_s', ParamSpec(
        'max_future_s', DOUBLE, "s a batch's last sample may lie ahead of the node clock",
        0.001, 3600.0)),
)
PARAMETERS = (STORE_DESCRIPTION, *(spec for _, spec in CONFIG_PARAMETERS), DIAGNOSTICS_PERIOD)

WEIGHTS_QOS = QoSProfile(depth=50, history=HistoryPolicy.KEEP_LAST,
                         reliability=ReliabilityPolicy.RELIABLE,
                         durability=DurabilityPolicy.VOLATILE)
EVENTS_QOS = QoSProfile(depth=100, history=HistoryPolicy.KEEP_LAST,
                        reliability=ReliabilityPolicy.RELIABLE,
                        durability=DurabilityPolicy.VOLATILE)
EVENT_TYPES = {PICK: ShelfEvent.PICK, RETURN: ShelfEvent.RETURN}
LOG_THROTTLE_S = 5.0


def fusion_config(params: dict) -> FusionConfig:
    """Build the core config from the declared parameters; ValueError if invalid."""
    return FusionConfig(**{field: params[spec.name] for field, spec in CONFIG_PARAMETERS})


def ns_to_time(stamp_ns: int) -> Time:
    """builtin_interfaces/Time of integer ns."""
    return Time(sec=stamp_ns // NS_PER_S, nanosec=stamp_ns % NS_PER_S)


def time_to_ns(stamp: Time) -> int:
    """Integer ns of a builtin_interfaces/Time."""
    return int(stamp.sec) * NS_PER_S + int(stamp.nanosec)


def samples_from_msg(msg: LoadCellBatch) -> LoadCellSamples:
    """Core batch of a LoadCellBatch; FusionInputError('wrong_length') if mis-sized."""
    return samples_from_flat(msg.shelf_id, list(msg.bin_ids), time_to_ns(msg.header.stamp),
                             int(msg.sample_period_ns), int(msg.sample_count), msg.grams)


def shelf_event_msg(event: CoreShelfEvent, frame_id: str) -> ShelfEvent:
    """ShelfEvent message of a core event, stamped with its settle time."""
    return ShelfEvent(
        header=Header(stamp=ns_to_time(event.end_ns), frame_id=frame_id),
        event_id=event.event_id, shelf_id=event.shelf_id, bin_id=event.bin_id,
        event_type=EVENT_TYPES.get(event.event_type, ShelfEvent.UNKNOWN),
        delta_grams=float(event.delta_grams), start=ns_to_time(event.start_ns),
        end=ns_to_time(event.end_ns),
        candidates=[SkuLikelihood(sku=c.sku, quantity=c.quantity,
                                  likelihood=float(c.likelihood)) for c in event.candidates])


class ShelfFusionNode(Node):
    """Load-cell batches in, shelf events out; all the logic is in the core."""

    def __init__(self, **kwargs) -> None:
        """Load the store and the config; subscribe to every shelf's weights."""
        super().__init__('shelf_fusion', **kwargs)
        params = declare_parameters(self, PARAMETERS)
        path = params['store_description'] or str(default_store_description())
        self.description = load_store_description(path)
        try:
            config = fusion_config(params)
        except ValueError as error:
            raise MissingParameterError(f"node 'shelf_fusion': {error}") from None
        layout = layout_from_store(self.description)
        self.fusion = ShelfFusion(config, layout)
        self._frames = {s.shelf_id: s.frame_id for s in self.description.shelves}
        self.diagnostics = NodeDiagnostics(self, params['diagnostics_period_s'])
        self._publisher = self.create_publisher(ShelfEvent, 'shelves/events', EVENTS_QOS)
        self._weight_subscriptions = [
            self.create_subscription(
                LoadCellBatch, f'shelves/{shelf_id}/weights',
                lambda msg, shelf_id=shelf_id: self.on_batch(msg, shelf_id), WEIGHTS_QOS)
            for shelf_id in layout.shelves]
        self._update_s_total = 0.0
        self._last_warning: dict[str, float] = {}
        for bin_id, sku in layout.unweighable:
            self.get_logger().warning(
                f'bin {bin_id}: planogram SKU {sku!r} is not in the catalog; its weight is '
                'unknown, so it is never a candidate')
        self.diagnostics.values.update(store_description=path, dead_cells='')
        self.diagnostics.set_status(OK, 'waiting for shelves/<shelf>/weights')
        self.get_logger().info(
            f'shelf_fusion ready: {len(layout.shelves)} shelves, '
            f'{sum(len(b) for b in layout.shelves.values())} bins, settle_s {config.settle_s}, '
            f'min_event_g {config.min_event_g}')

    def on_batch(self, msg: LoadCellBatch, topic_shelf_id: str = '') -> None:
        """Segment one batch (of ``topic_shelf_id``'s topic) and publish settled events."""
        now_ns = self.get_clock().now().nanoseconds
        started = time.perf_counter()
        try:
            if topic_shelf_id and msg.shelf_id != topic_shelf_id \
                    and msg.shelf_id in self._frames:
                raise FusionInputError(
                    'wrong_topic', f'a batch of shelf {msg.shelf_id!r} on the weights topic '
                    f'of {topic_shelf_id!r}')
            samples = samples_from_msg(msg)
            events = self.fusion.update(samples, now_ns=now_ns if now_ns > 0 else None)
        except FusionInputError as error:
            if error.reason in ('wrong_length', 'wrong_topic'):  # the core never saw it
                self.fusion.count(f'dropped_{error.reason}')
            self._warn(error.reason, f'dropped a load-cell batch ({error.reason}): {error}')
            self._report()
            return
        self._update_s_total += time.perf_counter() - started
        for notice in self.fusion.notices:
            if notice.kind == 'dead':
                self.get_logger().error(
                    f'load cell of {notice.bin_id} ({notice.shelf_id}) is stuck at '
                    f'{notice.value_g:.1f} g for {self.fusion.config.dead_cell_s} s: dead? '
                    'its samples are ignored until it changes')
            else:
                self.get_logger().warning(
                    f'load cell of {notice.bin_id} ({notice.shelf_id}) changes again '
                    f'({notice.value_g:.1f} g): learning its level afresh')
        for bin_id, sku in self.fusion.adopted:
            self.get_logger().info(f'bin {bin_id}: now holds misplaced {sku}')
        for event in events:
            self._publisher.publish(shelf_event_msg(event, self._frames[event.shelf_id]))
        self._report()

    def _warn(self, reason: str, detail: str) -> None:
        """Log a drop, at most once per ``LOG_THROTTLE_S`` for each reason (5 Hz per shelf)."""
        now = time.monotonic()
        if now - self._last_warning.get(reason, -math.inf) >= LOG_THROTTLE_S:
            self._last_warning[reason] = now
            self.get_logger().warning(detail)
        self.diagnostics.set_status(WARN, detail)

    def _report(self) -> None:
        for key, value in self.fusion.counters.items():
            self.diagnostics.counters[key] = value
        dead = self.fusion.dead_cells()
        batches = self.fusion.counters.get('batches', 0)
        self.diagnostics.values.update(
            dead_cells=','.join(dead),
            mean_update_ms=f'{1000.0 * self._update_s_total / max(1, batches):.3f}')
        last_drop = max(self._last_warning.values(), default=-math.inf)
        if dead:
            self.diagnostics.set_status(WARN, f'dead load cells: {", ".join(dead)}')
        elif time.monotonic() - last_drop >= LOG_THROTTLE_S:  # else the drop stays the status
            self.diagnostics.set_status(OK, f'{self.fusion.counters.get("events", 0)} events')


def main(args: list[str] | None = None) -> None:
    """Run the shelf fusion node until shut down."""
    sys.exit(run_single_node(ShelfFusionNode, args))


NODE = ShelfFusionNode

if __name__ == '__main__':
    main()
