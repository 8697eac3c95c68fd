"""Operator page core: password hashes, sign-in, bounded state, bad input, the web app."""

import math
import re

import numpy as np
import pytest

from go_store_nodes.core.operator import (
    CartEventRecord,
    CartLineView,
    CartView,
    ColorFrame,
    create_app,
    CredentialError,
    hash_password,
    InputRejectedError,
    LedgerUnavailableError,
    OperatorConfig,
    OperatorState,
    parse_staff_credentials,
    ReviewView,
    StaffDirectory,
    TrackPoint,
    verify_password,
    VisitRecord,
    WebSettings,
)
from go_store_nodes.core.store import load_store_description
from go_store_nodes.core.transforms import Transform

S = 1_000_000_000
FAST = dict(n=2 ** 10)   # cheap hashes for tests; the format and check are the same


@pytest.fixture(scope='module')
def description(store_path):
    return load_store_description(store_path)


# -- hashing and sign-in -------------------------------------------------------------------

def test_hash_verifies_only_its_password_and_salts_differ():
    stored = hash_password('correct horse', **FAST)
    assert re.fullmatch(r'scrypt\$1024\$8\$1\$[0-9a-f]{32}\$[0-9a-f]{64}', stored)
    assert verify_password('correct horse', stored)
    assert not verify_password('correct hors', stored)
    assert not verify_password('', stored)
    assert hash_password('correct horse', **FAST) != stored      # fresh salt each time
    assert not verify_password('correct horse', stored.replace('scrypt', 'md5'))
    assert not verify_password('correct horse', 'scrypt$1024$8$1$zz$00')


def test_hash_matches_hashlib_scrypt_for_a_known_salt():
    import hashlib
    salt = bytes(range(16))
    stored = hash_password('pw', salt=salt, **FAST)
    key = hashlib.scrypt(b'pw', salt=salt, n=1024, r=8, p=1, dklen=32)
    assert stored.endswith('$' + salt.hex() + '$' + key.hex())


def test_staff_credentials_parse_and_refuse_malformed_entries():
    a, b = hash_password('a-password', **FAST), hash_password('b-password', **FAST)
    staff = parse_staff_credentials(f'alice:{a}, bob:{b}\n')
    assert set(staff) == {'alice', 'bob'}
    assert parse_staff_credentials('') == {}
    for bad in (f'alice{a}', f'al ice:{a}', f'alice:{a},alice:{b}', 'alice:plaintext',
                'alice:scrypt$3$8$1$00112233445566778899aabbccddeeff$' + '00' * 32,
                'alice:scrypt$1024$8$1$0011$' + '00' * 32):
        with pytest.raises(CredentialError):
            parse_staff_credentials(bad)


def test_sign_in_locks_a_name_after_repeated_failures_then_forgives():
    directory = StaffDirectory(parse_staff_credentials(
        f'alice:{hash_password("right-one", **FAST)}'), max_failures=3, lockout_s=60.0)
    assert directory.sign_in('alice', 'right-one', 0.0)
    assert not directory.sign_in('mallory', 'right-one', 0.0)   # unknown name
    for t in (1.0, 2.0, 3.0):
        assert not directory.sign_in('alice', 'wrong', t)
    assert directory.locked('alice', 4.0)
    assert not directory.sign_in('alice', 'right-one', 4.0)     # locked, even when right
    assert directory.sign_in('alice', 'right-one', 70.0)        # lock over


def test_failure_table_is_bounded():
    directory = StaffDirectory({}, max_failures=2, max_tracked=10)
    for i in range(100):
        directory.sign_in(f'guess{i}', 'x', float(i))
    assert len(directory._failures) == 10


# -- state bounds and bad input ------------------------------------------------------------

def _state(description, **overrides):
    return OperatorState(description, OperatorConfig(**overrides))


def test_config_refuses_bad_bounds():
    for bad in (dict(max_track_sets=0), dict(track_history_s=math.nan),
                dict(color_ring_frames=0), dict(evidence_after_s=-1.0)):
        with pytest.raises(ValueError):
            OperatorConfig(**bad)


