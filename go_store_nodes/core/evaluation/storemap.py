"""The store map of an evaluation: one picture of where the graph and the truth differ.

``build_store_map`` compares ground truth with the graph's outputs (the data the metrics
read) into plain rows; ``render_store_map`` draws them as a PNG (matplotlib, Agg canvas,
no window) over the floor plan of the store description:

- walls, shelves with their bins (each bin a cell of its shelf's footprint, lower level
  at the shelf front), gate zones and cameras;
- every true path thin and grey, every track over it in the colour of the person it was
  matched to in most frames (per frame, the CLEAR MOT assignment within the tracking
  distance), a cross where the track went over to another person for at least
  ``SWITCH_MIN_RUN_S``, false tracks (matched in under half their frames) dark and dotted;
- shelf events in their bin: detected and true (hit), true but not detected (miss),
  detected but not true (false);
- one table row per shopping account: the true receipt lines beside the receipt's, and
  exact, or what was wrong (missing item, extra item, wrong quantity, held for review,
  no receipt).

Map metres become pixels by ``MapLayout.to_pixel`` (north up), which the tests use.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
import io
import math
import textwrap
from typing import Any, Mapping, Sequence

import numpy as np

from ..store import Bin, Shelf, StoreDescription
from .data import GroundTruth, PredictedReceipt, Predictions
from .metrics import EvaluationConfig, latest_receipts, match_shelf_events, NS
from .tracking import frame_matches

# A track matched to some person in fewer than this share of its frames is drawn as false.
FALSE_TRACK_MATCHED_SHARE = 0.5
# A track that follows another person for less than this long has not switched to them.
SWITCH_MIN_RUN_S = 1.0

# Colours of people, one each in order of person id: tab10 without its grey, then the
# light tab20 partners, then two of Dark2.
PERSON_COLOURS = (
    '#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd', '#8c564b', '#e377c2', '#bcbd22',
    '#17becf', '#aec7e8', '#ffbb78', '#98df8a', '#ff9896', '#c5b0d5', '#c49c94', '#f7b6d2',
    '#dbdb8d', '#9edae5', '#1b9e77', '#7570b3')
FALSE_TRACK_COLOUR = '#000000'
TRUTH_PATH_COLOUR = '#8c8c8c'
HIT_COLOUR = '#1a9641'
MISS_COLOUR = '#d7191c'
FALSE_EVENT_COLOUR = '#7b3294'
STATUS_COLOURS = {'exact': '#1a9641', 'wrong': '#d7191c', 'held for review': '#e66101',
                  'no receipt': '#d7191c', 'unexpected account': '#7b3294'}
GATE_COLOURS = {'entry': '#4dac26', 'exit': '#d01c8b', 'staff': '#808080'}
GATE_ALPHA = 0.18
FLOOR_COLOUR = '#fbfbf8'
SHELF_COLOUR = '#e8dcc4'
SHELF_EDGE_COLOUR = '#6b5a3c'
ROW_STRIPE_COLOUR = '#f3f3f3'


@dataclass(frozen=True)
class TruthPath:
    """Where one simulated person walked: (stamp_ns, x_m, y_m) per truth frame."""

    person_id: int
    role: str
    account_id: str
    points: tuple[tuple[int, float, float], ...]


@dataclass(frozen=True)
class IdentitySwitch:
    """A track that went over from one person to another, where it did."""

    stamp_ns: int
    x_m: float
    y_m: float
    from_person: int
    to_person: int


@dataclass(frozen=True)
class TrackPath:
    """One track's path and whom it followed.

    ``person_id``: the person matched in most frames (None: never matched);
    ``matched_share``: share of the track's truth frames in which it matched anyone.
    """

    track_id: int
    points: tuple[tuple[int, float, float], ...]
    person_id: int | None
    matched_share: float
    switches: tuple[IdentitySwitch, ...]

    @property
    def false(self) -> bool:
        """Whether the track followed nobody most of the time."""
        return self.person_id is None or self.matched_share < FALSE_TRACK_MATCHED_SHARE


@dataclass(frozen=True)
class ShelfEventMark:
    """One shelf event as the evaluation matched it.

    ``outcome``: 'hit' (true and detected), 'miss' (true, not detected) or 'false'
    (detected, not true); ``right_kind`` is false for a hit read as the wrong kind.
    """

    outcome: str
    bin_id: str
    stamp_ns: int
    kind: str
    truth_event_id: str = ''
    detected_event_id: str = ''
    right_kind: bool = True


@dataclass(frozen=True)
class ReceiptRow:
    """One shopping account: what it bought, what its receipt said, and the verdict.

    ``status``: 'exact', 'wrong', 'held for review', 'no receipt' or 'unexpected
    account' (a receipt for an account that did not shop); ``problems``: one phrase per
    differing line ('missing 1 x sku', 'extra 1 x sku', 'wrong quantity: 2 x sku, bought 1').
    """

    account_id: str
    person_ids: tuple[int, ...]
    visit_ids: tuple[str, ...]
    expected: Mapping[str, int]
    received: Mapping[str, int] | None
    status: str
    problems: tuple[str, ...]


@dataclass(frozen=True)
class StoreMap:
    """Everything the store-map picture shows, before drawing."""

    scenario: str
    seed: int
    duration_s: float
    truth_paths: tuple[TruthPath, ...]
    track_paths: tuple[TrackPath, ...]
    shelf_events: tuple[ShelfEventMark, ...]
    receipts: tuple[ReceiptRow, ...]
    summary: tuple[str, ...] = ()

    def person_colour(self, person_id: int) -> str:
        """Return the colour of a person (and of the tracks that followed them)."""
        ids = sorted(p.person_id for p in self.truth_paths)
        index = ids.index(person_id) if person_id in ids else person_id
        return PERSON_COLOURS[index % len(PERSON_COLOURS)]

    def track_colour(self, track: TrackPath) -> str:
        """Colour a track is drawn in: its person's, or the false-track colour."""
        return FALSE_TRACK_COLOUR if track.false or track.person_id is None \
            else self.person_colour(track.person_id)


