"""The association engine on hand-built inputs: who took what, reviews, ids, watermark."""

import pytest

from go_store_nodes.core.association import (
    AssociationConfig,
    AssociationEngine,
    bin_sites,
    BinSite,
    CartEventOut,
    catalog_of,
    HAND_CARRIED,
    HAND_NONE,
    HAND_RIGHT,
    InputRejectedError,
    PICK,
    ProductObservationIn,
    RETURN,
    ROLE_ASSOCIATE,
    ShelfEventIn,
    SkeletonIn,
    SkuCandidate,
    TrackIn,
    UNKNOWN,
)
from go_store_nodes.core.store import load_store_description

S = 1_000_000_000
# Two shelves facing north along y = 0; bins 1 m apart. Not the reference store.
BINS = {
    'a': BinSite('a', 'shelf_1', 0.0, 0.0, ('cola', 'cola_zero')),
    'b': BinSite('b', 'shelf_1', 1.0, 0.0, ('chips_salt', 'chips_paprika')),
    'c': BinSite('c', 'shelf_2', 5.0, 0.0, ('water',)),
}
CATALOG = {'cola': 'soda', 'cola_zero': 'soda', 'chips_salt': 'chips',
           'chips_paprika': 'chips', 'water': 'water'}
SHOPPER_1 = TrackIn(1, 0.0, -0.6, visit_id='v1', account_id='acct1')
SHOPPER_2 = TrackIn(2, 1.0, -0.6, visit_id='v2', account_id='acct2')
SODA_WEIGHT = (SkuCandidate('cola', 1, 0.5), SkuCandidate('cola_zero', 1, 0.5))
COLA = (SkuCandidate('cola', 1, 0.9),)
CHIPS_SALT = (SkuCandidate('chips_salt', 1, 0.9),)
CHIPS_WEIGHT = (SkuCandidate('chips_salt', 1, 0.5), SkuCandidate('chips_paprika', 1, 0.5))


def engine(**overrides) -> AssociationEngine:
    return AssociationEngine(AssociationConfig(**overrides), BINS, CATALOG)


def hand_in(track_id: int, bin_id: str, hand=None) -> SkeletonIn:
    return SkeletonIn(track_id, right_bin_id=bin_id, right_hand_m=hand)


def shelf_event(event_id: str, bin_id: str, start_s: float, end_s: float, kind=PICK,
                candidates=SODA_WEIGHT, delta=-330.0) -> ShelfEventIn:
    return ShelfEventIn(event_id, int(end_s * S), BINS[bin_id].shelf_id, bin_id, kind, delta,
                        int(start_s * S), int(end_s * S), candidates)


def hand_sees(observation_id: str, track_id: int, stamp_s: float, sku: str,
              p: float = 0.9) -> ProductObservationIn:
    return ProductObservationIn(observation_id, int(stamp_s * S), track_id, HAND_RIGHT, '',
                                'cam_1', CATALOG[sku], 0.95, (SkuCandidate(sku, 1, p),))


def play(eng: AssociationEngine, start_s: float, end_s: float, tracks, skeletons=None,
         observations=(), period_s: float = 0.1):
    """Feed tracks (and skeletons: callable(time_s) -> list) every period, then advance."""
    out = []
    steps = int(round((end_s - start_s) / period_s))
    for step in range(steps + 1):
        t = start_s + step * period_s
        now = int(t * S)
        eng.add_tracks(now, tracks, now)
        if skeletons is not None:
            eng.add_skeletons(now, skeletons(t), now)
        due = [o for o in observations if abs(o.stamp_ns - now) < period_s * S / 2]
        if due:
            eng.add_observations(now, due, now)
        out += eng.advance(now)
    return out


def picks_then_meets(t: float) -> list[SkeletonIn]:
    """Track 1's right hand in bin a at 1.0-1.5 s; tracks 1 and 2's hands meet at 3.0-3.4 s."""
    meet = 3.0 <= t <= 3.4
    return [SkeletonIn(1, right_bin_id='a' if 1.0 <= t <= 1.5 else '',
                       right_hand_m=(0.5, -0.5, 1.1) if meet else (0.0, -0.4, 1.0)),
            SkeletonIn(2, right_hand_m=(0.55, -0.5, 1.1) if meet else (1.0, -0.4, 1.0))]


