"""The operator web application (Flask) and its HTTP server thread.

Every route but the sign-in form answers only to a signed-in staff member: pages
redirect to ``/login``, JSON and images answer 401. The session cookie is signed with
the configured secret (or one generated at start: sessions then end with the process),
HttpOnly and SameSite=Strict. Every POST (sign-in, sign-out, resolve) carries the
session's CSRF token. Ledger calls go through a ``Ledger`` (the node's service clients)
and never block ROS callbacks: they run on the HTTP server's threads.
"""

from __future__ import annotations

from dataclasses import dataclass
import hmac
import math
import pathlib
import secrets
import threading
import time
from typing import Any, Callable
from urllib.parse import urlsplit

from flask import (
    abort,
    flash,
    Flask,
    jsonify,
    redirect,
    render_template,
    request,
    Response,
    session,
    url_for,
)
from werkzeug.serving import BaseWSGIServer, make_server, WSGIRequestHandler

from .auth import StaffDirectory
from .ledger_views import Ledger, LedgerUnavailableError
from .plan import floor_plan
from .state import Evidence, OperatorState

TEMPLATES = pathlib.Path(__file__).resolve().parent / 'templates'
PUBLIC_ENDPOINTS = frozenset({'sign_in'})
MAX_NOTE_CHARS = 500
MAX_QUANTITY = 1000
MAX_CART_VISITS = 30          # carts fetched per /api/carts call at most
SCALE_PX_PER_M = 72
SECURITY_HEADERS = {
    'Content-Security-Policy': "default-src 'self'; img-src 'self'; style-src 'self' "
                               "'unsafe-inline'; script-src 'self'; form-action 'self'; "
                               "frame-ancestors 'none'; base-uri 'none'",
    'X-Frame-Options': 'DENY',
    'X-Content-Type-Options': 'nosniff',
    'Referrer-Policy': 'no-referrer',
    'Cache-Control': 'no-store',
}


@dataclass(frozen=True)
class WebSettings:
    """How the application signs sessions and how often the map polls."""

    secret_key: str = ''              # '' : a random one for this process
    session_lifetime_s: float = 8 * 3600.0
    live_period_ms: int = 500
    secure_cookie: bool = False       # True behind TLS (the cookie then needs https)

    def __post_init__(self) -> None:
        """Check the values."""
        if not (math.isfinite(self.session_lifetime_s) and self.session_lifetime_s > 0):
            raise ValueError('session_lifetime_s must be > 0')
        if not 50 <= self.live_period_ms <= 10_000:
            raise ValueError('live_period_ms must be in [50, 10000]')
        if self.secret_key and len(self.secret_key) < 32:
            raise ValueError('the session secret must be at least 32 characters')


def money(cents: int) -> str:
    """Integer cents as units with two decimals."""
    sign = '-' if cents < 0 else ''
    return f'{sign}{abs(cents) // 100}.{abs(cents) % 100:02d}'


def trace_svg(evidence: Evidence, width: int = 320, height: int = 140) -> str:
    """Return an inline SVG of the weight trace (gaps at lost samples; line at the event)."""
    points = [(t, g) for t, g in evidence.weight_trace]
    values = [g for _, g in points if g is not None]
    if not values:
        return '<svg width="%d" height="%d"><text x="8" y="20">no samples</text></svg>' % (
            width, height)
    t0 = (evidence.window_ns[0] - evidence.stamp_ns) / 1e9
    t1 = (evidence.window_ns[1] - evidence.stamp_ns) / 1e9
    low, high = min(values), max(values)
    pad = max(5.0, (high - low) * 0.1)
    low, high = low - pad, high + pad

    def xy(t: float, g: float) -> str:
        return '%.1f,%.1f' % ((t - t0) / (t1 - t0) * (width - 50) + 45,
                              (high - g) / (high - low) * (height - 20) + 5)
    runs: list[list[str]] = [[]]
    for t, g in points:
        if g is None:
            runs.append([])
        else:
            runs[-1].append(xy(t, g))
    lines = ''.join('<polyline fill="none" stroke="#2d6cdf" stroke-width="1.5" points="%s"/>'
                    % ' '.join(run) for run in runs if len(run) > 1)
    event_x = (0.0 - t0) / (t1 - t0) * (width - 50) + 45
    return (f'<svg class="trace" width="{width}" height="{height}">'
            f'<rect x="45" y="5" width="{width - 50}" height="{height - 20}" fill="#fbfbfd" '
            f'stroke="#d8dce3"/>{lines}'
            f'<line x1="{event_x:.1f}" x2="{event_x:.1f}" y1="5" y2="{height - 15}" '
            f'stroke="#d9480f" stroke-dasharray="3,2"/>'
            f'<text x="2" y="14" font-size="10">{high:.0f}</text>'
            f'<text x="2" y="{height - 16}" font-size="10">{low:.0f}</text>'
            f'<text x="45" y="{height - 2}" font-size="10">{t0:+.1f} s</text>'
            f'<text x="{width - 40}" y="{height - 2}" font-size="10">{t1:+.1f} s</text></svg>')


