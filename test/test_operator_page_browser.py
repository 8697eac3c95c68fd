"""The operator page in a real headless browser, on a replay of a store-resolution bag.

A short `easy` bag at the store's 424x240 (5 fps) is simulated here (the committed 42x24
bags have no person the locator can find), then replayed as fast as the graph keeps up
(paced replay falls behind on two shared cores) through the nodes the page needs
(calibration, person_locator, tracker, gate, cart_ledger, operator_page), with a tail of
/clock after the bag so the page and the ledger stay up while the browser works.
Chromium (Debian's chromium + chromium-driver, driven by selenium) checks that a visitor
who has not signed in is refused, that a track moves on the live map, and that a review
item (raised by a low-confidence cart event published on cart/events) resolved through
the page's form changes the ledger (GetCart) with the signed-in name as resolved_by.
Screenshots go to the test folder, and to $GO_STORE_OPERATOR_SCREENSHOTS when set
(docs/operator-page.png was made so).
"""

import math
import os
import pathlib
import re
import shutil
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

from go_store.msg import CartEvent, TrackArray, Visit
from go_store.srv import GetCart, ListReviews
import pytest
import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
import yaml

from go_store_nodes.core.operator import hash_password
from go_store_nodes.core.store import load_store_description

# About 3 min on two idle cores; much longer when other replays share them.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]

BAG_S = 18.0
TAIL_S = 30.0
NODES = 'calibration,person_locator,tracker,gate,cart_ledger,operator_page'
CHROME_FLAGS = ('--headless', '--no-sandbox', '--disable-gpu', '--disable-quic',
                '--no-first-run', '--disable-background-networking',
                '--disable-component-update', '--disable-sync', '--window-size=1280,1000')
RELIABLE = QoSProfile(depth=100, history=HistoryPolicy.KEEP_LAST,
                      reliability=ReliabilityPolicy.RELIABLE,
                      durability=DurabilityPolicy.VOLATILE)
LATCHED = QoSProfile(depth=100, history=HistoryPolicy.KEEP_LAST,
                     reliability=ReliabilityPolicy.RELIABLE,
                     durability=DurabilityPolicy.TRANSIENT_LOCAL)


def _wait(condition, timeout_s, what, period_s=0.2):
    deadline = time.monotonic() + timeout_s
    while True:
        value = condition()
        if value:
            return value
        assert time.monotonic() < deadline, f'timed out after {timeout_s} s waiting for {what}'
        time.sleep(period_s)


class StoreProbe:
    """Listens to tracks and visits, publishes a cart event, calls the ledger."""

    def __init__(self, domain_id):
        self.context = rclpy.Context()
        rclpy.init(context=self.context, domain_id=domain_id)
        self.node = rclpy.create_node('operator_page_probe', context=self.context)
        self.tracks = None
        self.visits = {}
        self._subs = [
            self.node.create_subscription(TrackArray, 'people/tracks', self._on_tracks,
                                          RELIABLE),
            self.node.create_subscription(Visit, 'visits', self._on_visit, LATCHED)]
        self.events = self.node.create_publisher(CartEvent, 'cart/events', RELIABLE)
        self.get_cart = self.node.create_client(GetCart, 'ledger/get_cart')
        self.list_reviews = self.node.create_client(ListReviews, 'ledger/list_reviews')
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self._thread = threading.Thread(target=self._spin, daemon=True)
        self._thread.start()

    def _spin(self):
        while self.context.ok():
            try:
                self.executor.spin_once(timeout_sec=0.1)
            except Exception:  # noqa: BLE001 - shut down under it
                return

    def _on_tracks(self, msg):
        if msg.tracks:
            self.tracks = msg

    def _on_visit(self, msg):
        if msg.status == Visit.STARTED:
            self.visits[msg.visit_id] = msg

    def call(self, client, request, timeout_s=10.0):
        assert client.wait_for_service(timeout_sec=timeout_s), client.srv_name
        done = threading.Event()
        future = client.call_async(request)
        future.add_done_callback(lambda _: done.set())
        assert done.wait(timeout_s), f'{client.srv_name}: no answer'
        return future.result()

    def close(self):
        self.context.try_shutdown()
        self._thread.join(timeout=5)
        self.node.destroy_node()