def test_single_pick_with_product_observation():
    eng = engine()
    eng.add_shelf_event(shelf_event('se1', 'a', 1.0, 1.5), int(1.6 * S))
    events = play(eng, 0.0, 5.0, [SHOPPER_1],
                  lambda t: [hand_in(1, 'a' if 1.0 <= t <= 1.5 else '')],
                  [hand_sees('obs1', 1, 1.8, 'cola_zero')])
    assert len(events) == 1
    event = events[0]
    assert (event.event_id, event.visit_id, event.account_id, event.track_id) == \
        ('cart-se1', 'v1', 'acct1', 1)
    assert (event.sku, event.quantity_delta, event.needs_review) == ('cola_zero', 1, False)
    assert event.confidence > 0.8
    assert event.evidence_ids[0] == 'se1' and 'obs1' in event.evidence_ids
    assert eng.watermark_ns >= event.stamp_ns
    assert eng.cart('v1') == {'cola_zero': 1}


def test_crossed_arms_choose_the_hand_in_the_bin_not_the_nearest_body():
    eng = engine()
    # Shopper 2 stands right in front of bin a, shopper 1 in front of b; arms crossed:
    # shopper 1's hand is in a, shopper 2's in b.
    one = TrackIn(1, 1.0, -0.5, visit_id='v1', account_id='acct1')
    two = TrackIn(2, 0.0, -0.5, visit_id='v2', account_id='acct2')
    eng.add_shelf_event(shelf_event('se1', 'a', 1.0, 1.5, candidates=COLA), int(1.6 * S))
    eng.add_shelf_event(shelf_event('se2', 'b', 1.0, 1.5, candidates=CHIPS_SALT),
                        int(1.6 * S))
    events = play(eng, 0.0, 5.0, [one, two],
                  lambda t: [hand_in(1, 'a' if 0.9 <= t <= 1.6 else ''),
                             hand_in(2, 'b' if 0.9 <= t <= 1.6 else '')])
    by_id = {e.event_id: e for e in events}
    assert by_id['cart-se1'].visit_id == 'v1'
    assert by_id['cart-se2'].visit_id == 'v2'
    assert not any(e.needs_review for e in events)


def test_without_skeletons_the_nearest_track_within_reach_is_chosen():
    eng = engine()
    far = TrackIn(2, 0.0, -1.8, visit_id='v2', account_id='acct2')
    eng.add_shelf_event(shelf_event('se1', 'a', 1.0, 1.5, candidates=COLA), int(1.6 * S))
    events = play(eng, 0.0, 5.0, [SHOPPER_1, far])
    assert [(e.visit_id, e.needs_review) for e in events] == [('v1', False)]


def test_a_lone_hand_seen_only_just_before_the_change_is_no_ambiguity():
    # Track 1's hand was in the bin only in the padding before the weight changed (its
    # overlap score is 0) and nobody else's was: it is the picker, not an ambiguity
    # with a second candidate that does not exist. Resolving it once crashed the pass
    # and lost the cart events resolved with it.
    eng = engine()
    eng.add_shelf_event(shelf_event('se1', 'a', 1.0, 1.5, candidates=COLA), int(1.6 * S))
    eng.add_shelf_event(shelf_event('se2', 'b', 1.0, 1.6, candidates=CHIPS_SALT),
                        int(1.7 * S))
    events = play(eng, 0.0, 5.0, [SHOPPER_1, SHOPPER_2],
                  lambda t: [hand_in(1, 'a' if 0.55 <= t <= 0.7 else ''),
                             hand_in(2, 'b' if 1.0 <= t <= 1.6 else '')])
    assert sorted((e.event_id, e.visit_id, e.sku) for e in events) == [
        ('cart-se1', 'v1', 'cola'), ('cart-se2', 'v2', 'chips_salt')]
    assert eng.counters['resolve_errors'] == 0


