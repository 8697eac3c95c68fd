"""The store map of an evaluation: what it compares, and what the picture shows where."""

import pathlib

import cv2
import numpy as np
import pytest

from go_store_nodes.core.evaluation.data import (
    GroundTruth,
    PredictedReceipt,
    PredictedShelfEvent,
    PredictedTrackFrame,
    PredictedVisit,
    Predictions,
    TruthEvent,
    TruthFrame,
    TruthPerson,
)
from go_store_nodes.core.evaluation.storemap import (
    _bin_cells,
    _row_cells,
    build_store_map,
    HIT_COLOUR,
    identity_switches,
    layout_for,
    receipt_problems,
    render_store_map,
    STATUS_COLOURS,
    track_labels,
)
from go_store_nodes.core.store import load_store_description

S = 1_000_000_000
T0 = 1_700_000_000 * S
PERIOD = S // 5
FRAMES = 36
STORE = pathlib.Path(__file__).resolve().parents[1] / 'config' / 'store.yaml'


def _walk(start, end, index, count=FRAMES):
    share = index / (count - 1)
    return start[0] + (end[0] - start[0]) * share, start[1] + (end[1] - start[1]) * share


def _person_1(i):    # along the south aisle, west to east
    return _walk((1.0, 1.5), (8.0, 1.5), i)


def _person_2(i):    # along the north aisle, east to west
    return _walk((8.5, 4.5), (1.0, 4.5), i)


def _person_3(i):    # along the middle aisle, west to east
    return _walk((1.5, 2.2), (8.5, 2.2), i)


def _false_track(i):  # where nobody walks
    return _walk((9.3, 2.0), (9.3, 3.6), i)


def _truth():
    frames = tuple(TruthFrame(T0 + i * PERIOD, ((1, *_person_1(i)), (2, *_person_2(i)),
                                                 (3, *_person_3(i)))) for i in range(FRAMES))
    people = (TruthPerson(1, 'shopper', 'acct_a', 1, T0, T0 + 7 * S),
              TruthPerson(2, 'shopper', 'acct_b', 2, T0, T0 + 7 * S),
              TruthPerson(3, 'shopper', 'acct_c', 3, T0, T0 + 7 * S),
              TruthPerson(4, 'shopper', 'acct_d', 4, T0, T0 + 7 * S))

    def pick(event_id, second, bin_id, sku, person, account):
        return TruthEvent(event_id, 'pick', T0 + second * S, T0 + (second - 1) * S,
                          T0 + second * S, person, account, sku, 1, bin_id, bin_id[:8])

    events = (pick('e1', 3, 'shelf_01_bin_1', 'cola', 2, 'acct_b'),
              pick('e2', 5, 'shelf_02_bin_1', 'gum', 2, 'acct_b'))
    return GroundTruth(
        scenario='hand_built', seed=7, start_ns=T0, end_ns=T0 + FRAMES * PERIOD,
        frame_period_ns=PERIOD, people=people, frames=frames, events=events,
        receipts={'acct_a': {'cola': 1}, 'acct_b': {'chips': 2, 'gum': 1},
                  'acct_c': {'cola': 1}, 'acct_d': {'gum': 1}},
        store='reference_store')


SWITCH_FRAME = 20


def _predictions():
    frames = []
    for i in range(FRAMES):
        x1, y1 = _person_1(i)
        # Track 20 follows person 2, then jumps to person 3 at SWITCH_FRAME.
        x2, y2 = _person_2(i) if i < SWITCH_FRAME else _person_3(i)
        frames.append(PredictedTrackFrame(T0 + i * PERIOD, (
            (10, x1 + 0.05, y1), (20, x2, y2 + 0.05), (30, *_false_track(i)))))
    receipts = (
        PredictedReceipt(T0 + 8 * S, T0 + 8 * S, 'visit_a', 'acct_a', True, {'cola': 1}),
        PredictedReceipt(T0 + 8 * S, T0 + 8 * S, 'visit_b', 'acct_b', True,
                         {'chips': 1, 'soda': 1}),
        PredictedReceipt(T0 + 8 * S, T0 + 8 * S, 'visit_c', 'acct_c', False, {'cola': 1}),
        PredictedReceipt(T0 + 8 * S, T0 + 8 * S, 'visit_z', 'acct_z', True, {'cola': 1}))
    shelf_events = (
        PredictedShelfEvent(T0 + 3 * S, T0 + 3 * S + S // 4, 'shelf-1', 'shelf_01',
                            'shelf_01_bin_1', 'pick'),
        PredictedShelfEvent(T0 + 6 * S, T0 + 6 * S, 'shelf-2', 'shelf_03', 'shelf_03_bin_2',
                            'pick'))
    visits = (PredictedVisit(T0, T0, 'visit_a', 'acct_a', True, (10,)),)
    counts = {'/people/tracks': FRAMES, '/receipts': len(receipts),
              '/shelf/events': len(shelf_events), '/visits': 1}
    return Predictions(counts, receipts=receipts, shelf_events=shelf_events,
                       track_frames=tuple(frames), visits=visits)


