"""Product ID core: features, references, the two-stage classifier, crops at shelf events.

Crops are rendered by the simulator: references by `go-store catalog-images`'s booth
(seed 0), queries from other draws of the booth (seed 1: other rolls, light, placement,
noise) and from the reference store's own cameras at a pick.
"""

import numpy as np
import pytest

from go_store_nodes.catalog_images_command import render_product_views
from go_store_nodes.core.locator import FrameRejectedError
from go_store_nodes.core.product_id import (
    bin_window,
    changed_mask,
    EventRejectedError,
    item_feature,
    load_reference_folder,
    ProductClassifier,
    ProductIdConfig,
    ProductIdentifier,
    sees_bin_front,
    ShelfEventData,
    visible_share,
    write_reference_image,
)
from go_store_nodes.core.product_id.features import CHROMA_BINS, LAYOUT_BINS
from go_store_nodes.core.sim.render import Renderer
from go_store_nodes.core.sim.render_scene import bin_slot_count

T0 = 1_700_000_000 * 10**9
# Flavour families that share the pack colour and differ by the flavour cue only.
SAME_COLOUR = ('crispo_salted_150g', 'crispo_paprika_150g', 'crispo_sour_150g',
               'crispo_salt_150g', 'nordic_yogurt_strawberry_150g',
               'nordic_yogurt_blueberry_150g', 'nordic_yogurt_vanilla_150g',
               'nordic_yogurt_plain_150g')


def test_config_refuses_values_out_of_range_and_of_the_wrong_kind():
    ProductIdConfig()
    with pytest.raises(ValueError, match='ring_frames'):
        ProductIdConfig(ring_frames=1)
    with pytest.raises(ValueError, match='integer'):
        ProductIdConfig(neighbours=2.5)
    with pytest.raises(ValueError, match='temperature'):
        ProductIdConfig(temperature=float('nan'))


def test_feature_ignores_brightness_but_not_colour():
    rng = np.random.default_rng(1)
    yellow = np.zeros((20, 20, 3), np.uint8)
    yellow[:] = (200, 160, 20)
    yellow[8:12] = (200, 40, 30)                           # a red band
    yellow = np.clip(yellow + rng.normal(0, 2, yellow.shape), 0, 255).astype(np.uint8)
    mask = np.ones((20, 20), bool)
    dimmer = (yellow * 0.8).astype(np.uint8)
    white_band = yellow.copy()
    white_band[8:12] = (235, 235, 235)
    base = item_feature(yellow, mask)
    colour_part = slice(0, CHROMA_BINS ** 2 + 2 * LAYOUT_BINS ** 2)
    # Chromaticity and layout do not see the light; only the coarse brightness part does.
    assert np.linalg.norm((item_feature(dimmer, mask) - base)[colour_part]) < 0.05
    dimming = np.linalg.norm(item_feature(dimmer, mask) - base)
    recolouring = np.linalg.norm(item_feature(white_band, mask) - base)
    assert recolouring > 0.3 and dimming < 0.5 * recolouring
    with pytest.raises(ValueError, match='no pixel'):
        item_feature(yellow, np.zeros((20, 20), bool))


def test_reference_folder_leaves_out_unknown_skus_and_names_missing_ones(tmp_path):
    crop = np.full((10, 8, 3), 120, np.uint8)
    mask = np.ones((10, 8), bool)
    write_reference_image(tmp_path / 'crispo_salted_150g' / 'a.png', crop, mask)
    write_reference_image(tmp_path / 'not_a_product' / 'a.png', crop, mask)
    write_reference_image(tmp_path / 'crispo_paprika_150g' / 'empty.png', crop,
                          np.zeros((10, 8), bool))
    (tmp_path / 'crispo_paprika_150g' / 'broken.png').write_bytes(b'not a png')
    images, problems = load_reference_folder(
        tmp_path, ['crispo_salted_150g', 'crispo_paprika_150g'])
    assert [i.sku for i in images] == ['crispo_salted_150g']
    assert images[0].rgb.shape == (10, 8, 3) and images[0].mask.all()
    reasons = sorted(p.reason for p in problems)
    assert reasons == ['empty_mask', 'no_references', 'unknown_sku', 'unreadable_image']
    assert any('crispo_paprika_150g' in p.message for p in problems if p.reason ==
               'no_references')
    with pytest.raises(FileNotFoundError):
        load_reference_folder(tmp_path / 'nowhere', [])


def test_classifier_needs_references_with_categories(references):
    with pytest.raises(ValueError, match='no reference'):
        ProductClassifier([], {}, ProductIdConfig())
    with pytest.raises(ValueError, match='without a category'):
        ProductClassifier(references[:1], {}, ProductIdConfig())