def test_two_hands_in_one_bin_at_once_go_to_review():
    eng = engine()
    eng.add_shelf_event(shelf_event('se1', 'a', 1.0, 1.5), int(1.6 * S))
    events = play(eng, 0.0, 5.0, [SHOPPER_1, SHOPPER_2],
                  lambda t: [hand_in(1, 'a' if 1.0 <= t <= 1.5 else ''),
                             hand_in(2, 'a' if 1.0 <= t <= 1.5 else '')])
    assert len(events) == 1
    assert events[0].needs_review
    assert events[0].review_reason.startswith('ambiguous_person:')


def test_hand_off_moves_the_item_between_visits():
    eng = engine()
    eng.add_shelf_event(shelf_event('se1', 'a', 1.0, 1.5), int(1.6 * S))
    events = play(eng, 0.0, 7.0, [SHOPPER_1, SHOPPER_2], picks_then_meets,
                  [hand_sees('obs1', 1, 1.8, 'cola'), hand_sees('obs2', 2, 3.8, 'cola')])
    assert [(e.visit_id, e.sku, e.quantity_delta) for e in events] == \
        [('v1', 'cola', 1), ('v1', 'cola', -1), ('v2', 'cola', 1)]
    give, take = events[1:]
    assert give.event_id.startswith('handoff-') and give.event_id.endswith('-give')
    assert take.event_id == give.event_id[:-len('give')] + 'take'
    assert 'obs2' in take.evidence_ids
    assert eng.cart('v1') == {} and eng.cart('v2') == {'cola': 1}


def test_hand_off_inside_one_visit_moves_nothing():
    eng = engine()
    partner = TrackIn(2, 1.0, -0.6, visit_id='v1', account_id='acct1')
    eng.add_shelf_event(shelf_event('se1', 'a', 1.0, 1.5), int(1.6 * S))
    events = play(eng, 0.0, 7.0, [SHOPPER_1, partner], picks_then_meets,
                  [hand_sees('obs1', 1, 1.8, 'cola'), hand_sees('obs2', 2, 3.8, 'cola')])
    assert [(e.visit_id, e.quantity_delta) for e in events] == [('v1', 1)]
    assert eng.counters['hand_meetings_same_visit'] >= 2


def test_put_back_is_matched_against_the_cart():
    eng = engine()
    eng.add_shelf_event(shelf_event('se1', 'a', 1.0, 1.5), int(1.6 * S))
    eng.add_shelf_event(shelf_event('se2', 'a', 3.0, 3.5, kind=RETURN, delta=330.0),
                        int(3.6 * S))
    events = play(eng, 0.0, 6.0, [SHOPPER_1],
                  lambda t: [hand_in(1, 'a' if 1.0 <= t <= 1.5 or 3.0 <= t <= 3.5 else '')],
                  [hand_sees('obs1', 1, 1.8, 'cola_zero')])
    assert [(e.sku, e.quantity_delta, e.needs_review) for e in events] == \
        [('cola_zero', 1, False), ('cola_zero', -1, False)]
    assert eng.cart('v1') == {}


def test_return_to_another_shelf_leaves_the_returners_cart():
    eng = engine()
    # Picked at shelf 1, put into the water bin of shelf 2: the weight says "a bag of
    # chips", the cart says which one.
    walker = TrackIn(1, 1.0, -0.6, visit_id='v1', account_id='acct1')
    eng.add_shelf_event(shelf_event('se1', 'b', 1.0, 1.5, candidates=CHIPS_WEIGHT),
                        int(1.6 * S))
    play(eng, 0.0, 5.0, [walker, SHOPPER_2],
         lambda t: [hand_in(1, 'b' if 1.0 <= t <= 1.5 else '')],
         [hand_sees('obs1', 1, 1.8, 'chips_paprika')])
    assert eng.cart('v1') == {'chips_paprika': 1}
    walker = TrackIn(1, 5.0, -0.6, visit_id='v1', account_id='acct1')
    eng.add_shelf_event(shelf_event('se2', 'c', 5.0, 5.5, kind=RETURN, delta=150.0,
                                    candidates=CHIPS_WEIGHT), int(5.6 * S))
    events = play(eng, 4.1, 9.5, [walker, SHOPPER_2],
                  lambda t: [hand_in(1, 'c' if 5.0 <= t <= 5.5 else '')])
    assert [(e.visit_id, e.sku, e.quantity_delta, e.needs_review) for e in events] == \
        [('v1', 'chips_paprika', -1, False)]


