"""Measure product ID on a simulated bag: shelf events from truth, observations scored.

Weight fusion (which publishes shelf events) is built separately, so this harness makes
the shelf events from the truth's picks and returns (bin, start, end, kind) and feeds
them, with every colour frame of the bag in log-time order, to the same core the
product_id node runs (``go_store_nodes.core.product_id``). Each event is handed over
``--settle-s`` after its end, as weight fusion would publish it. The SKU of each
observation (and of each event, cameras fused by summed likelihoods) is scored against
the truth: class accuracy, SKU accuracy, and SKU accuracy on the events whose SKU has a
same-weight sibling in the catalog (|weight difference| <= the two tolerances), where
the load cells cannot decide.

With ``--skeletons`` (the output bag of a replay of the same sensor bag: pose's
/people/skeletons, perception output, never truth) the identifier also follows the hand
that was in the bin and classifies crops round it; the figures are then given for bin
crops only, hand crops only and both fused (hand likelihoods times ``--hand-weight``).

  PYTHONPATH=$PWD python tools/measure_product_id.py --bag B --truth T --refs DIR \
      [--skeletons REPLAY_OUTPUT_BAG]
"""

from __future__ import annotations

import argparse
from collections import defaultdict
import pathlib
import sys

import numpy as np
import yaml

from go_store_nodes.bagio.reader import messages
from go_store_nodes.bagio.topics import camera_topics
from go_store_nodes.core.locator.frames import decode_color, FrameRejectedError
from go_store_nodes.core.product_id import (
    load_reference_folder,
    ProductClassifier,
    ProductIdConfig,
    ProductIdentifier,
    ShelfEventData,
    skeleton_data,
    SkeletonRejectedError,
)
from go_store_nodes.core.sim.truth import Truth
from go_store_nodes.core.store import Intrinsics, load_store_description
from go_store_nodes.core.transforms import Transform


def same_weight_family(catalog, sku: str) -> set[str]:
    """Return the SKU and every SKU the load cells cannot tell from it."""
    a = catalog[sku]
    return {b.sku for b in catalog.values()
            if abs(a.unit_weight_g - b.unit_weight_g)
            <= a.weight_tolerance_g + b.weight_tolerance_g}


def same_weight_skus(catalog) -> set[str]:
    """Return the SKUs with another SKU of a weight the load cells cannot tell apart."""
    return {sku for sku in catalog if len(same_weight_family(catalog, sku)) > 1}


def read_skeletons(path: str) -> list[tuple[int, list]]:
    """Skeleton frames (stamp ns, [SkeletonData]) of a replay output bag, by stamp."""
    frames = []
    for _, _, msg in messages(path, ['/people/skeletons']):
        stamp_ns = int(msg.header.stamp.sec) * 10**9 + int(msg.header.stamp.nanosec)
        frames.append((stamp_ns, [skeleton_data(
            int(s.track_id), {int(k.joint): (k.position.x, k.position.y, k.position.z,
                                             k.confidence) for k in s.keypoints},
            s.left_hand_bin_id, s.right_hand_bin_id) for s in msg.skeletons]))
    return sorted(frames, key=lambda frame: frame[0])


def score(events, observations, truth_of, store, hard, bins, hand_weight: float) -> None:
    """Print per-observation and per-event accuracy of a set of observations."""
    by_event = defaultdict(list)
    for o in observations:
        by_event[o.event_id].append(o)
    obs_class = [store.catalog[truth_of[o.event_id].sku].category == o.classification.category
                 for o in observations]
    obs_sku = [truth_of[o.event_id].sku == o.classification.best_sku for o in observations]
    event_right, event_class, hard_right, planogram_right = [], [], [], []
    family_right: list[bool] = []
    for e in events:
        found = by_event.get(e.event_id, [])
        summed: dict[str, float] = defaultdict(float)
        for o in found:
            for sku, likelihood in o.classification.skus:
                summed[sku] += likelihood * (hand_weight if o.hand else 1.0)
        best = max(summed, key=summed.get) if summed else ''
        event_right.append(best == e.sku)
        event_class.append(bool(best) and store.catalog[best].category
                           == store.catalog[e.sku].category)
        if e.sku in hard:
            hard_right.append(best == e.sku)
        family = same_weight_family(store.catalog, e.sku)
        if len(family) > 1:
            among = {s: v for s, v in summed.items() if s in family}
            family_right.append(bool(among) and max(among, key=among.get) == e.sku)
        stocked = {s: v for s, v in summed.items() if s in bins[e.bin_id].skus}
        planogram_right.append(bool(stocked) and max(stocked, key=stocked.get) == e.sku)
        print(f'{e.event_id} {e.kind:6s} {e.bin_id:16s} {e.sku:32s} -> {best or "-":32s} '
              f'({len(found)} obs)')

    def share(values):
        return f'{np.mean(values):.3f} ({sum(values)}/{len(values)})' if values else 'n/a'
    print(f'events (picks and returns): {len(events)}, observations: {len(observations)}, '
          f'events with an observation: {len(by_event)}')
    print(f'per observation: class accuracy {share(obs_class)}, SKU accuracy {share(obs_sku)}')
    print(f'per event (cameras fused; no observation = wrong): class accuracy '
          f'{share(event_class)}, SKU accuracy {share(event_right)}')
    print(f'per event, SKUs with a same-weight sibling: SKU accuracy {share(hard_right)}')
    print(f"per event, best among the bin's stocked SKUs: {share(planogram_right)}")
    sizes = [len(same_weight_family(store.catalog, e.sku)) for e in events]
    chance = [1.0 / size for size in sizes if size > 1]
    print(f'chance of a guess among the same-weight SKUs: {np.mean(chance):.3f}' if chance
          else 'no event with a same-weight sibling')
    print(f'per event with a same-weight sibling, best of its same-weight SKUs (what '
          f'weight fusion leaves to vision): {share(family_right)}')