def path_svg(evidence: Evidence, plan: dict, scale: float = 28.0) -> str:
    """Return an inline SVG of the store with the person's path and the bin."""
    depth = plan['depth_m']
    shelves = ''.join('<polygon fill="#c9b38f" points="%s"/>' % ' '.join(
        f'{x},{depth - y}' for x, y in shelf['points']) for shelf in plan['shelves'])
    path = ' '.join(f'{x:.2f},{depth - y:.2f}' for _, x, y in evidence.path)
    marks = ''
    if evidence.path:
        _, x, y = min(evidence.path, key=lambda p: abs(p[0]))
        marks += (f'<circle cx="{x:.2f}" cy="{depth - y:.2f}" r="0.2" fill="#2d6cdf">'
                  '<title>at the event</title></circle>')
    if evidence.bin_center_m is not None:
        bx, by = evidence.bin_center_m
        marks += (f'<rect x="{bx - 0.15:.2f}" y="{depth - by - 0.15:.2f}" width="0.3" '
                  'height="0.3" fill="#d9480f"><title>bin</title></rect>')
    return (f'<svg class="path" width="{plan["width_m"] * scale:.0f}" '
            f'height="{depth * scale:.0f}" viewBox="0 0 {plan["width_m"]} {depth}">'
            f'<rect width="{plan["width_m"]}" height="{depth}" fill="#fbfbfd" stroke="#1d2330" '
            f'stroke-width="0.05"/>{shelves}'
            f'<polyline fill="none" stroke="#2d6cdf" stroke-width="0.06" points="{path}"/>'
            f'{marks}</svg>')


def _safe_next(target: str) -> str:
    """Only a path on this site (no scheme, no host, not '//...') may follow sign-in."""
    parts = urlsplit(target)
    if not target.startswith('/') or target.startswith('//') or parts.scheme or parts.netloc:
        return '/'
    return target