def test_associate_restock_is_never_charged_and_counted():
    eng = engine()
    associate = TrackIn(3, 5.0, -0.6, role=ROLE_ASSOCIATE)
    eng.add_shelf_event(shelf_event('se1', 'c', 1.0, 1.5, kind=RETURN, delta=3000.0,
                                    candidates=(SkuCandidate('water', 6, 0.9),)), int(1.6 * S))
    events = play(eng, 0.0, 5.0, [associate, SHOPPER_1],
                  lambda t: [hand_in(3, 'c' if 1.0 <= t <= 1.5 else '')])
    assert events == []
    assert eng.counters['associate_events'] == 1
    assert eng.watermark_ns >= int(1.5 * S)


def test_item_nobody_reached_goes_to_review_with_its_evidence():
    eng = engine()
    nearby = TrackIn(1, 0.0, -2.0, visit_id='v1', account_id='acct1')  # 2 m away
    eng.add_shelf_event(shelf_event('se1', 'a', 1.0, 1.5), int(1.6 * S))
    events = play(eng, 0.0, 5.0, [nearby], lambda t: [hand_in(1, '')])
    assert len(events) == 1
    assert events[0].needs_review and events[0].review_reason == 'no_person_reached_bin'
    assert events[0].evidence_ids == ('se1',)
    assert eng.cart('v1') == {}  # a review changes no cart until a person confirms


def test_item_with_nobody_in_the_store_is_counted_not_charged():
    eng = engine()
    eng.add_shelf_event(shelf_event('se1', 'c', 1.0, 1.5), int(1.6 * S))
    events = play(eng, 0.0, 5.0, [SHOPPER_1])  # 5 m away
    assert events == []
    assert eng.counters['unexplained_events'] == 1
    assert any('se1' in line for line in eng.drain_messages())


def test_unknown_weight_change_goes_to_review_with_the_seen_sku():
    eng = engine()
    eng.add_shelf_event(shelf_event('se1', 'a', 1.0, 1.5, kind=UNKNOWN, candidates=(),
                                    delta=-77.0), int(1.6 * S))
    events = play(eng, 0.0, 5.0, [SHOPPER_1],
                  lambda t: [hand_in(1, 'a' if 1.0 <= t <= 1.5 else '')],
                  [hand_sees('obs1', 1, 1.8, 'cola')])
    assert [(e.sku, e.quantity_delta, e.review_reason) for e in events] == \
        [('cola', 1, 'unexplained_weight_change')]


def test_low_sku_margin_goes_to_review():
    eng = engine()
    eng.add_shelf_event(shelf_event('se1', 'a', 1.0, 1.5), int(1.6 * S))
    events = play(eng, 0.0, 5.0, [SHOPPER_1],
                  lambda t: [hand_in(1, 'a' if 1.0 <= t <= 1.5 else '')])
    assert events[0].needs_review and events[0].review_reason == 'ambiguous_sku'


def test_bin_observation_counts_as_evidence():
    eng = engine()
    eng.add_shelf_event(shelf_event('se1', 'a', 1.0, 1.5), int(1.6 * S))
    bin_view = ProductObservationIn('obs_bin', int(1.2 * S), 0, HAND_NONE, 'a', 'cam_1',
                                    'soda', 0.9, (SkuCandidate('cola', 1, 0.85),))
    events = play(eng, 0.0, 5.0, [SHOPPER_1],
                  lambda t: [hand_in(1, 'a' if 1.0 <= t <= 1.5 else '')], [bin_view])
    assert (events[0].sku, events[0].needs_review) == ('cola', False)


@pytest.mark.parametrize('weight, sku', [(1.0, 'cola_zero'), (3.0, 'cola_zero'),
                                          (0.0, 'cola')])
