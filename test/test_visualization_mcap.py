"""The replay records visualization/markers into MCAP that Foxglove's readers decode.

A small input bag (people walking, one linked to an account, one stick figure with a
hand in a bin, a shelf event) is played through the visualization node alone by
`go-store replay`; the output bag is then read with the PyPI ``mcap`` reader and
``mcap-ros2-support``'s decoder, which is what Foxglove does with a file: ros2msg schemas
stored in the file, CDR messages decoded from them, no ROS installation.
"""

import json
import os
import pathlib
import subprocess
import sys

from go_store.msg import (
    Keypoint,
    ShelfEvent,
    Skeleton,
    SkeletonArray,
    Track,
    TrackArray,
)
from mcap.reader import make_reader
from mcap_ros2.decoder import DecoderFactory
import pytest
from rclpy.serialization import serialize_message

from go_store_nodes.bagio.topics import (
    MARKERS_TOPIC,
    SHELF_EVENTS_TOPIC,
    SKELETONS_TOPIC,
    TRACKS_TOPIC,
)
from go_store_nodes.bagio.writer import BagWriter
from go_store_nodes.core.store import load_store_description
from go_store_nodes.core.visualization import (
    NS_BINS,
    NS_HANDS_IN_BINS,
    NS_PEOPLE,
    NS_PEOPLE_LABELS,
    NS_SHELF_EVENTS,
    NS_SHELVES,
    NS_SKELETONS,
    NS_TRAILS,
)
from go_store_nodes.ros.ledger_conversions import ns_to_stamp

pytestmark = pytest.mark.slow

T0 = 1_700_000_000 * 10 ** 9
S = 10 ** 9
STEP_NS = S // 10
STEPS = 30                  # 3 s of bag; track 2 ends after 2 s
BIN = 'shelf_01_bin_2'
ADD, DELETE, DELETEALL = 0, 2, 3


def _track(stamp_ns, track_id, x, y, tangled_with=(), account_id=''):
    track = Track(track_id=track_id, height_m=1.7, confidence=0.95, role=Track.ROLE_SHOPPER,
                  tangled=bool(tangled_with), tangled_with=list(tangled_with),
                  account_id=account_id)
    track.header.stamp, track.header.frame_id = ns_to_stamp(stamp_ns), 'map'
    track.position.x, track.position.y = x, y
    return track


def write_scene_bag(path, description):
    """Write the scene's inputs of the visualization node; return the hand position."""
    bin_ = description.bins()[BIN]
    hand = [float(v) for v in description.shelf(bin_.shelf_id).t_map_shelf.apply(
        bin_.center_m())]
    x, y = hand[0], hand[1] - 0.6
    with BagWriter(path) as bag:
        for step in range(STEPS):
            stamp_ns = T0 + (step + 1) * STEP_NS
            tracks = TrackArray(tracks=[_track(stamp_ns, 1, x + 0.02 * step, y,
                                                account_id='acct_ann')])
            if step < 20:
                tracks.tracks.append(_track(stamp_ns, 2, x + 0.4, y, (1,)))
            tracks.header.stamp, tracks.header.frame_id = ns_to_stamp(stamp_ns), 'map'
            bag.write_raw(TRACKS_TOPIC, 'go_store/msg/TrackArray', stamp_ns,
                          serialize_message(tracks))
            figures = SkeletonArray()
            figures.header = tracks.header
            figure = Skeleton(track_id=1, right_hand_bin_id=BIN if 10 <= step < 20 else '')
            figure.header = tracks.header
            for joint, position in ((Keypoint.HEAD, (x, y, 1.6)),
                                    (Keypoint.NECK, (x, y, 1.45)),
                                    (Keypoint.RIGHT_SHOULDER, (x + 0.2, y, 1.4)),
                                    (Keypoint.RIGHT_HAND, hand)):
                keypoint = Keypoint(joint=joint, confidence=1.0)
                keypoint.position.x, keypoint.position.y, keypoint.position.z = position
                figure.keypoints.append(keypoint)
            figures.skeletons.append(figure)
            bag.write_raw(SKELETONS_TOPIC, 'go_store/msg/SkeletonArray', stamp_ns,
                          serialize_message(figures))
            if step == 15:
                event = ShelfEvent(event_id=f'shelf_01/{BIN}/{stamp_ns}', shelf_id='shelf_01',
                                   bin_id=BIN, event_type=ShelfEvent.PICK, delta_grams=-158.0)
                event.header.stamp, event.header.frame_id = ns_to_stamp(stamp_ns), 'shelf_01'
                bag.write_raw(SHELF_EVENTS_TOPIC, 'go_store/msg/ShelfEvent', stamp_ns,
                              serialize_message(event))
    return hand