def test_track_ring_is_bounded_by_count_and_time(description):
    state = _state(description, max_track_sets=50, track_history_s=2.0, path_points=5)
    for i in range(500):
        state.add_tracks(i * S // 10, [TrackPoint(7, 1.0 + i * 0.01, 2.0)])
    assert state.sizes()['track_sets'] == 21        # 2 s at 10 Hz, both ends kept
    live = state.live()
    assert live['tracks'][0]['track_id'] == 7
    assert len(live['tracks'][0]['trail']) == 5
    assert live['tracks'][0]['x'] == pytest.approx(1.0 + 4.99)


def test_nan_tracks_are_dropped_and_counted(description):
    state = _state(description)
    dropped = state.add_tracks(S, [TrackPoint(1, math.nan, 1.0), TrackPoint(2, 1.0, math.inf),
                                   TrackPoint(3, 2.0, 2.0)])
    assert dropped == 2
    assert [t['track_id'] for t in state.live()['tracks']] == [3]
    assert state.counters['dropped_track_not_finite'] == 2
    with pytest.raises(InputRejectedError) as error:
        state.add_tracks(0, [TrackPoint(3, 2.0, 2.0)])
    assert error.value.reason == 'out_of_order'


def _shelf(description):
    shelf = description.shelves[0]
    return shelf.shelf_id, [b.bin_id for b in shelf.bins]


def test_load_cells_bounded_nan_kept_as_lost_and_bad_batches_refused(description):
    state = _state(description, load_cell_history_s=1.0)    # 60 samples per bin
    shelf_id, bins = _shelf(description)
    period = S // 60
    for batch in range(20):
        grams = np.full((12, len(bins)), 500.0)
        grams[3, 0] = math.nan
        state.add_load_cells(shelf_id, bins, batch * 12 * period, period, 12,
                             grams.ravel().tolist())
    assert state.sizes()['max_bin_samples'] == 60
    with pytest.raises(InputRejectedError) as error:
        state.add_load_cells(shelf_id, bins + ['no_such_bin'], 10 * S, period, 12,
                             [0.0] * 12 * (len(bins) + 1))
    assert error.value.reason == 'unknown_bin'
    with pytest.raises(InputRejectedError) as error:
        state.add_load_cells('no_such_shelf', bins, 10 * S, period, 12, [0.0] * 12 * len(bins))
    assert error.value.reason == 'unknown_shelf'
    for count, values, sample_period in ((12, [0.0] * 5, period), (0, [], period),
                                         (12, [0.0] * 12 * len(bins), 0)):
        with pytest.raises(InputRejectedError) as error:
            state.add_load_cells(shelf_id, bins, 10 * S, sample_period, count, values)
        assert error.value.reason == 'malformed'


def test_colour_ring_is_bounded_and_thinned(description):
    state = _state(description, color_ring_frames=4, color_keep_period_s=0.5)
    camera = description.cameras[0].camera_id
    data = bytes(4 * 3 * 2)
    kept = [state.add_color_frame(camera, ColorFrame(i * S // 10, 'rgb8', 2, 4, 12, data))
            for i in range(50)]
    assert sum(kept) == 10              # one every 0.5 s of 5 s
    assert state.sizes()['color_frames'] == 4
    with pytest.raises(InputRejectedError) as error:
        state.add_color_frame(camera, ColorFrame(99 * S, 'rgb8', 2, 4, 12, bytes(3)))
    assert error.value.reason == 'malformed'
    with pytest.raises(InputRejectedError) as error:
        state.add_color_frame('cam_99', ColorFrame(99 * S, 'rgb8', 2, 4, 12, data))
    assert error.value.reason == 'unknown_camera'


def test_visits_and_evidence_tables_are_bounded(description):
    state = _state(description, max_visits=3, max_evidence=5, evidence_after_s=1.0)
    for i in range(10):
        state.add_visit_started(VisitRecord(f'v{i}', 'acct#x', (i,), 'gate_entry', i * S))
    assert [v.visit_id for v in state.open_visits()] == ['v7', 'v8', 'v9']
    state.add_visit_ended('v8')
    assert [v.visit_id for v in state.open_visits()] == ['v7', 'v9']
    sku = next(iter(description.catalog))
    for i in range(12):
        state.add_cart_event(CartEventRecord(f'e{i}', i * S, 'v7', 1, sku, 1, 0.3, (), True,
                                             'low confidence'))
    state.poll(100 * S)
    sizes = state.sizes()
    assert sizes['cart_events'] == 5 and sizes['evidence'] == 5
    assert state.evidence('e0') is None and state.evidence('e11') is not None
    with pytest.raises(InputRejectedError):
        state.add_cart_event(CartEventRecord('', 0, 'v7', 1, sku, 1, 0.3, (), True, ''))
    with pytest.raises(InputRejectedError) as error:
        state.add_shelf_event('s1', 'no_such_bin', 0, 1)
    assert error.value.reason == 'unknown_bin'


def _look_at(eye, target):
    """Pose of a camera optical frame at ``eye`` looking at ``target`` (z forward, y down)."""
    z = np.asarray(target, float) - np.asarray(eye, float)
    z /= np.linalg.norm(z)
    x = np.cross(z, [0.0, 0.0, 1.0])
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    matrix = np.eye(4)
    matrix[:3, :3] = np.column_stack([x, y, z])
    matrix[:3, 3] = eye
    return Transform.from_matrix(matrix)


def test_evidence_has_the_weight_step_the_path_and_a_crop_of_the_bin(description):
    state = _state(description, evidence_before_s=2.0, evidence_after_s=2.0,
                   color_keep_period_s=0.0, color_ring_frames=100)
    shelf = description.shelves[0]
    bin_ = shelf.bins[0]
    sku = bin_.skus[0]
    center = shelf.t_map_shelf.apply(bin_.center_m()[None])[0]
    # A camera 2 m in front of the bin, looking at it; intrinsics of the store's model.
    front = shelf.t_map_shelf.apply(np.array([[bin_.center_m()[0], -2.0, 1.8]]))[0]
    camera = description.cameras[0]
    intrinsics = camera.model.color
    state.set_camera(camera.camera_id, intrinsics, _look_at(front, center))
    period = S // 60
    bins = [b.bin_id for b in shelf.bins]
    for batch in range(50):                       # 10 s; 350 g gone at t = 5 s
        stamps = batch * 12 * period + np.arange(12) * period
        grams = np.where(stamps[:, None] < 5 * S, 1000.0, 650.0) * np.ones((1, len(bins)))
        state.add_load_cells(shelf.shelf_id, bins, batch * 12 * period, period, 12,
                             grams.ravel().tolist())
    for i in range(100):
        state.add_tracks(i * S // 10, [TrackPoint(4, center[0], center[1] - 0.8 + i * 0.001)])
        image = np.full((intrinsics.height, intrinsics.width, 3), 40 if i < 50 else 200,
                        np.uint8)
        state.add_color_frame(camera.camera_id, ColorFrame(
            i * S // 10, 'rgb8', intrinsics.height, intrinsics.width, intrinsics.width * 3,
            image.tobytes()))
    state.add_shelf_event('shelf_ev_1', bin_.bin_id, int(4.8 * S), int(5.2 * S))
    state.add_cart_event(CartEventRecord('ev1', 5 * S, 'v1', 4, sku, 1, 0.4, ('shelf_ev_1',),
                                         True, 'low confidence'))
    provisional = state.evidence('ev1')
    assert provisional is not None and not provisional.complete
    assert state.poll(6 * S) == 0                 # window not passed yet
    assert state.poll(8 * S) == 1
    evidence = state.evidence('ev1')
    assert evidence.complete and evidence.bin_id == bin_.bin_id
    grams = [g for t, g in evidence.weight_trace if g is not None]
    assert max(grams) == 1000.0 and min(grams) == 650.0
    times = [t for t, _ in evidence.weight_trace]
    assert min(times) == pytest.approx(-2.2, abs=0.02) and max(times) == pytest.approx(
        2.2, abs=0.02)
    assert len(evidence.path) > 30 and all(abs(t) <= 2.21 for t, _, _ in evidence.path)
    labels = {crop.label for crop in evidence.crops}
    assert labels == {'before', 'after'}
    import cv2
    before = next(c for c in evidence.crops if c.label == 'before')
    after = next(c for c in evidence.crops if c.label == 'after')
    assert cv2.imdecode(np.frombuffer(before.png, np.uint8), cv2.IMREAD_COLOR).mean() < 60
    assert cv2.imdecode(np.frombuffer(after.png, np.uint8), cv2.IMREAD_COLOR).mean() > 180


def test_evidence_of_an_event_without_shelf_event_uses_the_skus_bin(description):
    state = _state(description)
    bin_ = description.shelves[1].bins[0]
    state.add_cart_event(CartEventRecord('ev2', S, 'v1', 4, bin_.skus[0], 1, 0.4, ('gone',),
                                         True, 'x'))
    state.poll(10 * S)
    assert state.evidence('ev2').bin_id in {b.bin_id for s in description.shelves
                                            for b in s.bins if bin_.skus[0] in b.skus}


# -- the web application --------------------------------------------------------------------

class FakeLedger:
    def __init__(self):
        self.reviews = {'r1': ReviewView('r1', 'v1', 'ev1', 'sku', 1, 'low confidence', 'open',
                                         '', '')}
        self.resolved = []
        self.down = False

    def list_reviews(self, visit_id=''):
        if self.down:
            raise LedgerUnavailableError('no answer in 3 s')
        return [r for r in self.reviews.values() if not visit_id or r.visit_id == visit_id]

    def get_cart(self, visit_id):
        return CartView(visit_id, True, '', (CartLineView('sku', 'Thing', 2, 150, 300),), 300,
                        'EUR', ())

    def resolve_review(self, review_id, quantity, resolved_by, note):
        self.resolved.append((review_id, quantity, resolved_by, note))
        return True, f'sku: {quantity:+d} applied'


@pytest.fixture()
def web(description):
    ledger = FakeLedger()
    staff = StaffDirectory(parse_staff_credentials(
        f'alice:{hash_password("alice-password", **FAST)}'))
    state = _state(description)
    app = create_app(state, ledger, staff, WebSettings(secret_key='k' * 32))
    app.config['TESTING'] = True
    return app.test_client(), ledger, state


def _csrf(html):
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


def _sign_in(client, password='alice-password'):
    token = _csrf(client.get('/login').get_data(as_text=True))
    return client.post('/login', data={'csrf_token': token, 'user': 'alice',
                                       'password': password, 'next': '/'})


def test_nothing_is_served_without_sign_in(web):
    client, _, _ = web
    for path in ('/', '/reviews', '/visits/v1', '/app.js'):
        response = client.get(path)
        assert response.status_code == 302 and '/login' in response.headers['Location']
    for path in ('/api/live', '/api/carts', '/evidence/ev1/0.png'):
        assert client.get(path).status_code == 401
    assert client.post('/reviews/r1/resolve', data={'quantity': '1'}).status_code == 401
    page = client.get('/login')
    assert page.status_code == 200
    assert 'frame-ancestors' in page.headers['Content-Security-Policy']
    assert page.headers['X-Frame-Options'] == 'DENY'


def test_wrong_password_is_refused_and_sign_in_needs_its_csrf_token(web):
    client, _, _ = web
    assert _sign_in(client, 'wrong').status_code == 401
    assert client.get('/api/live').status_code == 401
    response = client.post('/login', data={'user': 'alice', 'password': 'alice-password'})
    assert response.status_code == 400
    assert client.get('/api/live').status_code == 401


def test_signed_in_staff_resolve_with_csrf_and_are_recorded(web):
    client, ledger, state = web
    response = _sign_in(client)
    assert response.status_code == 302
    cookie = response.headers['Set-Cookie']
    assert 'HttpOnly' in cookie and 'SameSite=Strict' in cookie
    state.add_tracks(S, [TrackPoint(5, 2.0, 3.0)])
    live = client.get('/api/live').get_json()
    assert live['tracks'][0]['x'] == 2.0
    page = client.get('/reviews').get_data(as_text=True)
    assert 'id="review-r1"' in page and 'low confidence' in page
    token = _csrf(page)
    # Without the token: refused, nothing sent to the ledger.
    assert client.post('/reviews/r1/resolve', data={'quantity': '2', 'note': 'x'}
                       ).status_code == 400
    assert ledger.resolved == []
    # A note is required.
    client.post('/reviews/r1/resolve', data={'csrf_token': token, 'quantity': '2', 'note': ''})
    assert ledger.resolved == []
    client.post('/reviews/r1/resolve', data={'csrf_token': token, 'quantity': '2',
                                             'note': 'two in the crop'})
    assert ledger.resolved == [('r1', 2, 'alice', 'two in the crop')]
    assert 'Thing' in client.get('/visits/v1').get_data(as_text=True)
    assert client.get('/api/carts').status_code == 200


def test_ledger_down_is_shown_not_raised(web):
    client, ledger, _ = web
    _sign_in(client)
    ledger.down = True
    page = client.get('/reviews')
    assert page.status_code == 200 and 'did not answer' in page.get_data(as_text=True)


def test_next_after_sign_in_stays_on_the_site(web):
    client, _, _ = web
    token = _csrf(client.get('/login').get_data(as_text=True))
    response = client.post('/login', data={'csrf_token': token, 'user': 'alice',
                                           'password': 'alice-password',
                                           'next': '//evil.example/'})
    assert response.headers['Location'] == '/'


def test_settings_refuse_a_short_secret():
    with pytest.raises(ValueError):
        WebSettings(secret_key='short')