def create_app(state: OperatorState, ledger: Ledger, staff: StaffDirectory,
               settings: WebSettings, clock: Callable[[], float] = time.monotonic,
               on_event: Callable[[str, str], None] | None = None) -> Flask:
    """Build the application. ``on_event(kind, message)`` is told of sign-ins and decisions."""
    app = Flask('go_store_operator', root_path=str(TEMPLATES.parent),
                template_folder=str(TEMPLATES))
    app.config.update(
        SECRET_KEY=settings.secret_key or secrets.token_hex(32),
        SESSION_COOKIE_NAME='go_store_operator',
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE='Strict',
        SESSION_COOKIE_SECURE=settings.secure_cookie,
        PERMANENT_SESSION_LIFETIME=settings.session_lifetime_s,
        MAX_CONTENT_LENGTH=16 * 1024,
    )
    plan = floor_plan(state.description)
    tell = on_event or (lambda kind, message: None)

    def csrf_token() -> str:
        token = session.get('csrf_token')
        if not token:
            token = session['csrf_token'] = secrets.token_urlsafe(32)
        return str(token)

    def page(title: str, template: str, script: str = '', **values: Any) -> str:
        return render_template(template, title=title, user=session.get('user'),
                               csrf_token=csrf_token(), money=money, script=script, **values)

    @app.before_request
    def guard() -> Any:
        if request.endpoint not in PUBLIC_ENDPOINTS and not session.get('user'):
            if request.path.startswith(('/api/', '/evidence/')) or request.method != 'GET':
                return jsonify(error='sign in first'), 401
            return redirect(url_for('sign_in', next=request.full_path.rstrip('?')))
        if request.method == 'POST':
            sent = request.form.get('csrf_token', '')
            expected = session.get('csrf_token', '')
            if not expected or not hmac.compare_digest(str(sent), str(expected)):
                abort(400, 'missing or wrong CSRF token: reload the page')
        return None

    @app.after_request
    def headers(response: Response) -> Response:
        response.headers.update(SECURITY_HEADERS)
        return response

    @app.route('/login', methods=['GET', 'POST'])
    def sign_in() -> Any:
        if request.method == 'POST':
            user = request.form.get('user', '')[:64]
            password = request.form.get('password', '')[:256]
            target = _safe_next(request.form.get('next', '/'))
            if staff.sign_in(user, password, clock()):
                session.clear()        # a new session (and CSRF token) on sign-in
                session.permanent = True
                session['user'] = user
                csrf_token()
                tell('sign_in', f'{user} signed in from {request.remote_addr}')
                return redirect(target)
            tell('sign_in_refused', f'sign-in refused for {user!r} from {request.remote_addr}')
            flash('Wrong name or password (or too many tries: wait a minute).', 'error')
            return page('Sign in', 'sign_in.html', next=target, no_staff=not staff.users), 401
        return page('Sign in', 'sign_in.html', next=_safe_next(request.args.get('next', '/')),
                    no_staff=not staff.users)

    @app.route('/logout', methods=['POST'])
    def sign_out() -> Any:
        session.clear()
        return redirect(url_for('sign_in'))

    @app.route('/')
    def store() -> Any:
        return page('Store', 'store.html', script=url_for('live_script'), plan=plan,
                    scale=SCALE_PX_PER_M, period_ms=settings.live_period_ms)

    @app.route('/app.js')
    def live_script() -> Any:
        return Response((TEMPLATES / 'app.js').read_text(), mimetype='text/javascript')

    @app.route('/api/live')
    def live() -> Any:
        return jsonify(state.live())

    @app.route('/api/carts')
    def carts() -> Any:
        result = {}
        try:
            for visit in state.open_visits()[:MAX_CART_VISITS]:
                cart = ledger.get_cart(visit.visit_id)
                result[visit.visit_id] = {
                    'found': cart.found, 'message': cart.message,
                    'lines': [{'sku': line.sku, 'name': line.name, 'quantity': line.quantity}
                              for line in cart.lines],
                    'total_cents': cart.total_cents, 'currency': cart.currency,
                    'open_reviews': len(cart.open_review_ids)}
        except LedgerUnavailableError as error:
            return jsonify(error=str(error)), 503
        return jsonify(result)

    @app.route('/reviews')
    def reviews() -> Any:
        items, error = [], ''
        try:
            open_items = [r for r in ledger.list_reviews('') if r.state == 'open']
        except LedgerUnavailableError as failure:
            open_items, error = [], f'The ledger did not answer: {failure}'
        for review in open_items:
            evidence = state.evidence(review.event_id)
            product = state.description.catalog.get(review.sku)
            items.append({
                'review': review, 'event': state.cart_event(review.event_id),
                'product': product.name if product else review.sku, 'evidence': evidence,
                'trace_svg': trace_svg(evidence) if evidence else '',
                'path_svg': path_svg(evidence, plan) if evidence else ''})
        return page('Review queue', 'reviews.html', items=items, error=error,
                    config_after_s=state.config.evidence_after_s)

    @app.route('/reviews/<review_id>/resolve', methods=['POST'])
    def resolve(review_id: str) -> Any:
        note = request.form.get('note', '').strip()
        try:
            quantity = int(request.form.get('quantity', ''))
        except ValueError:
            quantity = None
        if quantity is None or abs(quantity) > MAX_QUANTITY:
            flash(f'Review {review_id}: the quantity must be a whole number of units.', 'error')
        elif not note or len(note) > MAX_NOTE_CHARS:
            flash(f'Review {review_id}: say why in the note (up to {MAX_NOTE_CHARS} '
                  'characters).', 'error')
        else:
            user = str(session['user'])
            try:
                ok, message = ledger.resolve_review(review_id, quantity, user, note)
            except LedgerUnavailableError as error:
                ok, message = False, f'the ledger did not answer: {error}'
            tell('resolve', f'review {review_id} by {user}: {quantity:+d} -> '
                 f'{"ok" if ok else "refused"}: {message}')
            flash(f'Review {review_id}: {message}', 'info' if ok else 'error')
        return redirect(url_for('reviews'))

    @app.route('/visits/<visit_id>')
    def visit(visit_id: str) -> Any:
        try:
            cart = ledger.get_cart(visit_id)
            visit_reviews = ledger.list_reviews(visit_id) if cart.found else []
            error = ''
        except LedgerUnavailableError as failure:
            cart, visit_reviews, error = None, [], f'The ledger did not answer: {failure}'
        return page(f'Visit {visit_id}', 'visit.html', visit_id=visit_id, cart=cart,
                    reviews=visit_reviews, error=error)

    @app.route('/evidence/<event_id>/<int:index>.png')
    def crop(event_id: str, index: int) -> Any:
        evidence = state.evidence(event_id)
        if evidence is None or not 0 <= index < len(evidence.crops):
            abort(404)
        return Response(evidence.crops[index].png, mimetype='image/png')

    return app


class _QuietRequestHandler(WSGIRequestHandler):
    """No access log line per request (the live map polls twice a second)."""

    def log_request(self, code: int | str = '-', size: int | str = '-') -> None:
        """Log nothing for a served request (errors are still logged)."""


class HttpServer:
    """Werkzeug's threaded server for the application, in its own daemon thread."""

    def __init__(self, app: Flask, host: str, port: int) -> None:
        """Bind now (so a taken port fails at start); serve once started."""
        self._server: BaseWSGIServer = make_server(host, port, app, threaded=True,
                                                    request_handler=_QuietRequestHandler)
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        name='operator_http', daemon=True)

    @property
    def port(self) -> int:
        """The bound port (useful with port 0)."""
        return int(self._server.server_port)

    def start(self) -> None:
        """Serve in the background."""
        self._thread.start()

    def stop(self) -> None:
        """Stop serving and wait for the thread."""
        self._server.shutdown()
        self._server.server_close()
        if self._thread.is_alive():
            self._thread.join(timeout=5.0)