def read_mcap(bag_folder):
    """Every (topic, schema name, schema encoding, decoded message) of the bag's MCAP file."""
    (path,) = pathlib.Path(bag_folder).glob('*.mcap')
    with open(path, 'rb') as stream:
        reader = make_reader(stream, decoder_factories=[DecoderFactory()])
        return [(channel.topic, schema.name, schema.encoding, decoded)
                for schema, channel, _, decoded in reader.iter_decoded_messages()]


def test_replay_records_markers_that_mcap_readers_decode(repo, store_path, tmp_path):
    description = load_store_description(store_path)
    write_scene_bag(tmp_path / 'scene', description)
    result = subprocess.run(
        [sys.executable, '-m', 'go_store_nodes.cli', 'replay', str(tmp_path / 'scene'),
         '--out', str(tmp_path / 'out'), '--quiet', '--as-fast-as-possible',
         '--nodes', 'visualization', '--tail', '1.5'], cwd=repo, capture_output=True,
        text=True, timeout=300, env=dict(os.environ))
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads((tmp_path / 'out' / 'report.json').read_text())
    assert MARKERS_TOPIC in report['output_topics']
    assert report['recorded'][MARKERS_TOPIC] >= 10

    records = read_mcap(tmp_path / 'out' / 'bag')
    markers = [(name, encoding, msg) for topic, name, encoding, msg in records
               if topic == MARKERS_TOPIC]
    assert len(markers) == report['recorded'][MARKERS_TOPIC]
    assert {(name, encoding) for name, encoding, _ in markers} == {
        ('visualization_msgs/msg/MarkerArray', 'ros2msg')}
    tracks = [msg for topic, _, _, msg in records if topic == TRACKS_TOPIC]
    assert len(tracks) == STEPS and tracks[0].tracks[0].track_id == 1

    arrays = [msg for _, _, msg in markers]
    assert arrays[0].markers[0].action == DELETEALL
    added = {}
    for array in arrays:
        for marker in array.markers:
            assert marker.header.frame_id == description.map_frame
            if marker.action == ADD:
                added.setdefault(marker.ns, set()).add(marker.id)
    assert {NS_SHELVES, NS_BINS, NS_PEOPLE, NS_PEOPLE_LABELS, NS_TRAILS, NS_SKELETONS,
            NS_HANDS_IN_BINS, NS_SHELF_EVENTS} <= set(added)
    assert len(added[NS_PEOPLE]) == 2, 'each track kept one marker id'
    labels = [m.text for a in arrays for m in a.markers
              if m.ns == NS_PEOPLE_LABELS and m.action == ADD]
    assert any('acct_ann' in text for text in labels)
    assert any('tangled #1' in text for text in labels)
    events = [m.text for a in arrays for m in a.markers if m.ns == NS_SHELF_EVENTS
              and m.action == ADD]
    assert events and events[0].startswith('pick -158 g')
    # Track 2 ended: one DELETE of its person marker, never drawn again afterwards.
    deletes = [(i, m.id) for i, a in enumerate(arrays) for m in a.markers
               if m.ns == NS_PEOPLE and m.action == DELETE]
    assert len(deletes) == 1
    index, gone = deletes[0]
    assert not any(m.ns == NS_PEOPLE and m.id == gone and m.action == ADD
                   for a in arrays[index:] for m in a.markers)
    # Stamps come from the inputs (bag time), not from the wall clock.
    stamps = [a.markers[-1].header.stamp for a in arrays]
    assert all(T0 <= s.sec * S + s.nanosec <= T0 + (STEPS + 1) * STEP_NS for s in stamps)