def test_hand_crops_of_an_event_are_fused_with_its_bin_crops_by_weight(weight, sku):
    """Product ID's '<event>/<camera>' and '<event>/<camera>/hand' observations of one pick.

    The bin crop leans to cola (0.7), the crop round the hand that was in the bin to
    cola_zero (0.95): with weight 1 (and more) the hand wins, with 0 it is left out.
    """
    eng = engine(hand_observation_weight=weight, min_sku_probability=0.0)
    eng.add_shelf_event(shelf_event('se1', 'a', 1.0, 1.5), int(1.6 * S))
    bin_view = ProductObservationIn('se1/cam_1', int(0.9 * S), 0, HAND_NONE, 'a', 'cam_1',
                                    'soda', 0.9, (SkuCandidate('cola', 1, 0.7),
                                                  SkuCandidate('cola_zero', 1, 0.3)))
    hand_view = ProductObservationIn('se1/cam_1/hand', int(2.0 * S), 1, HAND_RIGHT, 'a',
                                     'cam_1', 'soda', 0.95,
                                     (SkuCandidate('cola_zero', 1, 0.95),
                                      SkuCandidate('cola', 1, 0.05)))
    events = play(eng, 0.0, 5.0, [SHOPPER_1],
                  lambda t: [hand_in(1, 'a' if 1.0 <= t <= 1.5 else '')],
                  [bin_view, hand_view])
    assert len(events) == 1 and events[0].sku == sku
    assert {'se1/cam_1', 'se1/cam_1/hand'} <= set(events[0].evidence_ids)


def test_a_hand_crop_of_another_person_is_not_evidence():
    eng = engine(min_sku_probability=0.0)
    eng.add_shelf_event(shelf_event('se1', 'a', 1.0, 1.5), int(1.6 * S))
    other_hand = ProductObservationIn('se1/cam_1/hand/2-right', int(2.0 * S), 2, HAND_RIGHT,
                                      'a', 'cam_1', 'soda', 0.95,
                                      (SkuCandidate('cola_zero', 1, 0.95),))
    bin_view = ProductObservationIn('se1/cam_1', int(0.9 * S), 0, HAND_NONE, 'a', 'cam_1',
                                    'soda', 0.9, (SkuCandidate('cola', 1, 0.7),))
    events = play(eng, 0.0, 5.0, [SHOPPER_1, SHOPPER_2],
                  lambda t: [hand_in(1, 'a' if 1.0 <= t <= 1.5 else '')],
                  [bin_view, other_hand])
    assert events[0].track_id == 1 and events[0].sku == 'cola'
    assert 'se1/cam_1/hand/2-right' not in events[0].evidence_ids


def carried(observation_id: str, track_id: int, stamp_s: float, sku: str,
            p: float = 0.95) -> ProductObservationIn:
    """Return what a person carries (product ID's '<event>/<camera>/carried')."""
    other = 'cola' if sku == 'cola_zero' else 'cola_zero'
    return ProductObservationIn(observation_id, int(stamp_s * S), track_id, HAND_CARRIED,
                                'a', 'cam_1', 'soda', 0.95,
                                (SkuCandidate(sku, 1, p), SkuCandidate(other, 1, 1.0 - p)))


@pytest.mark.parametrize('weight, sku', [(1.0, 'cola_zero'), (0.0, 'cola')])
def test_what_the_picker_carries_is_evidence_whichever_hand_was_in_the_bin(weight, sku):
    """The left hand was in the bin; a carried crop has no side and still counts.

    The bin crop leans to cola (0.6), the carried crop to cola_zero (0.95): it decides
    with weight 1, and is left out with weight 0.
    """
    eng = engine(min_sku_probability=0.0, carried_observation_weight=weight)
    eng.add_shelf_event(shelf_event('se1', 'a', 1.0, 1.5), int(1.6 * S))
    bin_view = ProductObservationIn('se1/cam_1', int(0.9 * S), 0, HAND_NONE, 'a', 'cam_1',
                                    'soda', 0.9, (SkuCandidate('cola', 1, 0.6),
                                                  SkuCandidate('cola_zero', 1, 0.4)))
    events = play(eng, 0.0, 5.0, [SHOPPER_1],
                  lambda t: [SkeletonIn(1, left_bin_id='a' if 1.0 <= t <= 1.5 else '')],
                  [bin_view, carried('se1/cam_1/carried', 1, 2.0, 'cola_zero')])
    assert len(events) == 1 and events[0].sku == sku
    assert 'se1/cam_1/carried' in events[0].evidence_ids


