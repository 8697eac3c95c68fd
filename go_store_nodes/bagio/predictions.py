"""Turn a replay's output bag into the evaluation's plain ``Predictions`` (the edge)."""

from __future__ import annotations

import pathlib

from ..core.evaluation.data import (
    PredictedCartEvent,
    PredictedDetectionFrame,
    PredictedReceipt,
    PredictedShelfEvent,
    PredictedSkeletonFrame,
    PredictedTrackFrame,
    PredictedVisit,
    Predictions,
)
from .messages import time_ns
from .reader import custom_data, messages, summarize
from .topics import (
    CART_EVENTS_TOPIC,
    CHECK_IN_RESULT_TOPIC,
    CUSTOM_REAL_TIME_FACTOR,
    CUSTOM_SOURCE_BAG,
    DETECTIONS_TOPIC,
    OUTPUT_TOPICS,
    RECEIPTS_TOPIC,
    SHELF_EVENTS_TOPIC,
    SKELETONS_TOPIC,
    TRACKS_TOPIC,
    VISITS_TOPIC,
)

RECEIPT_ISSUED = 1
SHELF_KINDS = {1: 'pick', 2: 'return', 3: 'unknown'}
TRACK_ROLES = {1: 'shopper', 2: 'associate'}     # go_store/Track ROLE_*; else 'unknown'
VISIT_STARTED = 1


def skeleton_frame(stamp_ns: int, msg: object) -> PredictedSkeletonFrame:
    """Return the hands in bins of one go_store/SkeletonArray."""
    hands = []
    for skeleton in msg.skeletons:  # type: ignore[attr-defined]
        for side, bin_id in (('left', skeleton.left_hand_bin_id),
                             ('right', skeleton.right_hand_bin_id)):
            if bin_id:
                hands.append((int(skeleton.track_id), side, str(bin_id)))
    return PredictedSkeletonFrame(stamp_ns, tuple(hands))


def load_predictions(bag: str | pathlib.Path) -> Predictions:
    """Read every output topic of a replay's bag into ``Predictions``."""
    counts = {topic: summary.count for topic, summary in summarize(bag).items()}
    receipts, cart_events, shelf_events, track_frames, visits = [], [], [], [], []
    skeleton_frames, detection_frames = [], []
    accepted = refused = 0
    for topic, received_ns, msg in messages(bag, OUTPUT_TOPICS):
        m = msg  # rosbags message objects are dynamically typed
        stamp = time_ns(m.header.stamp) if hasattr(m, 'header') else received_ns
        if topic == RECEIPTS_TOPIC:
            lines: dict[str, int] = {}
            for line in m.lines:
                lines[line.sku] = lines.get(line.sku, 0) + int(line.quantity)
            receipts.append(PredictedReceipt(
                received_ns, stamp, m.visit_id, m.account_id, m.status == RECEIPT_ISSUED,
                lines, int(m.total_cents)))
        elif topic == CART_EVENTS_TOPIC:
            cart_events.append(PredictedCartEvent(
                received_ns, stamp, m.event_id, m.visit_id, m.account_id, int(m.track_id),
                m.sku, int(m.quantity_delta), tuple(m.evidence_ids), bool(m.needs_review)))
        elif topic == SHELF_EVENTS_TOPIC:
            shelf_events.append(PredictedShelfEvent(
                received_ns, stamp, m.event_id, m.shelf_id, m.bin_id,
                SHELF_KINDS.get(int(m.event_type), 'unknown'), float(m.delta_grams),
                tuple((c.sku, int(c.quantity), float(c.likelihood)) for c in m.candidates)))
        elif topic == TRACKS_TOPIC:
            track_frames.append(PredictedTrackFrame(stamp, tuple(
                (int(t.track_id), float(t.position.x), float(t.position.y))
                for t in m.tracks), tuple(TRACK_ROLES.get(int(t.role), 'unknown')
                                          for t in m.tracks)))
        elif topic == DETECTIONS_TOPIC:
            detection_frames.append(PredictedDetectionFrame(stamp, tuple(
                (float(d.position.x), float(d.position.y)) for d in m.detections)))
        elif topic == SKELETONS_TOPIC:
            skeleton_frames.append(skeleton_frame(stamp, m))
        elif topic == VISITS_TOPIC:
            visits.append(PredictedVisit(received_ns, stamp, m.visit_id, m.account_id,
                                         m.status == VISIT_STARTED,
                                         tuple(int(t) for t in m.track_ids)))
        elif topic == CHECK_IN_RESULT_TOPIC:
            if m.accepted:
                accepted += 1
            else:
                refused += 1
    custom = custom_data(bag)
    rtf = custom.get(CUSTOM_REAL_TIME_FACTOR)
    return Predictions(
        topic_counts=counts, receipts=tuple(receipts), cart_events=tuple(cart_events),
        shelf_events=tuple(shelf_events), track_frames=tuple(track_frames),
        visits=tuple(visits), check_ins_accepted=accepted, check_ins_refused=refused,
        real_time_factor=float(rtf) if rtf else None,
        extra={'source_bag': custom.get(CUSTOM_SOURCE_BAG, '')},
        skeleton_frames=tuple(skeleton_frames), detection_frames=tuple(detection_frames))
