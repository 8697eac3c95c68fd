"""Tracker node: person detections -> stable identities on the store floor.

Subscribes:
  people/detections  go_store/PersonDetectionArray (reliable, keep last 10)
  visits             go_store/Visit (reliable, transient local, keep last 100): the visit
                     and account of the tracks linked at the entry gate
Publishes:
  people/tracks      go_store/TrackArray (reliable, keep last 10), one per accepted
                     detection array, with its stamp: every live track, hidden ones too
  diagnostics        diagnostic_msgs/DiagnosticArray
Bad input (stale, repeated or future stamps, another frame than map, non-finite
positions, heights or confidences, signatures of the wrong length) is logged, counted in
diagnostics and dropped; the node keeps running. Logic: go_store_nodes.core.tracker;
docs/people.md.
"""

from __future__ import annotations

import math
import sys
import time

from go_store.msg import PersonDetectionArray, TrackArray, Visit
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

from ..core.store import load_store_description
from ..core.tracker import Tracker, TrackerConfig, TrackerInputError, zones_from_store
from ..ros.diagnostics import NodeDiagnostics, OK, WARN
from ..ros.params import (
    declare_parameters,
    DIAGNOSTICS_PERIOD,
    MissingParameterError,
    ParamSpec,
    STORE_DESCRIPTION,
)
from ..ros.share import default_store_description
from ..ros.tracker_conversions import (
    core_detections,
    parse_signature,
    stamp_to_ns,
    track_array_msg,
)
from .runner import run_single_node

DOUBLE = Parameter.Type.DOUBLE
INTEGER = Parameter.Type.INTEGER