def test_what_another_person_carries_is_not_evidence():
    eng = engine(min_sku_probability=0.0)
    eng.add_shelf_event(shelf_event('se1', 'a', 1.0, 1.5), int(1.6 * S))
    bin_view = ProductObservationIn('se1/cam_1', int(0.9 * S), 0, HAND_NONE, 'a', 'cam_1',
                                    'soda', 0.9, (SkuCandidate('cola', 1, 0.7),
                                                  SkuCandidate('cola_zero', 1, 0.3)))
    events = play(eng, 0.0, 5.0, [SHOPPER_1, SHOPPER_2],
                  lambda t: [hand_in(1, 'a' if 1.0 <= t <= 1.5 else '')],
                  [bin_view, carried('se1/cam_1/carried/2', 2, 2.0, 'cola_zero')])
    assert events[0].track_id == 1 and events[0].sku == 'cola'
    assert 'se1/cam_1/carried/2' not in events[0].evidence_ids


def test_a_crop_of_the_picker_at_another_bins_event_is_not_evidence():
    """The picker took from bin b a moment before: that crop names b, not this event's a."""
    eng = engine(min_sku_probability=0.0)
    eng.add_shelf_event(shelf_event('se2', 'a', 1.0, 1.5), int(1.6 * S))
    earlier = ProductObservationIn('se1/cam_1/carried', int(0.6 * S), 1, HAND_CARRIED, 'b',
                                   'cam_1', 'soda', 0.95, (SkuCandidate('cola_zero', 1, 0.95),))
    bin_view = ProductObservationIn('se2/cam_1', int(0.9 * S), 0, HAND_NONE, 'a', 'cam_1',
                                    'soda', 0.9, (SkuCandidate('cola', 1, 0.7),
                                                  SkuCandidate('cola_zero', 1, 0.3)))
    events = play(eng, 0.0, 5.0, [SHOPPER_1],
                  lambda t: [hand_in(1, 'a' if 1.0 <= t <= 1.5 else '')], [earlier, bin_view])
    assert events[0].sku == 'cola' and 'se1/cam_1/carried' not in events[0].evidence_ids


def test_what_a_person_carries_never_confirms_a_hand_off():
    """After hands meet, only an item seen in a hand moves between carts."""
    eng = engine()
    eng.add_shelf_event(shelf_event('se1', 'a', 1.0, 1.5), int(1.6 * S))
    events = play(eng, 0.0, 7.0, [SHOPPER_1, SHOPPER_2], picks_then_meets,
                  [hand_sees('obs1', 1, 1.8, 'cola'), carried('obs2', 2, 3.8, 'cola')])
    assert [(e.visit_id, e.sku, e.quantity_delta) for e in events] == [('v1', 'cola', 1)]
    assert eng.cart('v1') == {'cola': 1} and eng.cart('v2') == {}


def test_track_without_visit_is_not_charged():
    eng = engine()
    stranger = TrackIn(7, 0.0, -0.6)
    eng.add_shelf_event(shelf_event('se1', 'a', 1.0, 1.5), int(1.6 * S))
    events = play(eng, 0.0, 5.0, [stranger],
                  lambda t: [hand_in(7, 'a' if 1.0 <= t <= 1.5 else '')])
    assert events == [] and eng.counters['events_without_visit'] == 1


@pytest.mark.parametrize(('event', 'reason'), [
    (ShelfEventIn('x', 2 * S, 'shelf_1', 'nope', PICK, -330.0, S, 2 * S, SODA_WEIGHT),
     'unknown_bin'),
    (ShelfEventIn('x', 2 * S, 'shelf_2', 'a', PICK, -330.0, S, 2 * S, SODA_WEIGHT),
     'unknown_bin'),
    (ShelfEventIn('x', 2 * S, 'shelf_1', 'a', PICK, -330.0, S, 2 * S,
                  (SkuCandidate('not_sold_here', 1, 0.9),)), 'sku_not_in_catalog'),
    (ShelfEventIn('x', 60 * S, 'shelf_1', 'a', PICK, -330.0, 59 * S, 60 * S, SODA_WEIGHT),
     'future_stamp'),
    (ShelfEventIn('x', 2 * S, 'shelf_1', 'a', PICK, -330.0, 3 * S, 2 * S, SODA_WEIGHT),
     'malformed'),
    (ShelfEventIn('', 2 * S, 'shelf_1', 'a', PICK, -330.0, S, 2 * S, SODA_WEIGHT),
     'malformed'),
    (ShelfEventIn('x', 2 * S, 'shelf_1', 'a', 9, -330.0, S, 2 * S, SODA_WEIGHT), 'malformed'),
])
def test_bad_shelf_events_are_refused_with_a_reason(event, reason):
    with pytest.raises(InputRejectedError) as refused:
        engine().add_shelf_event(event, 3 * S)
    assert refused.value.reason == reason


