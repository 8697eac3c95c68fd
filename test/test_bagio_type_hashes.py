"""The bag type store hashes every type exactly as rosidl does (RIHS01).

Checked two ways: against the type descriptions rosidl generated next to each .msg
(share/<pkg>/msg/*.json) and against the hash rclpy announces for a live publisher.
"""

import importlib
import json
import pathlib
import sys

import pytest

from go_store_nodes.bagio.topics import RECORDED_TOPICS
from go_store_nodes.bagio.typestore import message_dirs, type_hash, typestore

BAG_TYPES = ('sensor_msgs/msg/Image', 'sensor_msgs/msg/CameraInfo',
             'go_store/msg/LoadCellBatch', 'go_store/msg/CheckIn', 'tf2_msgs/msg/TFMessage',
             'rosgraph_msgs/msg/Clock', *RECORDED_TOPICS.values())


def _rosidl_hash(msgtype):
    package, _, name = msgtype.split('/')
    for prefix in (pathlib.Path(sys.prefix),):
        path = prefix / 'share' / package / 'msg' / f'{name}.json'
        if path.is_file():
            hashes = json.loads(path.read_text())['type_hashes']
            return next(h['hash_string'] for h in hashes if h['type_name'] == msgtype)
    pytest.skip(f'no rosidl type description installed for {msgtype}')


def test_every_go_store_message_is_in_the_type_store(repo):
    names = {p.stem for p in (repo / 'msg').glob('*.msg')}
    assert {f'go_store/msg/{n}' for n in names} <= set(typestore().fielddefs)
    assert message_dirs('go_store')[0] == repo / 'msg'
    assert message_dirs('tf2_msgs')[0] == repo / 'vendor' / 'tf2_msgs' / 'msg'


@pytest.mark.parametrize('msgtype', BAG_TYPES)
def test_hash_matches_rosidl_type_description(msgtype):
    assert type_hash(msgtype) == _rosidl_hash(msgtype)


def test_hash_matches_what_rclpy_announces():
    rclpy = pytest.importorskip('rclpy')
    context = rclpy.Context()
    rclpy.init(context=context)
    node = rclpy.create_node('type_hash_probe', context=context)
    try:
        for index, msgtype in enumerate(BAG_TYPES):
            package, kind, name = msgtype.split('/')
            cls = getattr(importlib.import_module(f'{package}.{kind}'), name)
            topic = f'/type_hash_probe/t{index}'
            node.create_publisher(cls, topic, 1)
            (info,) = node.get_publishers_info_by_topic(topic)
            assert str(info.topic_type_hash) == type_hash(msgtype), msgtype
    finally:
        node.destroy_node()
        rclpy.shutdown(context=context)