def _lines_text(lines: Mapping[str, int]) -> list[str]:
    return [f'{quantity} x {sku}' for sku, quantity in sorted(lines.items())]


def receipt_problems(expected: Mapping[str, int], received: Mapping[str, int]) -> list[str]:
    """Say what differs between the true lines and a receipt's, one phrase per SKU."""
    problems = []
    for sku in sorted(set(expected) | set(received)):
        want, got = expected.get(sku, 0), received.get(sku, 0)
        if want == got:
            continue
        if not got:
            problems.append(f'missing {want} x {sku}')
        elif not want:
            problems.append(f'extra {got} x {sku}')
        else:
            problems.append(f'wrong quantity: {got} x {sku}, bought {want}')
    return problems


def receipt_rows(truth: GroundTruth, predictions: Predictions) -> list[ReceiptRow]:
    """One row per account that shopped or got a receipt, in account order.

    The last receipt of each visit counts (a held receipt may be issued later); an
    account's visits are summed, as the receipt metrics do.
    """
    latest = latest_receipts(predictions.receipts)
    by_account: dict[str, list[PredictedReceipt]] = {}
    for receipt in latest:
        by_account.setdefault(receipt.account_id, []).append(receipt)
    visits: dict[str, set[str]] = {}
    for visit in predictions.visits:
        if visit.visit_id:
            visits.setdefault(visit.account_id, set()).add(visit.visit_id)
    for receipt in latest:
        if receipt.visit_id:
            visits.setdefault(receipt.account_id, set()).add(receipt.visit_id)
    shoppers = truth.shopper_accounts()
    rows = []
    for account in sorted(set(shoppers) | set(by_account)):
        expected = {s: q for s, q in truth.receipts.get(account, {}).items() if q}
        people = tuple(sorted(p.person_id for p in truth.people if p.account_id == account))
        receipts = by_account.get(account, [])
        received: dict[str, int] | None = None
        if receipts:
            received = {}
            for receipt in receipts:
                for sku, quantity in receipt.lines.items():
                    received[sku] = received.get(sku, 0) + int(quantity)
            received = {s: q for s, q in received.items() if q > 0}
        problems: list[str] = []
        if account not in shoppers:
            status = 'unexpected account'
        elif received is None:
            status = 'no receipt'
        else:
            problems = receipt_problems(expected, received)
            if not all(r.issued for r in receipts):
                status = 'held for review'
            else:
                status = 'wrong' if problems else 'exact'
        rows.append(ReceiptRow(account, people, tuple(sorted(visits.get(account, ()))),
                               expected, received, status, tuple(problems)))
    return rows


def identity_switches(steps: Sequence[tuple[int, int, float, float]], min_run_ns: int,
                      frame_period_ns: int) -> list[IdentitySwitch]:
    """Where a track went over to another person and stayed with them.

    ``steps``: (stamp_ns, person_id, x_m, y_m) of the frames in which the track matched
    someone, in time order. Runs of one person shorter than ``min_run_ns`` (a track
    brushing past someone else for a frame or two) are ignored; each change between the
    remaining runs is a switch, placed where the new run starts.
    """
    runs: list[list[tuple[int, int, float, float]]] = []
    for step in steps:
        if runs and runs[-1][-1][1] == step[1]:
            runs[-1].append(step)
        else:
            runs.append([step])
    kept = [run for run in runs if run[-1][0] - run[0][0] + frame_period_ns >= min_run_ns]
    switches = []
    for before, after in zip(kept, kept[1:], strict=False):
        if before[0][1] != after[0][1]:
            stamp_ns, person, x_m, y_m = after[0]
            switches.append(IdentitySwitch(stamp_ns, x_m, y_m, before[0][1], person))
    return switches