def test_unknown_candidate_sku_is_dropped_and_counted():
    eng = engine()
    candidates = (SkuCandidate('cola', 1, 0.6), SkuCandidate('not_sold_here', 1, 0.4))
    eng.add_shelf_event(shelf_event('se1', 'a', 1.0, 1.5, candidates=candidates),
                        int(1.6 * S))
    events = play(eng, 0.0, 5.0, [SHOPPER_1],
                  lambda t: [hand_in(1, 'a' if 1.0 <= t <= 1.5 else '')])
    assert events[0].sku == 'cola' and not events[0].needs_review
    assert eng.counters['candidate_skus_not_in_catalog'] == 1


def test_unknown_hand_bin_is_ignored_and_counted():
    eng = engine()
    eng.add_skeletons(S, [hand_in(1, 'no_such_bin')], S)
    assert eng.counters['unknown_hand_bins'] == 1


def test_event_waits_for_its_inputs_then_resolves_and_the_watermark_follows():
    eng = engine(max_input_wait_s=3.0, shelf_event_latency_s=1.0)
    eng.add_tracks(1 * S, [SHOPPER_1], 1 * S)
    eng.add_skeletons(1 * S, [hand_in(1, 'a')], 1 * S)
    eng.add_shelf_event(shelf_event('se1', 'a', 0.8, 1.2, candidates=COLA), int(1.3 * S))
    # Skeletons only reached 1.0 s: not covering end + margin, so it waits.
    assert eng.advance(int(1.4 * S)) == []
    assert eng.watermark_ns < int(1.2 * S)
    # The skeleton stream covers 1.8 s now: resolved.
    eng.add_tracks(int(1.8 * S), [SHOPPER_1], int(1.8 * S))
    eng.add_skeletons(int(1.8 * S), [hand_in(1, '')], int(1.8 * S))
    events = eng.advance(int(1.8 * S))
    assert [e.event_id for e in events] == ['cart-se1']
    # Bounded wait: a skeleton stream alive but lagging delays the next event at most 3 s.
    eng.add_shelf_event(shelf_event('se2', 'a', 1.9, 2.0, candidates=COLA), int(2.1 * S))
    assert eng.advance(int(2.2 * S)) == []
    for now_s in (3.0, 4.5):
        eng.add_skeletons(int(1.8 * S), [hand_in(1, '')], int(now_s * S))
        assert eng.advance(int(now_s * S)) == []
    assert [e.event_id for e in eng.advance(int(5.2 * S))] == ['cart-se2']
    assert eng.counters['resolved_after_wait'] == 1


def test_repeated_shelf_event_makes_no_second_cart_event():
    eng = engine()
    event = shelf_event('se1', 'a', 1.0, 1.5)
    assert eng.add_shelf_event(event, int(1.6 * S))
    events = play(eng, 0.0, 5.0, [SHOPPER_1],
                  lambda t: [hand_in(1, 'a' if 1.0 <= t <= 1.5 else '')])
    assert not eng.add_shelf_event(event, 5 * S)
    assert eng.advance(6 * S) == []
    assert len(events) == 1 and eng.counters['duplicate_shelf_events'] == 1


def test_restored_events_rebuild_the_cart_after_a_restart():
    first = engine()
    first.add_shelf_event(shelf_event('se1', 'a', 1.0, 1.5), int(1.6 * S))
    sent = play(first, 0.0, 4.0, [SHOPPER_1],
                lambda t: [hand_in(1, 'a' if 1.0 <= t <= 1.5 else '')],
                [hand_sees('obs1', 1, 1.8, 'cola_zero')])
    second = engine()
    for event in sent:
        second.restore(event)
    assert second.cart('v1') == {'cola_zero': 1}
    assert not second.add_shelf_event(shelf_event('se1', 'a', 1.0, 1.5), 5 * S)