@pytest.fixture(scope='module')
def description():
    return load_store_description(STORE)


@pytest.fixture(scope='module')
def store_map():
    return build_store_map(_truth(), _predictions(), metrics={'tracking_idf1': 0.5})


@pytest.fixture(scope='module')
def picture(store_map, description):
    layout = layout_for(store_map, description)
    png = render_store_map(store_map, description, layout)
    image = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)
    return png, layout, image[:, :, ::-1].astype(int)   # RGB


def _rgb(colour):
    return np.array([int(colour[i:i + 2], 16) for i in (1, 3, 5)])


def _near(image, pixel, colour, radius=2, tolerance=40):
    """Whether a pixel within ``radius`` of ``pixel`` has ``colour``."""
    column, row = int(round(pixel[0])), int(round(pixel[1]))
    patch = image[row - radius:row + radius + 1, column - radius:column + radius + 1]
    return bool((np.abs(patch - _rgb(colour)).max(axis=2) <= tolerance).any())


def test_tracks_take_the_person_they_followed_most_and_mark_the_switch(store_map):
    tracks = {t.track_id: t for t in store_map.track_paths}
    assert tracks[10].person_id == 1 and not tracks[10].false and not tracks[10].switches
    assert tracks[20].person_id == 2 and not tracks[20].false
    (switch,) = tracks[20].switches
    assert (switch.from_person, switch.to_person) == (2, 3)
    assert switch.stamp_ns == T0 + SWITCH_FRAME * PERIOD
    assert (switch.x_m, switch.y_m) == pytest.approx((_person_3(SWITCH_FRAME)[0],
                                                      _person_3(SWITCH_FRAME)[1] + 0.05))
    assert tracks[30].false and tracks[30].person_id is None
    assert [p.person_id for p in store_map.truth_paths] == [1, 2, 3]
    assert 'tracks: 3, false: 1, changed person: 1' in store_map.summary
    assert 'IDF1: 0.500' in store_map.summary


def test_shelf_events_are_hits_misses_and_false(store_map):
    outcomes = {(m.outcome, m.bin_id) for m in store_map.shelf_events}
    assert outcomes == {('hit', 'shelf_01_bin_1'), ('miss', 'shelf_02_bin_1'),
                        ('false', 'shelf_03_bin_2')}
    assert 'shelf events: 1 hit, 1 missed, 1 false' in store_map.summary


def test_receipt_rows_say_what_was_wrong(store_map):
    rows = {r.account_id: r for r in store_map.receipts}
    assert rows['acct_a'].status == 'exact' and rows['acct_a'].problems == ()
    assert rows['acct_a'].visit_ids == ('visit_a',) and rows['acct_a'].person_ids == (1,)
    assert rows['acct_b'].status == 'wrong'
    assert rows['acct_b'].problems == ('wrong quantity: 1 x chips, bought 2',
                                       'missing 1 x gum', 'extra 1 x soda')
    assert rows['acct_c'].status == 'held for review' and rows['acct_c'].problems == ()
    assert rows['acct_d'].status == 'no receipt' and rows['acct_d'].received is None
    assert rows['acct_z'].status == 'unexpected account'
    assert 'receipts: 1 of 4 exact, 1 wrong, 1 held, 1 missing, 1 unexpected' \
        in store_map.summary
    # The table the renderer draws: the wrong lines and the verdict in the wrong colour.
    cells = _row_cells(rows['acct_b'], 1600)
    red = STATUS_COLOURS['wrong']
    assert ('2 x chips', red) in cells[4] and ('1 x gum', red) in cells[4]
    assert ('1 x soda', red) in cells[5]
    assert cells[6][0] == ('wrong', red)
    assert any('missing 1 x gum' in text for text, _ in cells[6])
    assert _row_cells(rows['acct_a'], 1600)[6] == [('exact', STATUS_COLOURS['exact'])]