def _submit(driver, button, then_id=None, then_css=None, timeout_s=60):
    """Click a form's submit button and wait for the answer page, not the old one.

    A click returns once the event is sent; under load the server's answer (a scrypt
    check, a ledger call) arrives later, so look only after the old page is gone.
    """
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait
    old = driver.find_element('tag name', 'html')
    button.click()
    WebDriverWait(driver, timeout_s).until(ec.staleness_of(old))
    by, value = ('id', then_id) if then_id else ('css selector', then_css)
    return WebDriverWait(driver, timeout_s).until(ec.presence_of_element_located((by, value)))


def _screenshot(driver, tmp_path, name):
    path = tmp_path / name
    driver.save_screenshot(str(path))
    target = os.environ.get('GO_STORE_OPERATOR_SCREENSHOTS')
    if target:
        shutil.copy(path, pathlib.Path(target) / name)
    return path


def _positions(driver):
    """Track id -> (cx, cy) of every track drawn on the live map (map metres, y down).

    Read in one script: the page redraws the tracks at every update.
    """
    rows = driver.execute_script(
        "return Array.from(document.querySelectorAll('#tracks g.track')).map(g => [g.id, "
        "Number(g.querySelector('circle').getAttribute('cx')), "
        "Number(g.querySelector('circle').getAttribute('cy'))]);")
    return {row[0]: (row[1], row[2]) for row in rows or []}