def test_store_description_gives_every_bin_a_front_and_every_sku_a_category():
    description = load_store_description('config/store.yaml')
    sites = bin_sites(description)
    assert set(sites) == {b.bin_id for s in description.shelves for b in s.bins}
    assert set(catalog_of(description)) == set(description.catalog)


@pytest.mark.parametrize('overrides', [
    {'max_input_wait_s': -1.0}, {'ambiguous_person_ratio': 1.5}, {'hand_off_frames': 0},
    {'history_s': 2.0}, {'observation_floor': 0.0}, {'max_pending_events': 0},
])
def test_config_is_validated(overrides):
    with pytest.raises(ValueError):
        AssociationConfig(**overrides)


def test_two_changes_of_one_bin_at_once_are_two_hands():
    eng = engine()
    # Both reach into bin a together; the first change is matched to shopper 2's reach
    # (closer in time), so the second, overlapping one is shopper 1's.
    eng.add_shelf_event(shelf_event('se1', 'a', 1.0, 1.5, candidates=COLA), int(1.6 * S))
    eng.add_shelf_event(shelf_event('se2', 'a', 1.05, 1.6, candidates=COLA), int(1.7 * S))
    events = play(eng, 0.0, 5.0, [SHOPPER_1, SHOPPER_2],
                  lambda t: [hand_in(1, 'a' if 0.8 <= t <= 1.8 else ''),
                             hand_in(2, 'a' if 1.0 <= t <= 1.5 else '')])
    assert [(e.event_id, e.visit_id, e.needs_review) for e in events] == \
        [('cart-se1', 'v2', False), ('cart-se2', 'v1', False)]


def test_event_waits_for_the_product_crop_of_its_bin_that_comes_after_it():
    eng = engine()
    eng.add_observations(0, [hand_sees('early', 2, 0.0, 'water')], 0)  # product ID is up
    eng.add_shelf_event(shelf_event('se1', 'a', 1.0, 1.5), int(1.6 * S))
    # A bin crop stamped before the pick (the frame before the hand came), published
    # 2.4 s after the shelf event: the event waits for it instead of going to review.
    crop = ProductObservationIn('se1/cam_2', int(0.85 * S), 0, HAND_NONE, 'a', 'cam_2',
                                'soda', 0.9, (SkuCandidate('cola_zero', 1, 0.9),))
    events = []
    for step in range(60):
        now = int(step * 0.1 * S)
        eng.add_tracks(now, [SHOPPER_1], now)
        eng.add_skeletons(now, [hand_in(1, 'a' if 1.0 <= step * 0.1 <= 1.5 else '')], now)
        if step == 40:
            eng.add_observations(now, [crop], now)
        events += eng.advance(now)
        if step < 40:
            assert events == []
    assert [(e.sku, e.needs_review) for e in events] == [('cola_zero', False)]
    assert 'se1/cam_2' in events[0].evidence_ids


def test_without_product_id_a_flavour_the_weight_cannot_tell_waits_then_goes_to_review():
    eng = engine(max_input_wait_s=3.0)
    eng.add_shelf_event(shelf_event('se1', 'a', 1.0, 1.5), int(1.6 * S))
    early = play(eng, 0.0, 4.5, [SHOPPER_1],
                 lambda t: [hand_in(1, 'a' if 1.0 <= t <= 1.5 else '')])
    assert early == [] and eng.watermark_ns < int(1.5 * S)  # held while it waits
    late = play(eng, 4.6, 5.0, [SHOPPER_1], lambda t: [hand_in(1, '')])
    assert [(e.needs_review, e.review_reason) for e in late] == [(True, 'ambiguous_sku')]


def test_an_ended_visit_is_forgotten_after_the_history():
    eng = engine(history_s=10.0)
    eng.add_visit('v9', 'acct9', [9])
    eng.restore(CartEventOut('cart-x', S, 'v9', 'acct9', 9, 'cola', 1, 1.0, ('x',)))
    eng.end_visit('v9', 2 * S)
    eng.advance(5 * S)
    assert eng.cart('v9') == {'cola': 1}      # late events may still come
    eng.advance(13 * S)
    assert eng.cart('v9') == {}