# (parameter, TrackerConfig field, spec): the node runs the floor mode, so lengths are m.
CONFIG_PARAMETERS: tuple[tuple[str, ParamSpec], ...] = (
    ('measurement_std', ParamSpec(
        'measurement_std_m', DOUBLE, 'm, std of a detected floor position', 0.005, 1.0)),
    ('acceleration_psd', ParamSpec(
        'acceleration_psd', DOUBLE, 'm^2/s^3, spectral density of the white acceleration of '
        'the constant-velocity model (how abruptly people change pace)', 0.01, 100.0)),
    ('initial_velocity_std', ParamSpec(
        'initial_velocity_std_mps', DOUBLE, 'm/s, velocity std of a new track', 0.01, 5.0)),
    ('coast_velocity_tau_s', ParamSpec(
        'coast_velocity_tau_s', DOUBLE, 's, time constant of the velocity decay while a '
        'track is unseen (its covariance keeps growing)', 0.05, 60.0)),
    ('gate_probability', ParamSpec(
        'gate_probability', DOUBLE, 'chi-square probability of the Mahalanobis gate',
        0.5, 0.999999)),
    ('miss_cost', ParamSpec(
        'miss_cost', DOUBLE, 'cost of a track left without a detection (and of a detection '
        'left without a track) in the joint assignment; a pair costing more than twice '
        'this is never made; 0: as many gated pairs as possible', 0.0, 1000.0)),
    ('height_std_m', ParamSpec(
        'height_std_m', DOUBLE, 'm, scale of stature differences in the cost', 0.005, 1.0)),
    ('height_gate_m', ParamSpec(
        'height_gate_m', DOUBLE, 'm, stature difference beyond which a detection is not the '
        'track', 0.05, 3.0)),
    ('appearance_std', ParamSpec(
        'appearance_std', DOUBLE, 'scale of 1 - cosine similarity of colour signatures in '
        'the cost', 0.001, 2.0)),
    ('appearance_gate', ParamSpec(
        'appearance_gate', DOUBLE, '1 - cosine similarity beyond which a detection is not '
        'the track', 0.001, 2.0)),
    ('feature_alpha', ParamSpec(
        'feature_alpha', DOUBLE, 'weight of a new detection in the running stature and '
        'signature', 0.001, 1.0)),
    ('appearance_length', ParamSpec(
        'appearance_length', INTEGER, 'expected colour signature length; 0 learns it from '
        'the first signature', 0, 100000)),
    ('birth_min_hits', ParamSpec(
        'birth_min_hits', INTEGER, 'detections in a row that make a track in an entry or '
        'staff zone', 1, 100)),
    ('birth_beside_track_hits', ParamSpec(
        'birth_beside_track_hits', INTEGER, 'detections that make a track of one first seen '
        'within contact_m of a track in the staff zone (0, and elsewhere: such a detection '
        'is a second blob of that person and starts nothing)', 0, 1000)),
    ('birth_anywhere_after_s', ParamSpec(
        'birth_anywhere_after_s', DOUBLE, 's a detection outside the entry and staff zones '
        'must persist to become a (low-confidence) track', 0.0, 60.0)),
    ('candidate_max_unseen_s', ParamSpec(
        'candidate_max_unseen_s', DOUBLE, 's after which an unborn detection stream is '
        'forgotten', 0.01, 10.0)),
    ('max_lost_s', ParamSpec(
        'max_lost_s', DOUBLE, 's a track may stay unseen (hidden) before it ends', 0.1, 600.0)),
    ('exit_lost_s', ParamSpec(
        'exit_lost_s', DOUBLE, 's unseen after which a track last seen in an exit zone '
        'ends', 0.0, 60.0)),
    ('staff_lost_s', ParamSpec(
        'staff_lost_s', DOUBLE, 's unseen after which a track last seen in a staff zone '
        'ends (associates also stand in the staff doorway)', 0.0, 60.0)),
    ('long_miss_s', ParamSpec(
        'long_miss_s', DOUBLE, 's unseen after which a track found again keeps its '
        'confidence only if stature and signature agree', 0.0, 600.0)),
    ('contact_m', ParamSpec(
        'contact_m', DOUBLE, 'm, tracks closer than this are tangled', 0.05, 3.0)),
    ('separate_m', ParamSpec(
        'separate_m', DOUBLE, 'm, a tangle is over once its members are this far apart',
        0.05, 5.0)),
    ('separation_confirm_s', ParamSpec(
        'separation_confirm_s', DOUBLE, 's the members must stay apart before identities '
        'are re-assigned', 0.0, 10.0)),
    ('share_std', ParamSpec(
        'share_std_m', DOUBLE, 'm, measurement std when one detection explains two tracks',
        0.01, 3.0)),
    ('reid_margin', ParamSpec(
        'reid_margin', DOUBLE, 'cost by which the best re-assignment must beat the second '
        'best to be confirmed', 0.0, 1000.0)),
    ('reid_velocity_std', ParamSpec(
        'reid_velocity_std_mps', DOUBLE, 'm/s, scale of velocity differences before and '
        'after a tangle in the re-identification cost', 0.01, 10.0)),
    ('reid_velocity_memory_s', ParamSpec(
        'reid_velocity_memory_s', DOUBLE, 's, the velocity term fades as exp(-tangle '
        'duration / this)', 0.01, 600.0)),
    ('confidence_entry', ParamSpec(
        'confidence_entry', DOUBLE, 'identity confidence of a track born in an entry or '
        'staff zone', 0.0, 1.0)),
    ('confidence_anywhere', ParamSpec(
        'confidence_anywhere', DOUBLE, 'identity confidence of a track born elsewhere',
        0.0, 1.0)),
    ('confidence_tangled', ParamSpec(
        'confidence_tangled', DOUBLE, 'confidence ceiling while tangled', 0.0, 1.0)),
    ('confidence_guess', ParamSpec(
        'confidence_guess', DOUBLE, 'confidence after an unclear re-identification',
        0.0, 1.0)),
    ('associate_min_similarity', ParamSpec(
        'associate_min_similarity', DOUBLE, 'cosine similarity to the uniform signature '
        'that makes a track an associate', 0.0, 1.0)),
    ('learn_uniform_after_s', ParamSpec(
        'learn_uniform_after_s', DOUBLE, 's a track born in a staff zone is followed before '
        'its colours teach the uniform (no associate_signature set); 0: no learning',
        0.0, 3600.0)),
    ('first_track_id', ParamSpec(
        'first_track_id', INTEGER, 'first track id; 0 derives it from the first stamp '
        '(ms * 1000 + 1) so a restarted tracker never reuses an id', 0, 2 ** 62)),
    ('max_future_s', ParamSpec(
        'max_future_s', DOUBLE, 's a detection stamp may be ahead of the node clock',
        0.001, 3600.0)),
)
ASSOCIATE_SIGNATURE = ParamSpec(
    'associate_signature', Parameter.Type.STRING,
    "comma-separated colour signature of the associates' uniform (normalised on load, same "
    "length as the locator's signature); '' turns uniform recognition off")

PARAMETERS = (STORE_DESCRIPTION, *(spec for _, spec in CONFIG_PARAMETERS),
              ASSOCIATE_SIGNATURE, DIAGNOSTICS_PERIOD)

RELIABLE_QOS = QoSProfile(depth=10, history=HistoryPolicy.KEEP_LAST,
                          reliability=ReliabilityPolicy.RELIABLE,
                          durability=DurabilityPolicy.VOLATILE)
VISITS_QOS = QoSProfile(depth=100, history=HistoryPolicy.KEEP_LAST,
                        reliability=ReliabilityPolicy.RELIABLE,
                        durability=DurabilityPolicy.TRANSIENT_LOCAL)
LOG_THROTTLE_S = 5.0