def test_operator_page_in_chromium_during_a_replay(repo, store_path, tmp_path):
    chromium, chromedriver = shutil.which('chromium'), shutil.which('chromedriver')
    assert chromium and chromedriver, 'install chromium and chromium-driver: tools/system_deps.sh'
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    started = time.monotonic()
    cli = [sys.executable, '-m', 'go_store_nodes.cli']
    bag = tmp_path / 'sim' / 'bag'
    subprocess.run(cli + ['simulate', str(repo / 'config' / 'scenarios' / 'easy.yaml'),
                          '--out', str(bag), '--truth', str(tmp_path / 'sim' / 'truth.json'),
                          '--duration', str(BAG_S), '--camera-fps', '5',
                          '--compression-level', '1', '--quiet'],
                   check=True, timeout=300, capture_output=True)
    simulated_s = time.monotonic() - started

    password = 'staff-password-1'
    params = yaml.safe_load((repo / 'config' / 'go_store.yaml').read_text())
    page_params = params['operator_page']['ros__parameters']
    page_params['staff_credentials'] = f'alice:{hash_password(password)}'
    page_params['live_period_ms'] = 250
    params_file = tmp_path / 'params.yaml'
    params_file.write_text(yaml.safe_dump(params))
    domain_id = 101 + os.getpid() % 100          # not the conftest's (1-100)
    log_path = tmp_path / 'replay.log'
    with open(log_path, 'w') as log:
        replay = subprocess.Popen(
            cli + ['replay', str(bag), '--out', str(tmp_path / 'out'), '--params',
                   str(params_file), '--domain-id', str(domain_id), '--nodes', NODES,
                   '--as-fast-as-possible', '--tail', str(TAIL_S), '--quiet'],
            stdout=log, stderr=subprocess.STDOUT)
    probe = driver = None
    try:
        url = _wait(lambda: (re.findall(r'operator page at (http://\S+/)', log_path.read_text())
                             or [None])[0], 90, 'the operator page to start')
        probe = StoreProbe(domain_id)

        # Not signed in: the JSON answers 401 and pages go to the sign-in form.
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(url + 'api/live', timeout=10)
        assert refused.value.code == 401
        options = webdriver.ChromeOptions()
        options.binary_location = chromium
        for flag in CHROME_FLAGS:
            options.add_argument(flag)
        options.add_argument(f'--user-data-dir={tmp_path / "chromium-profile"}')
        driver = webdriver.Chrome(service=Service(chromedriver), options=options)
        driver.set_page_load_timeout(30)
        driver.get(url + 'reviews')
        assert '/login' in driver.current_url
        assert 'Staff sign-in' in driver.page_source
        assert 'Review queue' not in driver.page_source

        # A wrong password is refused too; the right one signs in.
        driver.find_element('id', 'signin-user').send_keys('alice')
        driver.find_element('id', 'signin-password').send_keys('not-the-password')
        _submit(driver, driver.find_element('id', 'signin-submit'), then_id='signin-submit')
        assert 'Wrong name or password' in driver.page_source
        driver.find_element('id', 'signin-user').clear()
        driver.find_element('id', 'signin-user').send_keys('alice')
        driver.find_element('id', 'signin-password').send_keys(password)
        signed_in = _submit(driver, driver.find_element('id', 'signin-submit'), then_id='user')
        assert signed_in.text == 'alice'
        driver.get(url)

        # A track moves on the live map.
        first = _wait(lambda: _positions(driver), 300, 'a track on the live map', 1.0)
        track, start = next(iter(first.items()))

        def moved():
            now = _positions(driver).get(track)
            return now if now and math.hypot(now[0] - start[0], now[1] - start[1]) > 0.3 else None
        end = _wait(moved, 120, f'{track} to move from {start}', 0.5)
        print(f'{track} moved from {start} to {end} (map m, y down)')

        # A visit opens; the page lists it with its cart.
        visit = _wait(lambda: next(iter(probe.visits.values()), None), 300, 'a visit', 1.0)
        _wait(lambda: driver.find_elements('id', f'visit-{visit.visit_id}'), 20,
              'the visit on the page')
        _wait(lambda: driver.find_elements(
            'xpath', f'//tr[@id="visit-{visit.visit_id}"]/td[4][contains(., "EUR")]'), 60,
            "the visit's cart (GetCart) on the page")

        # A low-confidence cart event waits for review; staff resolve it on the page.
        description = load_store_description(store_path)
        bin_ = description.shelves[0].bins[0]
        sku = bin_.skus[0]
        tracks = probe.tracks
        event = CartEvent()
        event.header = tracks.header
        event.event_id = 'operator-page-test-1'
        event.visit_id = visit.visit_id
        event.account_id = visit.account_id
        event.track_id = int(visit.track_ids[0]) if len(visit.track_ids) else int(
            tracks.tracks[0].track_id)
        event.sku = sku
        event.quantity_delta = 1
        event.confidence = 0.3
        event.needs_review = True
        event.review_reason = 'person unsure (test)'
        _wait(lambda: probe.events.get_subscription_count() >= 2, 20,
              'cart_ledger and operator_page on cart/events')
        probe.events.publish(event)

        def review_shown():
            driver.get(url + 'reviews')
            return driver.find_elements('css selector', '.review svg.trace')
        _wait(review_shown, 30, 'the review item with its weight trace', period_s=1.0)

        def evidence_complete():       # 3 s of node clock after the event
            driver.get(url + 'reviews')
            return driver.find_elements('css selector', '.review[data-evidence=complete]')
        card = _wait(evidence_complete, 300, 'the evidence window to pass', period_s=2.0)[0]
        assert 'person unsure (test)' in card.text
        _screenshot(driver, tmp_path, 'operator-review.png')
        card.find_element('name', 'quantity').clear()
        card.find_element('name', 'quantity').send_keys('2')
        card.find_element('name', 'note').send_keys('two units gone in the after crop')
        flash = _submit(driver, card.find_element('css selector', 'button[type=submit]'),
                        then_css='.flash')
        assert 'applied' in flash.text

        # The ledger changed: the cart holds two units, the review names who decided.
        cart = probe.call(probe.get_cart, GetCart.Request(visit_id=visit.visit_id))
        assert cart.found
        assert [(line.sku, line.quantity) for line in cart.lines] == [(sku, 2)]
        reviews = probe.call(probe.list_reviews, ListReviews.Request(visit_id=visit.visit_id))
        resolved = [r for r in reviews.items if r.event_id == event.event_id]
        assert [(r.state, r.resolved_by, r.note) for r in resolved] == [
            ('resolved', 'alice', 'two units gone in the after crop')]
        driver.get(url)
        _wait(lambda: _positions(driver), 60, 'the live map again', 1.0)
        time.sleep(2.0)
        _screenshot(driver, tmp_path, 'operator-page.png')
        browser_done_s = time.monotonic() - started
        # Everything above happened while the replay was still playing or in its tail.
        assert replay.poll() is None, 'the replay ended before the browser checks did'
    finally:
        if driver is not None:
            driver.quit()
        if probe is not None:
            probe.close()
        if replay.poll() is None:        # its outputs are not needed: stop it
            replay.terminate()
        try:
            replay.wait(timeout=60)
        except subprocess.TimeoutExpired:
            replay.kill()
            replay.wait()
    print(f'simulated in {simulated_s:.0f} s; browser checks done at {browser_done_s:.0f} s; '
          f'whole test {time.monotonic() - started:.0f} s')