def test_receipt_problems():
    assert receipt_problems({'a': 1}, {'a': 1}) == []
    assert receipt_problems({'a': 2, 'b': 1}, {'a': 3, 'c': 1}) == [
        'wrong quantity: 3 x a, bought 2', 'missing 1 x b', 'extra 1 x c']


def test_picture_is_a_png_of_the_layout_size(picture):
    png, layout, image = picture
    assert png[:8] == b'\x89PNG\r\n\x1a\n'
    assert image.shape == (layout.height_px, layout.width_px, 3)
    # Floor plan of the 10 x 6 m store, one receipt-table row per account.
    assert layout.map_width_px == round((10.0 + 2 * layout.margin_m) * layout.pixels_per_m)
    assert len(layout.table_row_px) == 5


def test_track_pixels_lie_along_the_track_in_its_person_colour(picture, store_map):
    _, layout, image = picture
    colour = store_map.person_colour(1)
    # Samples away from the ends (labels) along track 10, and 0.6 m north of it.
    on_track = [_near(image, layout.to_pixel(x + 0.05, y), colour)
                for x, y in (_person_1(i) for i in range(3, FRAMES - 3))]
    off_track = [_near(image, layout.to_pixel(x + 0.05, y + 0.6), colour)
                 for x, y in (_person_1(i) for i in range(3, FRAMES - 3))]
    assert all(on_track)
    assert not any(off_track)


def test_switch_false_track_and_hit_are_drawn_where_they_happened(picture, store_map,
                                                                  description):
    _, layout, image = picture
    (switch,) = next(t for t in store_map.track_paths if t.track_id == 20).switches
    assert _near(image, layout.to_pixel(switch.x_m, switch.y_m), store_map.person_colour(3))
    # The false track is dark grey and dotted along its path, never a person's colour.
    samples = [layout.to_pixel(*_false_track(i)) for i in range(3, FRAMES - 3)]

    def dark_grey_near(pixel):
        column, row = int(round(pixel[0])), int(round(pixel[1]))
        patch = image[row - 1:row + 2, column - 1:column + 2]
        return bool(((patch.max(axis=2) <= 150)
                     & (patch.max(axis=2) - patch.min(axis=2) <= 30)).any())

    assert sum(dark_grey_near(p) for p in samples) >= len(samples) // 2
    assert not any(dark_grey_near(layout.to_pixel(x + 0.4, y))
                   for x, y in (_false_track(i) for i in range(3, FRAMES - 3)))
    assert not any(_near(image, p, store_map.person_colour(person), radius=1)
                   for p in samples for person in (1, 2, 3))
    # The hit is a green dot inside its bin's cell; nothing green in the missed bin.
    cells = {}
    for shelf in description.shelves:
        cells.update(_bin_cells(shelf))

    def green_in(bin_id):
        pixels = np.array([layout.to_pixel(x, y) for x, y in cells[bin_id]])
        (c0, r0), (c1, r1) = pixels.min(axis=0).astype(int), pixels.max(axis=0).astype(int)
        patch = image[r0:r1 + 1, c0:c1 + 1]
        return int((np.abs(patch - _rgb(HIT_COLOUR)).max(axis=2) <= 30).sum())

    assert green_in('shelf_01_bin_1') >= 15
    assert green_in('shelf_02_bin_1') == 0


def test_a_track_brushing_past_someone_has_not_switched():
    # Person 1 for 2 s, person 2 for one frame, person 1 again, then person 3 for 1.2 s.
    people = [1] * 10 + [2] + [1] * 5 + [3] * 6
    steps = [(T0 + i * PERIOD, person, float(i), 0.0) for i, person in enumerate(people)]
    (switch,) = identity_switches(steps, S, PERIOD)
    assert (switch.from_person, switch.to_person, switch.x_m) == (1, 3, 16.0)
    assert identity_switches(steps, 2 * S, PERIOD) == []     # 1.2 s of person 3 is too short
    assert len(identity_switches(steps, PERIOD, PERIOD)) == 3


def test_track_labels_keep_the_digits_that_differ():
    assert track_labels([1700000000227001, 1700000000227036]) == {
        1700000000227001: 't1', 1700000000227036: 't36'}
    assert track_labels([3, 12]) == {3: 't3', 12: 't12'}
    assert track_labels([150, 1204]) == {150: 't150', 1204: 't1204'}
