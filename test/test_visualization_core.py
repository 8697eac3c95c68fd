"""Store view core: markers from hand-built tracks, stick figures, events and visits."""

import math

import pytest

from go_store_nodes.core.store import load_store_description
from go_store_nodes.core.visualization import (
    CartEventIn,
    MarkerAction,
    MarkerKind,
    NS_BINS,
    NS_BINS_TOUCHED,
    NS_CART_EVENTS,
    NS_HANDS_IN_BINS,
    NS_JOINTS,
    NS_PEOPLE,
    NS_PEOPLE_LABELS,
    NS_SHELF_EVENTS,
    NS_SHELVES,
    NS_SKELETONS,
    NS_TRAILS,
    ShelfEventIn,
    SkeletonIn,
    StoreView,
    TrackIn,
    VisitIn,
    VisualizationConfig,
    VisualizationInputError,
)
from go_store_nodes.core.visualization.scene import BIN_COLOR, EVENT_COLORS, TANGLED_COLOR

T0 = 1_700_000_000 * 10 ** 9
S = 10 ** 9
BIN = 'shelf_01_bin_2'


@pytest.fixture(scope='module')
def description(store_path):
    return load_store_description(store_path)


@pytest.fixture
def view(description):
    return StoreView(VisualizationConfig(), description)


def added(markers, namespace):
    return {m.marker_id: m for m in markers.markers
            if m.namespace == namespace and m.action == MarkerAction.ADD}


def deleted(markers):
    return {m.key for m in markers.markers if m.action == MarkerAction.DELETE}


def bin_marker(view, markers, bin_id):
    return added(markers, NS_BINS)[view._bin_index[bin_id]]


def test_config_checks_ranges_and_whole_numbers():
    assert VisualizationConfig().max_rate_hz == 15.0
    with pytest.raises(ValueError, match='max_rate_hz'):
        VisualizationConfig(max_rate_hz=0.0)
    with pytest.raises(ValueError, match='trail_points must be a whole number'):
        VisualizationConfig(trail_points=2.5)
    with pytest.raises(ValueError, match='label_s must be a finite number'):
        VisualizationConfig(label_s=math.nan)
    integers = {info.name for info in VisualizationConfig.fields() if info.integer}
    assert integers == {'trail_points', 'max_labels', 'max_linked_tracks'}