def tracker_config(params: dict) -> TrackerConfig:
    """Build the core config from the declared parameters; ValueError if invalid."""
    values = {field: params[spec.name] for field, spec in CONFIG_PARAMETERS}
    return TrackerConfig(mode='floor', associate_signature=parse_signature(
        params['associate_signature']), **values)


class TrackerNode(Node):
    """Detections in, tracks out; all the logic is in the core tracker."""

    def __init__(self, **kwargs) -> None:
        """Load the store zones and the config; subscribe and advertise."""
        super().__init__('tracker', **kwargs)
        params = declare_parameters(self, PARAMETERS)
        path = params['store_description'] or str(default_store_description())
        self.description = load_store_description(path)
        try:
            config = tracker_config(params)
        except ValueError as error:
            raise MissingParameterError(f"node 'tracker': {error}") from None
        self.tracker = Tracker(config, zones_from_store(self.description))
        self._frame_id = self.description.map_frame
        self.diagnostics = NodeDiagnostics(self, params['diagnostics_period_s'])
        self._publisher = self.create_publisher(TrackArray, 'people/tracks', RELIABLE_QOS)
        self._detections = self.create_subscription(
            PersonDetectionArray, 'people/detections', self.on_detections, RELIABLE_QOS)
        self._visits = self.create_subscription(Visit, 'visits', self.on_visit, VISITS_QOS)
        self._update_s_total = 0.0
        self._last_warning: dict[str, float] = {}
        self.diagnostics.values.update(store_description=path)
        self.diagnostics.set_status(OK, 'waiting for people/detections')
        self.get_logger().info(
            f'tracker ready: zones {", ".join(z.zone_id for z in self.tracker.zones)}, '
            f'max_lost_s {config.max_lost_s}, contact_m {config.contact_m}')

    def on_detections(self, msg: PersonDetectionArray) -> None:
        """Fuse one detection array and publish every live track with its stamp."""
        self.diagnostics.count('detection_arrays')
        if msg.header.frame_id not in ('', self._frame_id):
            self.diagnostics.count('dropped_wrong_frame')
            self._warn('dropped_wrong_frame',
                       f'dropped a detection array in frame {msg.header.frame_id!r}; '
                       f'detections must be in {self._frame_id!r}')
            return
        now_ns = self.get_clock().now().nanoseconds
        started = time.perf_counter()
        try:
            tracks = self.tracker.update(core_detections(msg), stamp_to_ns(msg.header.stamp),
                                         now_ns=now_ns if now_ns > 0 else None)
        except TrackerInputError as error:  # counted by the core as error.reason
            self._warn(error.reason, f'dropped a detection array: {error}')
            self._copy_counters()
            return
        self._update_s_total += time.perf_counter() - started
        for rejection in self.tracker.last_rejections:
            self._warn(rejection.reason, f'{rejection.reason}: {rejection.detail}')
        for track_id, reason in self.tracker.ended:
            self.get_logger().info(f'track {track_id} ended ({reason})')
        self._publisher.publish(track_array_msg(tracks, msg.header, self._frame_id))
        self.diagnostics.count('track_arrays')
        self._report(tracks)

    def on_visit(self, msg: Visit) -> None:
        """Attach a started visit (and its account) to its live tracks."""
        if msg.status != Visit.STARTED:
            return
        linked = self.tracker.link_visit(msg.track_ids, msg.visit_id, msg.account_id)
        self.diagnostics.count('visit_links', linked)

    def _warn(self, reason: str, detail: str) -> None:
        """Log a drop, at most once per ``LOG_THROTTLE_S`` for each reason (15 Hz input)."""
        now = time.monotonic()
        if now - self._last_warning.get(reason, -math.inf) >= LOG_THROTTLE_S:
            self._last_warning[reason] = now
            self.get_logger().warning(detail)
        self.diagnostics.set_status(WARN, detail)

    def _copy_counters(self) -> None:
        for key, value in self.tracker.counters.items():
            self.diagnostics.counters[f'core_{key}'] = value

    def _report(self, tracks: list) -> None:
        self._copy_counters()
        frames = self.tracker.counters.get('frames', 0)
        self.diagnostics.values.update(
            live_tracks=str(len(tracks)),
            tangled_tracks=str(sum(1 for t in tracks if t.tangled)),
            mean_update_ms=f'{1000.0 * self._update_s_total / max(1, frames):.3f}')
        if not self.tracker.last_rejections:  # else the drop's warning stays the status
            self.diagnostics.set_status(OK, f'tracking {len(tracks)}')


def main(args: list[str] | None = None) -> None:
    """Run the tracker node until shut down."""
    sys.exit(run_single_node(TrackerNode, args))


NODE = TrackerNode

if __name__ == '__main__':
    main()