def test_same_colour_flavours_are_told_apart_by_their_cue(store, classifier):
    """Booth crops of other draws (roll, light, placement, noise) than the references."""
    right_sku, right_class, total = 0, 0, 0
    for sku in SAME_COLOUR:
        for crop, mask in render_product_views(store, sku, seed=1, every=2):
            result = classifier.classify(crop, mask)
            total += 1
            right_sku += result.best_sku == sku
            right_class += result.category == store.catalog[sku].category
            likelihoods = [p for _, p in result.skus]
            assert likelihoods == sorted(likelihoods, reverse=True)
            assert sum(likelihoods) <= 1.0 + 1e-6
    print(f'same-colour flavours: SKU {right_sku}/{total}, class {right_class}/{total}')
    assert right_class / total >= 0.95
    assert right_sku / total >= 0.85


def _pick_scene(store, bin_id, sku, seed=3):
    """Frames of every camera in front of a bin: full bin, then one unit of sku taken."""
    bin_ = store.bins()[bin_id]
    shelf = store.shelf(bin_.shelf_id)
    renderer = Renderer(store, image_scale=1.0, seed=seed)
    full = {k: bin_slot_count(bin_.min_m, bin_.max_m, len(bin_.skus),
                              store.catalog[k].appearance) for k in bin_.skus}
    taken = dict(full, **{sku: full[sku] - 1})
    others = [s for s in store.shelves if s is not shelf]
    cameras = [c for c in store.cameras
               if sees_bin_front(bin_, shelf.t_map_shelf, c.t_map_color)
               and bin_window(bin_, shelf.t_map_shelf, c.t_map_color,
                              renderer.intrinsics(c.camera_id)[1], 0.03, 4) is not None
               and visible_share(bin_, shelf, c.t_map_color, c.model.color, others) >= 0.3]
    ids = [c.camera_id for c in cameras]
    before = renderer.render_frames(ids, [], T0, stock={bin_id: full})
    after = renderer.render_frames(ids, [], T0 + 2 * 10**9, stock={bin_id: taken})
    return cameras, renderer, [b[1] for b in before], [a[1] for a in after]


def test_a_pick_is_classified_from_the_changed_pixels_of_each_camera(store, classifier):
    bin_id, sku = 'shelf_01_bin_1', 'crispo_paprika_150g'
    cameras, renderer, before, after = _pick_scene(store, bin_id, sku)
    assert cameras
    identifier = ProductIdentifier(store, classifier, ProductIdConfig(frame_candidates=1))
    for camera, image in zip(cameras, before, strict=True):
        identifier.add_frame(camera.camera_id, T0, image,
                             renderer.intrinsics(camera.camera_id)[1], camera.t_map_color)
    identifier.add_event(ShelfEventData('ev1', bin_id, 'pick', T0 + 5 * 10**8, T0 + 15 * 10**8))
    assert identifier.poll(T0 + 16 * 10**8) == []                 # waits for after frames
    for camera, image in zip(cameras, after, strict=True):
        identifier.add_frame(camera.camera_id, T0 + 2 * 10**9, image,
                             renderer.intrinsics(camera.camera_id)[1], camera.t_map_color)
    observations = identifier.poll(T0 + 2 * 10**9)
    assert {o.camera_id for o in observations} == {c.camera_id for c in cameras}
    for observation in observations:
        assert observation.observation_id == f'ev1/{observation.camera_id}'
        assert observation.stamp_ns == T0                         # the before frame
        assert observation.classification.category == 'chips'
        assert observation.classification.best_sku == sku, observation
    assert identifier.pending_events == 0


def test_a_camera_missing_from_tf_and_an_unknown_bin_are_dropped_and_counted(
        store, classifier):
    bin_id, sku = 'shelf_01_bin_1', 'crispo_paprika_150g'
    cameras, renderer, before, after = _pick_scene(store, bin_id, sku)
    identifier = ProductIdentifier(store, classifier, ProductIdConfig(frame_candidates=1))
    lost = cameras[0]
    with pytest.raises(FrameRejectedError) as error:
        identifier.add_frame(lost.camera_id, T0, before[0],
                             renderer.intrinsics(lost.camera_id)[1], None)
    assert error.value.reason == 'no_transform'
    assert identifier.counters['dropped_frame_no_transform'] == 1
    with pytest.raises(FrameRejectedError) as error:
        identifier.add_frame(lost.camera_id, T0, before[0][:10],
                             renderer.intrinsics(lost.camera_id)[1], lost.t_map_color)
    assert error.value.reason == 'wrong_size'
    # The others still see the pick.
    for camera, b, a in zip(cameras[1:], before[1:], after[1:], strict=True):
        k = renderer.intrinsics(camera.camera_id)[1]
        identifier.add_frame(camera.camera_id, T0, b, k, camera.t_map_color)
        identifier.add_frame(camera.camera_id, T0 + 2 * 10**9, a, k, camera.t_map_color)
    with pytest.raises(EventRejectedError) as rejected:
        identifier.add_event(ShelfEventData('ev0', 'no_such_bin', 'pick', T0, T0 + 1))
    assert rejected.value.reason == 'unknown_bin'
    assert identifier.counters['dropped_event_unknown_bin'] == 1
    identifier.add_event(ShelfEventData('ev1', bin_id, 'pick', T0 + 5 * 10**8, T0 + 15 * 10**8))
    observations = identifier.poll(T0 + 2 * 10**9)
    assert lost.camera_id not in {o.camera_id for o in observations}
    assert len(observations) == len(cameras) - 1