def test_first_set_clears_the_viewer_and_draws_the_store(view, description):
    markers = view.markers(T0)
    assert markers.markers[0].action == MarkerAction.DELETE_ALL
    assert markers.frame_id == description.map_frame and markers.stamp_ns == T0
    assert len(added(markers, NS_SHELVES)) == len(description.shelves)
    bins = added(markers, NS_BINS)
    assert len(bins) == len(description.bins())
    assert all(m.color == BIN_COLOR and m.lifetime_s == 0.0 for m in bins.values())
    # A bin box lies inside its shelf's box, in the map frame.
    shelf = description.shelves[0]
    first = bin_marker(view, markers, shelf.bins[0].bin_id)
    expected = shelf.t_map_shelf.apply(shelf.bins[0].center_m())
    assert first.position == pytest.approx(tuple(expected))
    assert view.markers(T0 + S // 100) is None, 'rate limited'
    second = view.markers(T0 + 2 * S)
    assert second is not None and second.markers[0].action != MarkerAction.DELETE_ALL


def test_rate_limit_and_idle_refresh(view):
    assert view.markers(T0) is not None
    period = round(1e9 / 15.0)
    view.add_tracks(T0 + 10, [TrackIn(7, 2.0, 2.0)], T0 + 10)
    assert view.markers(T0 + period - 1) is None, 'faster than 15 Hz'
    assert view.markers(T0 + period) is not None, 'an input is drawn at the next slot'
    assert view.markers(T0 + 3 * period) is None, 'nothing changed, not idle long enough'
    assert view.markers(T0 + period + S) is not None, 'idle refresh after idle_period_s'
    slow = StoreView(VisualizationConfig(max_rate_hz=2.0), view.description)
    slow.markers(T0)
    slow.add_tracks(T0, [TrackIn(7, 2.0, 2.0)], T0)
    assert slow.markers(T0 + S // 4) is None and slow.markers(T0 + S // 2) is not None
    # The clock going back (a new replay) starts over rather than going silent.
    assert view.markers(T0 - 100 * S) is not None


def test_tracks_keep_their_ids_and_are_deleted_when_they_end(view):
    view.add_tracks(T0, [TrackIn(101, 1.0, 1.0, 1.8, 0.95),
                         TrackIn(102, 3.0, 1.0, 1.6, 0.95)], T0)
    first = view.markers(T0)
    people = added(first, NS_PEOPLE)
    id_101, id_102 = view.marker_id(101), view.marker_id(102)
    assert set(people) == {id_101, id_102} and id_101 != id_102
    assert people[id_101].kind == MarkerKind.CYLINDER
    assert people[id_101].scale[2] == pytest.approx(1.8)
    assert people[id_101].lifetime_s == pytest.approx(1.0), 'nothing lingers if we stop'
    for step in range(1, 5):
        stamp = T0 + step * S // 10
        view.add_tracks(stamp, [TrackIn(101, 1.0 + 0.1 * step, 1.0, 1.8, 0.95),
                                TrackIn(102, 3.0, 1.0 + 0.1 * step, 1.6, 0.95)], stamp)
        markers = view.markers(stamp)
        assert set(added(markers, NS_PEOPLE)) == {id_101, id_102}
    assert added(markers, NS_PEOPLE)[id_101].position[0] == pytest.approx(1.4)
    trail = added(markers, NS_TRAILS)[id_101]
    assert trail.kind == MarkerKind.LINE_STRIP and len(trail.points) == 5
    assert trail.points[0][:2] == (1.0, 1.0) and trail.points[-1][:2] == pytest.approx((1.4, 1.0))
    end = T0 + S
    view.add_tracks(end, [TrackIn(102, 3.0, 1.5, 1.6, 0.95)], end)
    markers = view.markers(end)
    assert {(NS_PEOPLE, id_101), (NS_PEOPLE_LABELS, id_101), (NS_TRAILS, id_101)} <= \
        deleted(markers)
    assert set(added(markers, NS_PEOPLE)) == {id_102}
    assert view.marker_id(101) is None and view.marker_id(102) == id_102
    later = view.markers(end + 2 * S)
    assert not any(key[1] == id_101 for key in deleted(later)), 'deleted once'


def test_roles_accounts_tangles_and_unconfirmed_people(view):
    view.add_visit(VisitIn('v1', 'acct_ann', (11,), True, T0 - S), T0)
    view.add_tracks(T0, [
        TrackIn(11, 1.0, 1.0, 1.7, 0.95, role=1),
        TrackIn(12, 2.0, 1.0, 1.7, 0.5, True, (13,), role=1),
        TrackIn(13, 2.3, 1.0, 1.7, 0.3, True, (12,), role=2),
        TrackIn(14, 4.0, 1.0, 1.7, 0.3, role=1, account_id='acct_bob')], T0)
    markers = view.markers(T0)
    people = added(markers, NS_PEOPLE)
    labels = added(markers, NS_PEOPLE_LABELS)

    def of(track_id):
        return people[view.marker_id(track_id)], labels[view.marker_id(track_id)].text

    ann, ann_label = of(11)
    assert 'shopper' in ann_label and 'acct_ann' in ann_label and ann.color[3] == 0.9
    tangled, tangled_label = of(12)
    assert tangled.color == TANGLED_COLOR and 'tangled #13' in tangled_label
    assert 'unconfirmed' not in tangled_label, 'confidence 0.5 is at the threshold'
    staff, staff_label = of(13)
    assert 'associate' in staff_label and 'unconfirmed (0.30)' in staff_label
    assert staff.color[:3] == TANGLED_COLOR[:3] and staff.color[3] < 0.5
    bob, bob_label = of(14)
    assert 'acct_bob' in bob_label and bob.color[3] < 0.5
    assert ann.color[:3] != staff.color[:3]
    view.add_visit(VisitIn('v1', 'acct_ann', (11,), False, T0 + S), T0 + S)
    view.add_tracks(T0 + S, [TrackIn(11, 1.0, 1.0, 1.7, 0.95)], T0 + S)
    markers = view.markers(T0 + S)
    assert 'acct_ann' not in added(markers, NS_PEOPLE_LABELS)[view.marker_id(11)].text


def test_skeleton_with_a_hand_in_a_bin(view, description):
    bin_ = description.bins()[BIN]
    shelf = description.shelf(bin_.shelf_id)
    hand = tuple(float(v) for v in shelf.t_map_shelf.apply(bin_.center_m()))
    joints = {'head': (1.0, 1.0, 1.6), 'neck': (1.0, 1.0, 1.45),
              'left_shoulder': (0.8, 1.0, 1.4), 'right_shoulder': (1.2, 1.0, 1.4),
              'right_elbow': (1.3, 1.2, 1.2), 'right_hand': hand,
              'left_hand': (0.7, 1.1, 1.0)}     # left elbow unseen: shoulder to hand
    view.add_tracks(T0, [TrackIn(21, 1.0, 1.0, 1.7, 0.95)], T0)
    view.add_skeletons(T0, [SkeletonIn(21, joints, '', BIN)], T0)
    markers = view.markers(T0)
    marker_id = view.marker_id(21)
    bones = added(markers, NS_SKELETONS)[marker_id]
    assert bones.kind == MarkerKind.LINE_LIST and len(bones.points) % 2 == 0
    pairs = {(bones.points[i], bones.points[i + 1]) for i in range(0, len(bones.points), 2)}
    assert (joints['right_elbow'], hand) in pairs
    assert (joints['left_shoulder'], joints['left_hand']) in pairs
    assert len(added(markers, NS_JOINTS)[marker_id].points) == len(joints)
    hands = added(markers, NS_HANDS_IN_BINS)
    assert list(hands) == [2 * marker_id + 1] and hands[2 * marker_id + 1].position == hand
    touched = added(markers, NS_BINS_TOUCHED)
    assert list(touched) == [view._bin_index[BIN]] and len(touched[view._bin_index[BIN]]
                                                            .points) == 24
    # The hand leaves the bin: highlight and hand marker deleted, the figure stays.
    view.add_skeletons(T0 + S, [SkeletonIn(21, joints, '', '')], T0 + S)
    markers = view.markers(T0 + S)
    assert (NS_HANDS_IN_BINS, 2 * marker_id + 1) in deleted(markers)
    assert (NS_BINS_TOUCHED, view._bin_index[BIN]) in deleted(markers)
    assert marker_id in added(markers, NS_SKELETONS)
    # The track ends and the figure goes: everything of that person is deleted.
    view.add_tracks(T0 + 2 * S, [], T0 + 2 * S)
    view.add_skeletons(T0 + 2 * S, [], T0 + 2 * S)
    markers = view.markers(T0 + 2 * S)
    assert {(NS_SKELETONS, marker_id), (NS_JOINTS, marker_id),
            (NS_PEOPLE, marker_id)} <= deleted(markers)


def test_bins_take_the_event_colour_and_fade_back(view):
    view.markers(T0)
    view.add_shelf_event(ShelfEventIn('shelf_01/shelf_01_bin_2/1', T0 - S, 'shelf_01', BIN,
                                      'pick', -158.4), T0)
    markers = view.markers(T0 + S // 10)
    assert bin_marker(view, markers, BIN).color == pytest.approx(EVENT_COLORS['pick'],
                                                                 abs=0.05)
    (label,) = added(markers, NS_SHELF_EVENTS).values()
    assert label.kind == MarkerKind.TEXT and label.text.startswith('pick -158 g')
    assert 0.0 < label.lifetime_s <= 4.0
    halfway = bin_marker(view, view.markers(T0 + S * 5 // 2), BIN).color
    assert halfway[0] == pytest.approx((EVENT_COLORS['pick'][0] + BIN_COLOR[0]) / 2, abs=0.02)
    after_label = view.markers(T0 + S * 9 // 2)
    assert (NS_SHELF_EVENTS, label.marker_id) in deleted(after_label), 'label expired'
    assert bin_marker(view, view.markers(T0 + 6 * S), BIN).color == BIN_COLOR
    view.add_shelf_event(ShelfEventIn('shelf_01/shelf_01_bin_2/2', T0 + 6 * S, 'shelf_01',
                                      BIN, 'return', 158.0), T0 + 7 * S)
    color = bin_marker(view, view.markers(T0 + 7 * S), BIN).color
    assert color == pytest.approx(EVENT_COLORS['return'], abs=0.05)


def test_cart_events_are_labelled_once_above_the_person(view):
    view.add_tracks(T0, [TrackIn(31, 2.0, 3.0, 1.7, 0.95)], T0)
    event = CartEventIn('ce1', T0 - 3 * S, 'v1', 'acct_ann', 31, 'crispo_salted_150g', 1,
                        evidence_ids=('shelf_01/shelf_01_bin_2/5',))
    view.add_cart_event(event, T0)
    view.add_cart_event(event, T0 + S // 2)          # re-sent until acknowledged
    assert view.repeated_events == 1
    markers = view.markers(T0 + S // 2)
    (label,) = added(markers, NS_CART_EVENTS).values()
    assert label.position[:2] == (2.0, 3.0) and '+1 crispo_salted_150g' in label.text
    assert 'acct_ann' in label.text
    # The person is gone: the label goes above the bin of the shelf event it cites.
    view.add_cart_event(CartEventIn('ce2', T0, 'v2', '', 99, 'x', -1, True, 'ambiguous',
                                    ('shelf_01/shelf_01_bin_2/5',)), T0)
    review = [m for m in added(view.markers(T0 + S), NS_CART_EVENTS).values()
              if 'review: ambiguous' in m.text]
    assert len(review) == 1 and review[0].color[:3] != (1.0, 1.0, 1.0)


def test_bad_input_is_refused_or_counted(view):
    view.add_tracks(T0, [TrackIn(1, math.nan, 1.0), TrackIn(2, 1.0, math.inf),
                         TrackIn(3, 1.0, 1.0)], T0)
    assert view.dropped == {'track_not_finite': 2}
    assert view.marker_id(1) is None and view.marker_id(3) is not None
    with pytest.raises(VisualizationInputError) as error:
        view.add_tracks(T0 + 3600 * S, [TrackIn(3, 1.0, 1.0)], T0)
    assert error.value.reason == 'future_stamp'
    with pytest.raises(VisualizationInputError) as error:
        view.add_tracks(T0 - S, [TrackIn(3, 1.0, 1.0)], T0)
    assert error.value.reason == 'out_of_order'
    with pytest.raises(VisualizationInputError) as error:
        view.add_shelf_event(ShelfEventIn('e', T0, 'shelf_01', 'shelf_99_bin_9', 'pick',
                                          -1.0), T0)
    assert error.value.reason == 'unknown_bin'
    with pytest.raises(VisualizationInputError) as error:
        view.add_shelf_event(ShelfEventIn('e2', T0, 'shelf_02', BIN, 'pick', -1.0), T0)
    assert error.value.reason == 'unknown_bin', 'a bin of another shelf'
    with pytest.raises(VisualizationInputError) as error:
        view.add_cart_event(CartEventIn('c', T0, 'v', 'a', 77, 'x', 1), T0)
    assert error.value.reason == 'unplaced'
    with pytest.raises(VisualizationInputError) as error:
        view.add_visit(VisitIn('v', 'a', (3,), True, 0), T0)
    assert error.value.reason == 'no_stamp'
    view.add_skeletons(T0, [SkeletonIn(3, {'head': (math.nan, 0.0, 1.6), 'neck': (1, 1, 1.4),
                                           'tail': (1, 1, 1)}, 'shelf_99_bin_9', '')], T0)
    assert view.dropped['joint_not_finite'] == 1 and view.dropped['joint_unknown'] == 1
    assert view.dropped['hand_bin_unknown'] == 1
    markers = view.markers(T0)
    assert all(math.isfinite(v) for m in markers.markers for p in m.points for v in p)
    assert not added(markers, NS_HANDS_IN_BINS)
    # Without a clock (sim time not started) stamps are taken as they come.
    view.add_tracks(T0 + 3600 * S, [TrackIn(3, 1.0, 1.0)], None)
    assert view.markers(None).stamp_ns == T0 + 3600 * S


def test_labels_are_bounded(description):
    view = StoreView(VisualizationConfig(max_labels=3), description)
    for index in range(5):
        view.add_shelf_event(ShelfEventIn(f'e{index}', T0, 'shelf_01', BIN, 'pick', -10.0),
                             T0)
    assert len(added(view.markers(T0), NS_SHELF_EVENTS)) == 3
    assert view.dropped['labels_overflow'] == 2


def test_stamp_is_the_newest_input(view):
    view.add_tracks(T0, [TrackIn(1, 1.0, 1.0)], T0 + S)
    view.add_shelf_event(ShelfEventIn('e', T0 + S // 2, 'shelf_01', BIN, 'pick', -10.0),
                         T0 + S)
    view.add_tracks(T0 + S // 4, [TrackIn(1, 1.0, 1.0)], T0 + S)
    assert view.markers(T0 + S).stamp_ns == T0 + S // 2
