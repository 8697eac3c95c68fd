"""Edge of the tracker node: PersonDetectionArray -> core detections, core tracks -> TrackArray.

Stamps are integer nanoseconds in the core; the TrackArray header is the detections'
header (stamp copied, frame map); each Track's header stamp is the time of the last
detection fused into it. Heights unknown to the core (NaN) stay NaN on the wire.
"""

from __future__ import annotations

import math
from typing import Sequence

from builtin_interfaces.msg import Time
from geometry_msgs.msg import Point, Vector3
from go_store.msg import PersonDetectionArray, Track, TrackArray
from std_msgs.msg import Header

from ..core.tracker import Detection, ROLE_ASSOCIATE, ROLE_SHOPPER
from ..core.tracker import Track as CoreTrack

NS_PER_SECOND = 1_000_000_000
ROLES = {ROLE_SHOPPER: Track.ROLE_SHOPPER, ROLE_ASSOCIATE: Track.ROLE_ASSOCIATE}


def stamp_to_ns(stamp: Time) -> int:
    """Return a message stamp as integer nanoseconds."""
    return int(stamp.sec) * NS_PER_SECOND + int(stamp.nanosec)


def ns_to_stamp(stamp_ns: int) -> Time:
    """Return integer nanoseconds as a message stamp."""
    seconds, nanoseconds = divmod(int(stamp_ns), NS_PER_SECOND)
    return Time(sec=seconds, nanosec=nanoseconds)


def core_detections(msg: PersonDetectionArray) -> list[Detection]:
    """Return the core view of every detection (the floor point's x, y; z is the floor)."""
    return [Detection(position=(float(d.position.x), float(d.position.y)),
                      height_m=float(d.height_m), confidence=float(d.confidence),
                      appearance=tuple(float(v) for v in d.appearance))
            for d in msg.detections]


def parse_signature(text: str) -> tuple[float, ...]:
    """Parse a comma-separated colour signature and make it unit-norm; '' gives ()."""
    if not text.strip():
        return ()
    try:
        values = [float(v) for v in text.split(',')]
    except ValueError:
        raise ValueError(f'associate_signature {text!r} is not comma-separated numbers') \
            from None
    norm = math.sqrt(sum(v * v for v in values))
    if not (math.isfinite(norm) and norm > 0.0):
        raise ValueError(f'associate_signature {text!r} must be finite and not all zero')
    return tuple(v / norm for v in values)


def track_msg(track: CoreTrack, frame_id: str) -> Track:
    """Return the Track message of a floor-mode core track."""
    covariance = [0.0] * 9
    for row in range(2):
        for col in range(2):
            covariance[3 * row + col] = float(track.position_covariance[row, col])
    return Track(
        header=Header(stamp=ns_to_stamp(track.last_seen_ns), frame_id=frame_id),
        track_id=int(track.track_id),
        position=Point(x=float(track.position[0]), y=float(track.position[1]), z=0.0),
        velocity=Vector3(x=float(track.velocity[0]), y=float(track.velocity[1]), z=0.0),
        position_covariance=covariance, height_m=float(track.height_m),
        confidence=float(track.confidence), tangled=bool(track.tangled),
        tangled_with=[int(t) for t in track.tangled_with],
        role=ROLES.get(track.role, Track.ROLE_UNKNOWN), visit_id=track.visit_id,
        account_id=track.account_id)


def track_array_msg(tracks: Sequence[CoreTrack], header: Header, frame_id: str) -> TrackArray:
    """Return the TrackArray of one update, stamped with the detections' stamp."""
    return TrackArray(header=Header(stamp=header.stamp, frame_id=frame_id),
                      tracks=[track_msg(t, frame_id) for t in tracks])
