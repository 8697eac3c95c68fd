"""Bag round trip: written by go_store's writer, read back with rosbags and with `mcap`.

The second reader (mcap + mcap-ros2-support) shares no code with rosbags: it decodes
the CDR with the message definitions stored in the file itself.
"""

import json

import numpy as np
import pytest
from test_bagio_fake_sim import fake_truth_path, START_NS, write_fake_bag

from go_store_nodes.bagio import messages
from go_store_nodes.bagio.reader import messages as read_messages
from go_store_nodes.bagio.reader import summarize
from go_store_nodes.bagio.topics import camera_topics, check_in_topic, weights_topic
from go_store_nodes.bagio.writer import BagWriter, prepare_output
from go_store_nodes.core.store import load_store_description, static_transforms


@pytest.fixture(scope='module')
def description(store_path):
    return load_store_description(store_path)


@pytest.fixture(scope='module')
def fake_bag(tmp_path_factory, description):
    out = tmp_path_factory.mktemp('bags') / 'fake'
    write_fake_bag(description, out, duration_s=2.0)
    return out


def _expected_topics(description):
    topics = {'/tf_static': 'tf2_msgs/msg/TFMessage',
              check_in_topic('gate_entry'): 'go_store/msg/CheckIn',
              weights_topic(description.shelves[0].shelf_id): 'go_store/msg/LoadCellBatch'}
    for camera in description.cameras:
        names = camera_topics(camera.camera_id)
        topics.update({names.depth_image: 'sensor_msgs/msg/Image',
                       names.depth_info: 'sensor_msgs/msg/CameraInfo',
                       names.color_image: 'sensor_msgs/msg/Image',
                       names.color_info: 'sensor_msgs/msg/CameraInfo'})
    return topics


def test_rosbags_sees_every_topic_type_count_and_rate(fake_bag, description):
    summary = summarize(fake_bag)
    assert {t: s.msgtype for t, s in summary.items()} == _expected_topics(description)
    first, second = description.cameras[0].camera_id, description.cameras[1].camera_id
    # 21 ticks at 10 Hz, camera frames every second tick (11), cam_01 dropped once.
    assert summary[camera_topics(first).depth_image].count == 10
    assert summary[camera_topics(second).color_image].count == 11
    assert summary[camera_topics(second).color_image].rate_hz() == pytest.approx(5.0)
    assert summary[weights_topic(description.shelves[0].shelf_id)].rate_hz() == \
        pytest.approx(5.0)
    assert summary['/tf_static'].count == 1 and summary['/tf_static'].latched
    assert not summary[camera_topics(first).depth_image].latched
    assert not (fake_bag / 'truth.json').exists()
    assert json.loads(fake_truth_path(fake_bag).read_text())['format'] == 1


def test_rosbags_decodes_images_info_load_cells_and_tf(fake_bag, description):
    camera = description.cameras[1]
    names = camera_topics(camera.camera_id)
    seen = {}
    for topic, stamp_ns, msg in read_messages(fake_bag):
        seen.setdefault(topic, (stamp_ns, msg))
    _, depth = seen[names.depth_image]
    assert depth.encoding == '16UC1' and depth.header.frame_id == camera.depth_frame_id
    pixels = np.frombuffer(depth.data.tobytes(), '<u2').reshape(depth.height, depth.width)
    assert pixels[0, 0] == 2000 and depth.step == depth.width * 2
    _, color = seen[names.color_image]
    assert color.encoding == 'rgb8' and color.header.frame_id == camera.color_frame_id
    assert color.step == color.width * 3
    _, info = seen[names.depth_info]
    assert (info.width, info.height) == (depth.width, depth.height)
    assert info.k[0] == pytest.approx(camera.model.depth.fx * depth.width
                                      / camera.model.depth.width)
    shelf = description.shelves[0]
    stamp_ns, batch = seen[weights_topic(shelf.shelf_id)]
    assert stamp_ns == START_NS and batch.sample_count == 12
    assert list(batch.bin_ids) == [b.bin_id for b in shelf.bins]
    assert batch.grams.shape == (12 * len(shelf.bins),)
    assert messages.time_ns(batch.header.stamp) < stamp_ns
    _, tf = seen['/tf_static']
    children = {t.child_frame_id for t in tf.transforms}
    assert children == {child for _, child, _ in static_transforms(description)}
    _, check_in = seen[check_in_topic('gate_entry')]
    assert check_in.token == 'token-1' and check_in.header.frame_id == 'gate_entry'


def test_independent_mcap_reader_agrees(fake_bag, description):
    mcap_reader = pytest.importorskip(
        'mcap.reader', reason='independent reader needs mcap and mcap-ros2-support '
        '(pip install mcap==1.6.0 mcap-ros2-support==0.6.0 zstandard)')
    decoder = pytest.importorskip('mcap_ros2.decoder', reason='needs mcap-ros2-support')
    (path,) = fake_bag.glob('*.mcap')
    counts, schemas, decoded = {}, {}, {}
    with path.open('rb') as stream:
        reader = mcap_reader.make_reader(stream, decoder_factories=[decoder.DecoderFactory()])
        summary = reader.get_summary()
        assert {c.compression for c in summary.chunk_indexes} == {'zstd'}
        for schema, channel, message, ros_msg in reader.iter_decoded_messages():
            counts[channel.topic] = counts.get(channel.topic, 0) + 1
            schemas[channel.topic] = schema.name
            assert schema.encoding == 'ros2msg' and channel.message_encoding == 'cdr'
            decoded.setdefault(channel.topic, (message.log_time, ros_msg))
    assert schemas == _expected_topics(description)
    assert counts == {t: s.count for t, s in summarize(fake_bag).items()}
    names = camera_topics(description.cameras[1].camera_id)
    _, depth = decoded[names.depth_image]
    assert depth.encoding == '16UC1'
    assert np.frombuffer(bytes(depth.data), '<u2')[0] == 2000
    log_time, batch = decoded[weights_topic(description.shelves[0].shelf_id)]
    assert log_time == START_NS and batch.sample_count == 12
    _, tf = decoded['/tf_static']
    assert len(tf.transforms) == len(static_transforms(description))