def main(argv: list[str] | None = None) -> int:
    """Run the measurement and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--bag', required=True)
    parser.add_argument('--truth', required=True)
    parser.add_argument('--store', default='config/store.yaml')
    parser.add_argument('--refs', default='', help="reference folder (default: the store's)")
    parser.add_argument('--settle-s', type=float, default=0.7)
    parser.add_argument('--dump', default='', help='write each observation crop here (PNG)')
    parser.add_argument('--params', default='config/go_store.yaml',
                        help='settings: the product_id section of this params file')
    parser.add_argument('--set', action='append', default=[], metavar='NAME=VALUE',
                        help='override one setting (repeatable)')
    parser.add_argument('--skeletons', default='',
                        help='replay output bag with /people/skeletons (hand crops)')
    parser.add_argument('--hand-weight', type=float, default=1.0,
                        help='weight of hand observations when fused with bin ones')
    args = parser.parse_args(argv)
    store = load_store_description(args.store)
    refs = args.refs or store.product_images
    images, problems = load_reference_folder(refs, store.catalog)
    for problem in problems:
        print(f'reference problem ({problem.reason}): {problem.message}', file=sys.stderr)
    section = yaml.safe_load(pathlib.Path(args.params).read_text())['product_id']
    values = {info.name: section['ros__parameters'][info.name]
              for info in ProductIdConfig.fields()}
    for item in args.set:
        name, _, value = item.partition('=')
        values[name] = type(values[name])(yaml.safe_load(value))
    config = ProductIdConfig(**values)
    print(f'settings: {values}')
    classifier = ProductClassifier(images, {s: p.category for s, p in store.catalog.items()},
                                   config)
    identifier = ProductIdentifier(store, classifier, config)
    truth = Truth.load(args.truth)
    events = sorted((e for e in truth.events if e.kind in ('pick', 'return') and e.bin_id),
                    key=lambda e: e.end_ns)
    settle_ns = int(args.settle_s * 1e9)
    truth_of = {e.event_id: e for e in events}
    topics = {camera_topics(c.camera_id).color_image: c for c in store.cameras}
    infos = {camera_topics(c.camera_id).color_info: c for c in store.cameras}
    intrinsics: dict[str, Intrinsics] = {}
    skeleton_frames = read_skeletons(args.skeletons) if args.skeletons else []
    next_skeletons = 0
    observations = []
    next_event = 0
    for topic, log_ns, msg in messages(args.bag, list(topics) + list(infos)):
        while next_skeletons < len(skeleton_frames) and \
                skeleton_frames[next_skeletons][0] <= log_ns:
            stamp_ns, skeletons = skeleton_frames[next_skeletons]
            try:
                identifier.add_skeletons(stamp_ns, skeletons, Transform.identity(), log_ns)
            except SkeletonRejectedError:
                pass
            next_skeletons += 1
        while next_event < len(events) and events[next_event].end_ns + settle_ns <= log_ns:
            e = events[next_event]
            identifier.add_event(ShelfEventData(e.event_id, e.bin_id, e.kind, e.start_ns,
                                                e.end_ns))
            next_event += 1
        if topic in infos:
            camera = infos[topic]
            k = [float(v) for v in msg.k]
            intrinsics[camera.camera_id] = Intrinsics(
                int(msg.width), int(msg.height), k[0], k[4], k[2], k[5],
                str(msg.distortion_model), tuple(float(v) for v in msg.d))
            continue
        camera = topics[topic]
        stamp_ns = int(msg.header.stamp.sec) * 10**9 + int(msg.header.stamp.nanosec)
        try:
            rgb = decode_color(msg.encoding, int(msg.height), int(msg.width), int(msg.step),
                               np.asarray(msg.data))
            identifier.add_frame(camera.camera_id, stamp_ns, rgb,
                                 intrinsics.get(camera.camera_id), camera.t_map_color)
        except FrameRejectedError:
            pass
        observations += identifier.poll(log_ns)
    for e in events[next_event:]:
        identifier.add_event(ShelfEventData(e.event_id, e.bin_id, e.kind, e.start_ns,
                                            e.end_ns))
    observations += identifier.flush()

    if args.dump:
        import cv2
        out = pathlib.Path(args.dump)
        out.mkdir(parents=True, exist_ok=True)
        for o in observations:
            shown = np.hstack([o.crop, o.other, np.repeat(o.mask[:, :, None] * 255, 3, 2)])
            kind = f'hand_{o.track_id}_{o.hand}' if o.hand else 'bin'
            name = f'{o.event_id}_{o.camera_id}_{kind}_{truth_of[o.event_id].sku}_' \
                f'{o.classification.best_sku}.png'
            cv2.imwrite(str(out / name), cv2.resize(shown[:, :, ::-1].astype(np.uint8), None,
                                                   fx=3, fy=3,
                                                   interpolation=cv2.INTER_NEAREST))
    hard = same_weight_skus(store.catalog)
    bins = store.bins()
    kinds = [('bin crops only', lambda o: not o.hand, 1.0)]
    if args.skeletons:
        kinds += [('hand crops only', lambda o: o.hand in ('left', 'right'), 1.0),
                  ('carried crops only', lambda o: o.hand == 'carried', 1.0),
                  ('bin and carried crops', lambda o: o.hand in ('', 'carried'), 1.0),
                  ('both fused', lambda o: True, args.hand_weight)]
    for title, chosen, hand_weight in kinds:
        print(f'== {title}')
        score(events, [o for o in observations if chosen(o)], truth_of, store, hard, bins,
              hand_weight)
    print(f'counters: {dict(sorted(identifier.counters.items()))}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