def test_a_sku_missing_from_the_references_is_never_answered(store, references):
    """Without references of paprika chips the classifier cannot name them.

    Some other SKU comes out (its class need not be chips: another yellow pack with a red
    print is as near); the answer stays a well-formed distribution.
    """
    without = [r for r in references if r.sku != 'crispo_paprika_150g']
    classifier = ProductClassifier(without, {s: p.category for s, p in store.catalog.items()},
                                   ProductIdConfig())
    assert classifier.reference_count('crispo_paprika_150g') == 0
    for crop, mask in render_product_views(store, 'crispo_paprika_150g', seed=1, every=5):
        result = classifier.classify(crop, mask)
        assert 'crispo_paprika_150g' not in dict(result.skus)
        assert result.skus and sum(p for _, p in result.skus) <= 1.0 + 1e-6
        assert 0.0 < result.category_probability <= 1.0


def test_changed_mask_drops_specks_and_needs_equal_shapes():
    before = np.full((30, 30, 3), 100, np.uint8)
    after = before.copy()
    after[5:12, 5:12] = 200
    after[20, 20] = 200                       # one noisy pixel
    mask = changed_mask(before, after, 18.0)
    assert mask.sum() == 49 and not mask[20, 20]
    with pytest.raises(ValueError):
        changed_mask(before, after[:10], 18.0)


def test_visible_share_needs_a_view_through_the_bin_opening_past_other_shelves():
    from go_store_nodes.core.store import Bin, Intrinsics, Shelf
    from go_store_nodes.core.transforms import Transform

    k = Intrinsics(424, 240, 300.0, 300.0, 211.5, 119.5, 'plumb_bob', (0.0,) * 5)
    bin_ = Bin('b', 's', 'lc', (-0.5, 0.02, 0.9), (0.5, 0.48, 1.3), ('x',))
    shelf = Shelf('s', Transform.identity(), (1.2, 0.5, 1.9), (bin_,))

    def camera_at(position, target=(0.0, 0.05, 1.1)):
        z = np.asarray(target, float) - position
        z /= np.linalg.norm(z)
        x = np.cross(z, [0.0, 0.0, 1.0]) if abs(z[2]) < 0.999 else np.array([1.0, 0, 0])
        x /= np.linalg.norm(x)
        return Transform(np.column_stack([x, np.cross(z, x), z]), np.asarray(position, float))

    in_front = camera_at(np.array([0.0, -2.0, 2.5]))
    assert sees_bin_front(bin_, shelf.t_map_shelf, in_front)
    assert visible_share(bin_, shelf, in_front, k, []) > 0.8
    overhead = camera_at(np.array([0.0, -0.05, 3.5]))          # over the front edge
    assert visible_share(bin_, shelf, overhead, k, []) < 0.1
    wall = Shelf('w', Transform(np.eye(3), np.array([0.0, -1.0, 0.0])), (2.0, 0.4, 2.4), ())
    assert visible_share(bin_, shelf, in_front, k, [wall]) < 0.1
    behind = camera_at(np.array([0.0, 2.0, 2.5]))
    assert not sees_bin_front(bin_, shelf.t_map_shelf, behind)


def test_views_of_one_item_are_mixed_by_weight(store, classifier):
    (crop_a, mask_a), = render_product_views(store, 'fizz_cola_330ml', seed=1, every=27)
    (crop_b, mask_b), = render_product_views(store, 'crispo_salted_150g', seed=1, every=27)
    a = dict(classifier.classify(crop_a, mask_a).skus)
    mixed = classifier.classify_views([(crop_a, mask_a, 0.5), (crop_b, mask_b, 0.5)])
    only_a = classifier.classify_views([(crop_a, mask_a, 1.0), (crop_b, mask_b, 0.0)])
    assert dict(only_a.skus) == pytest.approx(a)
    both = dict(mixed.skus)
    assert both['fizz_cola_330ml'] == pytest.approx(0.5 * a['fizz_cola_330ml'], abs=0.05)
    assert 'crispo_salted_150g' in both
    with pytest.raises(ValueError):
        classifier.classify_views([])


def test_background_weights_play_down_the_shelf_colours():
    from go_store_nodes.core.product_id.features import background_weights

    crop = np.full((20, 20, 3), (120, 124, 134), np.uint8)     # grey shelf
    crop[5:10, 5:10] = (200, 30, 30)                            # a red item
    mask = np.zeros((20, 20), bool)
    mask[4:11, 4:11] = True                                     # item and a grey rim
    weights = background_weights(crop, mask, 0.3)
    assert weights[7, 7] > 0.9 and weights[4, 4] < 0.1
    assert np.all(background_weights(crop, mask, 0.0) == 1.0)