def test_same_seed_gives_the_same_bytes(tmp_path, description):
    first, second = tmp_path / 'a' / 'bag', tmp_path / 'b' / 'bag'
    write_fake_bag(description, first, duration_s=1.0)
    write_fake_bag(description, second, duration_s=1.0)
    for name in ('bag.mcap', 'metadata.yaml'):
        assert (first / name).read_bytes() == (second / name).read_bytes(), name
    assert fake_truth_path(first).read_bytes() == fake_truth_path(second).read_bytes()


def test_writer_refuses_existing_bag_and_bad_images(tmp_path):
    with BagWriter(tmp_path / 'bag') as bag:
        bag.write('/x', 'std_msgs/msg/String', 1,
                  messages.message_class('std_msgs/msg/String')(data='hi'))
        with pytest.raises(ValueError, match='std_msgs/msg/String'):
            bag.add_topic('/x', 'std_msgs/msg/Header')
    with pytest.raises(FileExistsError, match='--overwrite'):
        prepare_output(tmp_path / 'bag', overwrite=False)
    prepare_output(tmp_path / 'bag', overwrite=True)
    assert not (tmp_path / 'bag').exists()
    (tmp_path / 'notabag').mkdir()
    (tmp_path / 'notabag' / 'keep.txt').write_text('x')
    with pytest.raises(FileExistsError, match='not a bag'):
        prepare_output(tmp_path / 'notabag', overwrite=True)
    with pytest.raises(ValueError, match='unsupported image'):
        messages.image(np.zeros((2, 2), np.float32), 0, 'f')
    with pytest.raises(ValueError, match='bins'):
        messages.load_cell_batch('s', ['a', 'b'], 0, 1, np.zeros((12, 3)))


def test_simulation_refuses_truth_inside_the_bag_folder(tmp_path, description):
    from go_store_nodes.bagio.simulate import truth_outside_bag
    bag = tmp_path / 'bag'
    for inside in (bag / 'truth.json', bag / 'sub' / 'truth.json', bag):
        with pytest.raises(ValueError, match='inside the bag folder'):
            truth_outside_bag(bag, inside)
    truth_outside_bag(bag, tmp_path / 'truth.json')
    with pytest.raises(ValueError, match='inside the bag folder'):
        write_fake_bag_with_truth(description, bag, bag / 'truth.json')
    assert not bag.exists()


def write_fake_bag_with_truth(description, out, truth):
    from test_bagio_fake_sim import FakeRenderer, FakeSimulation

    from go_store_nodes.bagio.simulate import record_simulation
    return record_simulation(FakeSimulation(description, 1.0), FakeRenderer(description),
                             description, out, truth)


def test_a_bag_written_with_an_older_message_definition_still_decodes(tmp_path):
    """An output bag from before a field was added reads with the definitions it carries."""
    from rosbags.rosbag2 import StoragePlugin, Writer
    from rosbags.typesys import get_types_from_msg, get_typestore, Stores

    from go_store_nodes.bagio.typestore import typestore
    ours = typestore()
    older = get_typestore(Stores.EMPTY)
    older.register({name: definition for name, definition in ours.fielddefs.items()
                    if not name.startswith('go_store/msg/PersonDetection')})
    older.register(get_types_from_msg(
        'std_msgs/Header header\ngeometry_msgs/Point position\nfloat32 height_m\n'
        'float32 blob_area_m2\nfloat32 confidence\nfloat32[] appearance\nstring[] camera_ids',
        'go_store/msg/PersonDetection'))
    older.register(get_types_from_msg(
        'std_msgs/Header header\ngo_store/PersonDetection[] detections',
        'go_store/msg/PersonDetectionArray'))
    time_type = older.types['builtin_interfaces/msg/Time']
    header = older.types['std_msgs/msg/Header'](time_type(5, 0), 'map')
    point = older.types['geometry_msgs/msg/Point'](1.0, 2.0, 0.0)
    detection = older.types['go_store/msg/PersonDetection'](
        header, point, 1.7, 0.2, 0.9, np.array([0.6, 0.8], np.float32), ['cam_a'])
    array = older.types['go_store/msg/PersonDetectionArray'](header, [detection])
    msgtype = 'go_store/msg/PersonDetectionArray'
    assert older.fielddefs['go_store/msg/PersonDetection'] != \
        ours.fielddefs['go_store/msg/PersonDetection']
    bag = tmp_path / 'older'
    with Writer(bag, version=Writer.VERSION_LATEST, storage_plugin=StoragePlugin.MCAP) as writer:
        connection = writer.add_connection('/people/detections', msgtype, typestore=older)
        writer.write(connection, 5_000_000_000, older.serialize_cdr(array, msgtype))
    ((topic, stamp_ns, decoded),) = list(read_messages(bag, ['/people/detections']))
    assert (topic, stamp_ns) == ('/people/detections', 5_000_000_000)
    (item,) = decoded.detections
    assert (item.position.x, item.height_m, list(item.camera_ids)) == (
        1.0, pytest.approx(1.7), ['cam_a'])