def track_paths(truth: GroundTruth, predictions: Predictions,
                config: EvaluationConfig) -> list[TrackPath]:
    """Every track's path with the person it followed most and where it changed person."""
    points: dict[int, list[tuple[int, float, float]]] = {}
    for frame in sorted(predictions.track_frames, key=lambda f: f.stamp_ns):
        for track_id, x_m, y_m in frame.tracks:
            points.setdefault(track_id, []).append((frame.stamp_ns, x_m, y_m))
    tolerance_ns = int(config.frame_time_tolerance_s * NS) or max(
        truth.frame_period_ns // 2, 1)
    seen: Counter[int] = Counter()
    matched: dict[int, Counter[int]] = {}
    followed: dict[int, list[tuple[int, int, float, float]]] = {}
    for match in frame_matches(truth.frames, predictions.track_frames,
                               config.tracking_distance_m, tolerance_ns):
        if match.tracks is None:
            continue
        where = {t[0]: (t[1], t[2]) for t in match.tracks.tracks}
        seen.update(list(where))
        for person, track in match.pairs:
            matched.setdefault(track, Counter())[person] += 1
            followed.setdefault(track, []).append((match.tracks.stamp_ns, person, *where[track]))
    min_run_ns = int(SWITCH_MIN_RUN_S * NS)
    switches = {track: identity_switches(steps, min_run_ns, truth.frame_period_ns)
                for track, steps in followed.items()}
    paths = []
    for track_id, track_points in sorted(points.items()):
        counter = matched.get(track_id, Counter())
        dominant = counter.most_common(1)[0][0] if counter else None
        share = sum(counter.values()) / seen[track_id] if seen[track_id] else 0.0
        paths.append(TrackPath(track_id, tuple(track_points), dominant, share,
                               tuple(switches.get(track_id, ()))))
    return paths


def shelf_event_marks(truth: GroundTruth, predictions: Predictions,
                      config: EvaluationConfig) -> list[ShelfEventMark]:
    """Hits, misses and false shelf events, matched as the shelf-event metrics match."""
    expected, predicted, matches = match_shelf_events(truth, predictions, config)
    marks = []
    matched_truth = {id(t) for t, _ in matches}
    matched_detected = {id(p) for _, p in matches}
    for event, detected in matches:
        marks.append(ShelfEventMark(
            'hit', event.bin_id, event.settle_ns, event.kind, event.event_id,
            detected.event_id,
            detected.kind == ('pick' if event.kind == 'pick' else 'return')))
    marks += [ShelfEventMark('miss', e.bin_id, e.settle_ns, e.kind, truth_event_id=e.event_id)
              for e in expected if id(e) not in matched_truth]
    marks += [ShelfEventMark('false', p.bin_id, p.stamp_ns, p.kind,
                             detected_event_id=p.event_id)
              for p in predicted if id(p) not in matched_detected]
    return sorted(marks, key=lambda m: (m.bin_id, m.stamp_ns))


def _truth_paths(truth: GroundTruth) -> list[TruthPath]:
    points: dict[int, list[tuple[int, float, float]]] = {}
    for frame in truth.frames:
        for person_id, x_m, y_m in frame.positions:
            points.setdefault(person_id, []).append((frame.stamp_ns, x_m, y_m))
    people = {p.person_id: p for p in truth.people}
    return [TruthPath(pid, people[pid].role if pid in people else 'shopper',
                      people[pid].account_id if pid in people else '', tuple(pts))
            for pid, pts in sorted(points.items())]


def _summary(paths: Sequence[TrackPath], truth_paths: Sequence[TruthPath],
             marks: Sequence[ShelfEventMark], rows: Sequence[ReceiptRow],
             metrics: Mapping[str, float | None]) -> list[str]:
    outcome = Counter(m.outcome for m in marks)
    status = Counter(r.status for r in rows)
    followed = {t.person_id for t in paths if not t.false}
    lines = [f'people: {len(truth_paths)}, {len(followed)} followed by a track',
             f'tracks: {len(paths)}, false: {sum(1 for t in paths if t.false)}, '
             f'changed person: {sum(1 for t in paths if t.switches)}']

    def figure(name: str, label: str, digits: int = 3) -> None:
        value = metrics.get(name)
        if value is not None and math.isfinite(value):
            lines.append(f'{label}: {value:.{digits}f}' if digits else f'{label}: {value:.0f}')

    figure('tracking_idf1', 'IDF1')
    figure('tracking_mota', 'MOTA')
    figure('tracking_id_switches', 'ID switches', 0)
    wrong_kind = sum(1 for m in marks if m.outcome == 'hit' and not m.right_kind)
    lines.append(f'shelf events: {outcome["hit"]} hit'
                 f'{f" ({wrong_kind} wrong kind)" if wrong_kind else ""}, '
                 f'{outcome["miss"]} missed, {outcome["false"]} false')
    shoppers = [r for r in rows if r.status != 'unexpected account']
    lines.append(f'receipts: {status["exact"]} of {len(shoppers)} exact, '
                 f'{status["wrong"]} wrong, {status["held for review"]} held, '
                 f'{status["no receipt"]} missing'
                 + (f', {status["unexpected account"]} unexpected'
                    if status['unexpected account'] else ''))
    figure('cart_line_f1', 'cart-line F1')
    return lines


def build_store_map(truth: GroundTruth, predictions: Predictions,
                    config: EvaluationConfig | None = None,
                    metrics: Mapping[str, float | None] | None = None) -> StoreMap:
    """Compare truth and outputs into what the store map shows.

    ``metrics`` (name -> value, e.g. from the evaluation report) adds IDF1, MOTA, ID
    switches and cart-line F1 to the summary when present.
    """
    config = config or EvaluationConfig()
    truth_paths = _truth_paths(truth)
    paths = track_paths(truth, predictions, config)
    marks = shelf_event_marks(truth, predictions, config)
    rows = receipt_rows(truth, predictions)
    return StoreMap(truth.scenario, truth.seed, (truth.end_ns - truth.start_ns) / NS,
                    tuple(truth_paths), tuple(paths), tuple(marks), tuple(rows),
                    tuple(_summary(paths, truth_paths, marks, rows, metrics or {})))


# --- layout and drawing -------------------------------------------------------------------

DPI = 100
TABLE_FONT_PT = 7.5
SUMMARY_FONT_PT = 8.5
TABLE_LINE_PX = 13
# Receipt table columns: (heading, width in pixels); the rest of the width is the verdict.
TABLE_COLUMNS = (('', 16), ('account', 110), ('people', 80), ('visit', 150),
                 ('bought (truth)', 330), ('receipt', 330))
MONO_CHAR_PX = 0.602 * TABLE_FONT_PT * DPI / 72.0   # DejaVu Sans Mono advance width


@dataclass(frozen=True)
class MapLayout:
    """Where everything goes in the picture, in pixels (origin top left)."""

    store_size_m: tuple[float, float]
    pixels_per_m: float = 110.0
    margin_m: float = 0.45
    title_px: int = 46
    side_px: int = 430
    table_row_px: tuple[int, ...] = ()
    table_header_px: int = 30

    @property
    def map_width_px(self) -> int:
        """Width of the floor-plan panel."""
        return int(round((self.store_size_m[0] + 2 * self.margin_m) * self.pixels_per_m))

    @property
    def map_height_px(self) -> int:
        """Height of the floor-plan panel."""
        return int(round((self.store_size_m[1] + 2 * self.margin_m) * self.pixels_per_m))

    @property
    def width_px(self) -> int:
        """Width of the whole picture."""
        return self.map_width_px + self.side_px

    @property
    def table_top_px(self) -> int:
        """Top of the receipt table."""
        return self.title_px + self.map_height_px

    @property
    def height_px(self) -> int:
        """Height of the whole picture."""
        return self.table_top_px + self.table_header_px + sum(self.table_row_px) + 10

    def to_pixel(self, x_m: float, y_m: float) -> tuple[float, float]:
        """Map metres to picture pixels (column, row), north up."""
        return (float((x_m + self.margin_m) * self.pixels_per_m),
                float(self.title_px + (self.store_size_m[1] + self.margin_m - y_m)
                      * self.pixels_per_m))


def _wrap(texts: Sequence[str], width_px: float) -> list[str]:
    chars = max(int(width_px / MONO_CHAR_PX) - 1, 8)
    lines: list[str] = []
    for text in texts:
        lines += textwrap.wrap(text, chars, subsequent_indent='  ') or ['']
    return lines


def _short_visit(visit_id: str) -> str:
    """Shorten a visit id for its column (a UUID keeps its first 8 digits)."""
    return visit_id if len(visit_id) <= 20 else f'{visit_id[:8]}..'


def _row_cells(row: ReceiptRow, layout_width_px: int) -> list[list[tuple[str, str]]]:
    """Cell lines (text, colour) of a table row, wrapped to the column widths."""
    verdict_px = layout_width_px - sum(w for _, w in TABLE_COLUMNS)
    black, red = '#202020', STATUS_COLOURS['wrong']
    wrong_skus = {p.rsplit(' x ', 1)[-1].split(',')[0] for p in row.problems}
    expected = [(line, red if line.split(' x ', 1)[1] in wrong_skus else black)
                for line in _lines_text(row.expected)] or [('nothing', '#707070')]
    if row.received is None:
        received = [('no receipt', red)]
    else:
        received = [(line, red if line.split(' x ', 1)[1] in wrong_skus else black)
                    for line in _lines_text(row.received)] or [('no items', '#707070')]
    verdict_text = [row.status] + list(row.problems)
    colour = STATUS_COLOURS.get(row.status, black)
    cells: list[list[tuple[str, str]]] = [
        [('', '')],
        [(t, black) for t in _wrap([row.account_id or '(no account)'], TABLE_COLUMNS[1][1])],
        [(f'p{p}', '') for p in row.person_ids] or [('-', '#707070')],
        [(t, black) for t in _wrap([_short_visit(v) for v in row.visit_ids] or ['-'],
                                   TABLE_COLUMNS[3][1])],
        [(t, c) for text, c in expected for t in _wrap([text], TABLE_COLUMNS[4][1])],
        [(t, c) for text, c in received for t in _wrap([text], TABLE_COLUMNS[5][1])],
        [(t, colour) for t in _wrap(verdict_text, verdict_px)],
    ]
    # People go side by side when there are many.
    if len(cells[2]) > 3:
        cells[2] = [(' '.join(t for t, _ in cells[2][i:i + 3]), black)
                    for i in range(0, len(cells[2]), 3)]
    return cells


def layout_for(store_map: StoreMap, description: StoreDescription,
               pixels_per_m: float = 110.0) -> MapLayout:
    """Lay the picture out: floor plan from the store's size, table rows from the rows."""
    base = MapLayout((float(description.size_m[0]), float(description.size_m[1])),
                     pixels_per_m)
    rows = tuple(max(len(c) for c in _row_cells(r, base.width_px)) * TABLE_LINE_PX + 6
                 for r in store_map.receipts)
    return MapLayout(base.store_size_m, pixels_per_m, table_row_px=rows)


def _bin_cells(shelf: Shelf) -> dict[str, np.ndarray]:
    """Each bin's cell of the shelf footprint in map (4 x 2 corners, metres).

    Bins side by side keep their span along the shelf front; stacked bins split the
    shelf's depth, the lowest level at the front.
    """
    levels = sorted({round(b.min_m[2], 3) for b in shelf.bins})
    depth = float(shelf.size_m[1])
    cells = {}
    for shelf_bin in shelf.bins:
        level = levels.index(round(shelf_bin.min_m[2], 3))
        y0, y1 = depth * level / len(levels), depth * (level + 1) / len(levels)
        x0, x1 = float(shelf_bin.min_m[0]), float(shelf_bin.max_m[0])
        corners = shelf.t_map_shelf.apply(np.array(
            [[x0, y0, 0.0], [x1, y0, 0.0], [x1, y1, 0.0], [x0, y1, 0.0]]))
        cells[shelf_bin.bin_id] = corners[:, :2]
    return cells


def _short_bin(shelf_bin: Bin) -> str:
    shelf_part = shelf_bin.shelf_id.replace('shelf_', 's')
    bin_part = shelf_bin.bin_id.removeprefix(shelf_bin.shelf_id).lstrip('_').replace('bin_', 'b')
    return f'{shelf_part}{bin_part or shelf_bin.bin_id}'


def _event_positions(cell: np.ndarray, count: int, label_m: float) -> list[tuple[float, float]]:
    """Marker positions inside a bin cell: a row along its long side after the label."""
    corners = np.asarray(cell)
    along = corners[1] - corners[0]
    across = corners[3] - corners[0]
    if np.linalg.norm(across) > np.linalg.norm(along):
        along, across = across, along
    length = float(np.linalg.norm(along))
    unit = along / length if length else np.array([1.0, 0.0])
    start = min(label_m, length / 2)
    usable = max(length - start - 0.06, 0.05)
    step = min(0.085, usable / max(count, 1))
    origin = corners[0] + across / 2 + unit * (start + step / 2)
    return [(float(p[0]), float(p[1])) for p in (origin + unit * step * i for i in range(count))]


def _figure(layout: MapLayout) -> tuple[Any, Any]:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    figure = Figure(figsize=(layout.width_px / DPI, layout.height_px / DPI), dpi=DPI,
                    facecolor='white')
    return figure, FigureCanvasAgg(figure)


def _axes_px(figure: Any, layout: MapLayout, left: float, top: float, width: float,
             height: float) -> Any:
    """Axes placed in picture pixels (top-left origin), limits = pixels."""
    axes = figure.add_axes((left / layout.width_px, 1 - (top + height) / layout.height_px,
                            width / layout.width_px, height / layout.height_px))
    axes.set_axis_off()
    return axes


def _draw_floor_plan(axes: Any, description: StoreDescription, store_map: StoreMap,
                     layout: MapLayout) -> dict[str, np.ndarray]:
    from matplotlib.patches import Polygon, Rectangle
    import matplotlib.patheffects as effects
    width_m, depth_m = description.size_m
    axes.add_patch(Rectangle((0, 0), width_m, depth_m, facecolor=FLOOR_COLOUR,
                             edgecolor='#303030', linewidth=3.0, zorder=0))
    for gate in description.gates:
        colour = GATE_COLOURS.get(gate.kind, '#808080')
        axes.add_patch(Rectangle(gate.min_m, gate.max_m[0] - gate.min_m[0],
                                 gate.max_m[1] - gate.min_m[1], facecolor=colour, alpha=GATE_ALPHA,
                                 edgecolor=colour, linewidth=1.2, zorder=1))
        axes.text((gate.min_m[0] + gate.max_m[0]) / 2, gate.min_m[1] + 0.04, gate.kind,
                  ha='center', va='bottom', fontsize=8, color=colour, weight='bold', zorder=7,
                  path_effects=[effects.withStroke(linewidth=2.2, foreground='white')])
    cells: dict[str, np.ndarray] = {}
    for shelf in description.shelves:
        length, depth, _ = shelf.size_m
        footprint = shelf.t_map_shelf.apply(np.array(
            [[-length / 2, 0, 0], [length / 2, 0, 0], [length / 2, depth, 0],
             [-length / 2, depth, 0]]))[:, :2]
        axes.add_patch(Polygon(footprint, closed=True, facecolor=SHELF_COLOUR,
                               edgecolor=SHELF_EDGE_COLOUR,
                               linewidth=1.2, zorder=2))
        shelf_cells = _bin_cells(shelf)
        cells.update(shelf_cells)
        for shelf_bin in shelf.bins:
            cell = shelf_cells[shelf_bin.bin_id]
            axes.add_patch(Polygon(cell, closed=True, fill=False, edgecolor='#9c8a68',
                                   linewidth=0.6, zorder=2))
            corner = cell.min(axis=0)
            axes.text(corner[0] + 0.03, cell[:, 1].mean(), _short_bin(shelf_bin), fontsize=6,
                      ha='left', va='center', color='#5a4a2c', zorder=2)
    for camera in description.cameras:
        x_m, y_m = camera.t_map_depth.translation[:2]
        axes.plot([x_m], [y_m], marker='^', markersize=5, color='#b0b0b0', zorder=1)
        axes.text(x_m + 0.06, y_m - 0.06, camera.camera_id.replace('cam_', 'c'), fontsize=5.5,
                  color='#a0a0a0', zorder=1, va='top')
    return cells


def track_labels(track_ids: Sequence[int]) -> dict[int, str]:
    """Short track labels: the digits in which the ids differ (ids often share a long stem)."""
    ids = sorted(set(track_ids))
    power = 10
    while ids and ids[0] // power != ids[-1] // power and power < 10 ** 19:
        power *= 10
    return {i: f't{i % power}' for i in ids}


def _draw_paths(axes: Any, store_map: StoreMap) -> None:
    import matplotlib.patheffects as effects
    halo = [effects.withStroke(linewidth=2.2, foreground='white')]
    for path in store_map.truth_paths:
        xy = np.array([(x, y) for _, x, y in path.points])
        axes.plot(xy[:, 0], xy[:, 1], color=TRUTH_PATH_COLOUR, linewidth=1.0, zorder=3,
                  solid_capstyle='round')
        # Labelled half way: everyone starts at the entry.
        middle = xy[len(xy) // 2]
        axes.text(middle[0], middle[1] + 0.06, f'p{path.person_id}', fontsize=7.5,
                  weight='bold', color=store_map.person_colour(path.person_id), ha='center',
                  va='bottom', zorder=7, path_effects=halo)
    labels = track_labels([t.track_id for t in store_map.track_paths])
    # False tracks first, thin and dotted, so that the people's tracks stay on top.
    for track in sorted(store_map.track_paths, key=lambda t: not t.false):
        xy = np.array([(x, y) for _, x, y in track.points])
        colour = store_map.track_colour(track)
        if track.false:
            axes.plot(xy[:, 0], xy[:, 1], color=colour, linewidth=0.9, linestyle=(0, (1, 1.6)),
                      alpha=0.85, zorder=4)
            continue
        axes.plot(xy[:, 0], xy[:, 1], color=colour, linewidth=1.8, zorder=5, alpha=0.9,
                  solid_capstyle='round', solid_joinstyle='round')
        axes.text(xy[-1, 0] + 0.05, xy[-1, 1] - 0.05, labels[track.track_id], fontsize=6,
                  color=colour, ha='left', va='top', zorder=7, path_effects=halo)
        for switch in track.switches:
            axes.plot([switch.x_m], [switch.y_m], marker='X', markersize=8,
                      markerfacecolor=store_map.person_colour(switch.to_person),
                      markeredgecolor='black', markeredgewidth=0.8, zorder=8)


def _draw_events(axes: Any, store_map: StoreMap, cells: Mapping[str, np.ndarray]) -> int:
    """Draw shelf-event marks in their bins; return how many had no bin on the map."""
    by_bin: dict[str, list[ShelfEventMark]] = {}
    off_map = 0
    for mark in store_map.shelf_events:
        if mark.bin_id in cells:
            by_bin.setdefault(mark.bin_id, []).append(mark)
        else:
            off_map += 1
    for bin_id, marks in by_bin.items():
        for mark, (x_m, y_m) in zip(marks, _event_positions(cells[bin_id], len(marks), 0.34),
                                    strict=True):
            if mark.outcome == 'hit':
                axes.plot([x_m], [y_m], marker='o', markersize=6, zorder=9,
                          markerfacecolor=HIT_COLOUR if mark.right_kind else '#fdb863',
                          markeredgecolor='white', markeredgewidth=0.6)
            elif mark.outcome == 'miss':
                axes.plot([x_m], [y_m], marker='o', markersize=6, zorder=9,
                          markerfacecolor='white', markeredgecolor=MISS_COLOUR,
                          markeredgewidth=1.6)
            else:
                axes.plot([x_m], [y_m], marker='x', markersize=6, zorder=9,
                          color=FALSE_EVENT_COLOUR, markeredgewidth=1.8)
    return off_map


def _draw_side(figure: Any, layout: MapLayout, store_map: StoreMap, off_map: int) -> None:
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch
    axes = _axes_px(figure, layout, layout.map_width_px, layout.title_px, layout.side_px,
                    layout.map_height_px)
    axes.set_xlim(0, layout.side_px)
    axes.set_ylim(layout.map_height_px, 0)
    summary = list(store_map.summary)
    if off_map:
        summary.append(f'{off_map} shelf event(s) at bins not in the store description')
    chars = int((layout.side_px - 16) / (0.602 * SUMMARY_FONT_PT * DPI / 72.0))
    text = '\n'.join(line for entry in summary
                     for line in textwrap.wrap(entry, chars, subsequent_indent='  '))
    axes.text(8, 8, text, fontsize=SUMMARY_FONT_PT, va='top', ha='left', family='monospace',
              linespacing=1.45)
    handles = [
        Line2D([], [], color=TRUTH_PATH_COLOUR, linewidth=1.0, label='true path (p<id>)'),
        Line2D([], [], color=PERSON_COLOURS[0], linewidth=1.8,
               label="track (t<last digits of id>), in its person's colour"),
        Line2D([], [], color=FALSE_TRACK_COLOUR, linewidth=0.9, linestyle=(0, (1, 1.6)),
               alpha=0.85,
               label=f'false track (matched < {FALSE_TRACK_MATCHED_SHARE:.0%} of its frames)'),
        Line2D([], [], linestyle='', marker='X', markersize=8, markerfacecolor=PERSON_COLOURS[1],
               markeredgecolor='black',
               label=f'track went over to another person (>= {SWITCH_MIN_RUN_S:g} s)'),
        Line2D([], [], linestyle='', marker='o', markersize=6, markerfacecolor=HIT_COLOUR,
               markeredgecolor='white', label='shelf event detected (hit)'),
        Line2D([], [], linestyle='', marker='o', markersize=6, markerfacecolor='#fdb863',
               markeredgecolor='white', label='hit, but pick/return mistaken'),
        Line2D([], [], linestyle='', marker='o', markersize=6, markerfacecolor='white',
               markeredgecolor=MISS_COLOUR, markeredgewidth=1.6, label='true event missed'),
        Line2D([], [], linestyle='', marker='x', markersize=6, color=FALSE_EVENT_COLOUR,
               markeredgewidth=1.8, label='false shelf event'),
        Patch(facecolor=SHELF_COLOUR, edgecolor=SHELF_EDGE_COLOUR,
              label='shelf; bins s<shelf>b<bin>, lower level at front'),
    ] + [Patch(facecolor=colour, alpha=0.3, edgecolor=colour, label=f'{kind} gate')
         for kind, colour in GATE_COLOURS.items()]
    axes.legend(handles=handles, loc='lower left', bbox_to_anchor=(0.0, 0.0), fontsize=7.5,
                frameon=False, handlelength=2.4, borderaxespad=0.3)


def _draw_table(figure: Any, layout: MapLayout, store_map: StoreMap) -> None:
    from matplotlib.patches import Rectangle
    height = layout.height_px - layout.table_top_px
    axes = _axes_px(figure, layout, 0, layout.table_top_px, layout.width_px, height)
    axes.set_xlim(0, layout.width_px)
    axes.set_ylim(height, 0)
    columns = [*TABLE_COLUMNS, ('result', layout.width_px - sum(w for _, w in TABLE_COLUMNS))]
    lefts = np.cumsum([8] + [w for _, w in columns[:-1]])
    for (heading, _), left in zip(columns, lefts, strict=True):
        axes.text(left, layout.table_header_px - 6, heading, fontsize=8.5, weight='bold',
                  va='bottom', ha='left')
    axes.plot([0, layout.width_px], [layout.table_header_px - 2] * 2, color='#606060',
              linewidth=0.8)
    top = float(layout.table_header_px)
    for index, (row, row_px) in enumerate(zip(store_map.receipts, layout.table_row_px,
                                              strict=True)):
        if index % 2:
            axes.add_patch(Rectangle((0, top), layout.width_px, row_px,
                                     facecolor=ROW_STRIPE_COLOUR, edgecolor='none', zorder=0))
        swatch = store_map.person_colour(row.person_ids[0]) if row.person_ids else '#ffffff'
        axes.add_patch(Rectangle((lefts[0], top + 4), 10, 10, facecolor=swatch,
                                 edgecolor='#404040', linewidth=0.5))
        for column, (cell, left) in enumerate(zip(_row_cells(row, layout.width_px), lefts,
                                                  strict=True)):
            for line_index, (text, colour) in enumerate(cell):
                if column == 2 and not colour:
                    colour = store_map.person_colour(int(text[1:]))
                axes.text(left, top + 3 + line_index * TABLE_LINE_PX, text,
                          fontsize=TABLE_FONT_PT, family='monospace', va='top', ha='left',
                          color=colour or '#202020',
                          weight='bold' if column == len(columns) - 1 and line_index == 0
                          else 'normal')
        top += row_px
    if not store_map.receipts:
        axes.text(lefts[0], top + 3, 'no shopping account in the truth and no receipt',
                  fontsize=TABLE_FONT_PT, va='top', color='#707070')


def _exact_colours() -> list[tuple[int, int, int]]:
    """Return the flat colours the map is drawn in (gates as blended over the floor)."""
    def rgb(colour: str) -> np.ndarray:
        return np.array([int(colour[i:i + 2], 16) for i in (1, 3, 5)], dtype=float)

    flat = [*PERSON_COLOURS, FALSE_TRACK_COLOUR, TRUTH_PATH_COLOUR, HIT_COLOUR, MISS_COLOUR,
            FALSE_EVENT_COLOUR, *STATUS_COLOURS.values(), *GATE_COLOURS.values(), FLOOR_COLOUR,
            SHELF_COLOUR, SHELF_EDGE_COLOUR, ROW_STRIPE_COLOUR, '#ffffff', '#202020',
            '#707070']
    colours = [rgb(c) for c in flat]
    colours += [GATE_ALPHA * rgb(c) + (1 - GATE_ALPHA) * rgb(FLOOR_COLOUR)
                for c in GATE_COLOURS.values()]
    return sorted({tuple(int(round(v)) for v in c) for c in colours})  # type: ignore[misc]


def _palette_image(rgb: np.ndarray) -> Any:
    """Reduce the picture to 256 colours: the flat colours exactly, the rest adaptive.

    A quarter of the bytes of RGB; only antialiased edges and text move (the adaptive
    part is maximum coverage, no dithering).
    """
    from PIL import Image  # matplotlib's own dependency

    picture = Image.fromarray(np.ascontiguousarray(rgb))
    exact = _exact_colours()
    adaptive = picture.quantize(256 - len(exact), method=Image.Quantize.MAXCOVERAGE,
                                dither=Image.Dither.NONE)
    palette = np.array(exact + [tuple(c) for c in np.asarray(
        adaptive.getpalette() or [], dtype=int).reshape(-1, 3)[:256 - len(exact)]], dtype=int)
    # Every distinct colour of the picture to its nearest palette entry.
    packed = (rgb[:, :, 0].astype(np.int64) << 16) | (rgb[:, :, 1].astype(np.int64) << 8) \
        | rgb[:, :, 2]
    colours, inverse = np.unique(packed.ravel(), return_inverse=True)
    components = np.stack([colours >> 16, (colours >> 8) & 255, colours & 255], axis=1)
    nearest = np.empty(len(colours), dtype=np.uint8)
    for start in range(0, len(colours), 4096):
        chunk = components[start:start + 4096]
        distance = ((chunk[:, None, :] - palette[None, :, :]) ** 2).sum(axis=2)
        nearest[start:start + 4096] = distance.argmin(axis=1)
    indexed = Image.frombytes('P', (rgb.shape[1], rgb.shape[0]),
                              np.ascontiguousarray(nearest[inverse]).tobytes())
    flat = palette.astype(np.uint8).ravel().tolist()
    indexed.putpalette(flat + [0] * (768 - len(flat)))
    return indexed


def render_store_map(store_map: StoreMap, description: StoreDescription,
                     layout: MapLayout | None = None) -> bytes:
    """Draw the store map as PNG bytes (``layout_for`` unless a layout is given)."""
    layout = layout or layout_for(store_map, description)
    figure, canvas = _figure(layout)
    axes = _axes_px(figure, layout, 0, layout.title_px, layout.map_width_px,
                    layout.map_height_px)
    width_m, depth_m = layout.store_size_m
    axes.set_xlim(-layout.margin_m, width_m + layout.margin_m)
    axes.set_ylim(-layout.margin_m, depth_m + layout.margin_m)
    cells = _draw_floor_plan(axes, description, store_map, layout)
    _draw_paths(axes, store_map)
    off_map = _draw_events(axes, store_map, cells)
    figure.text(8 / layout.width_px, 1 - 8 / layout.height_px,
                f'{store_map.scenario} (seed {store_map.seed}, {store_map.duration_s:.0f} s): '
                f'tracks over true paths, shelf events, receipts', fontsize=12, weight='bold',
                va='top', ha='left')
    _draw_side(figure, layout, store_map, off_map)
    _draw_table(figure, layout, store_map)
    canvas.draw()
    picture = _palette_image(np.asarray(canvas.buffer_rgba())[:, :, :3])
    buffer = io.BytesIO()
    picture.save(buffer, format='PNG', optimize=True)
    return buffer.getvalue()

