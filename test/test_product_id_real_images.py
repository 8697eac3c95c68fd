"""Product ID's local-feature matcher on real photographs: OpenCV's box.png in a scene.

The images come with opencv-doc (examples/data); GO_STORE_OPENCV_DATA points at them
(the Makefile and test/conftest.py set it, `make setup` fetches them).
"""

import os
from pathlib import Path

import cv2
import numpy as np
import pytest

from go_store_nodes.core.product_id import (
    OrbMatcher,
    ProductClassifier,
    ProductIdConfig,
    ReferenceImage,
)

ENV = 'GO_STORE_OPENCV_DATA'
# Corners of the box (its image corners 0,0 / w,0 / w,h / 0,h) in box_in_scene.png, read
# off the photograph by eye: the printed box's outline, px.
BOX_CORNERS_IN_SCENE = np.array([[118, 159], [290, 176], [268, 302], [91, 270]], float)
CORNER_TOLERANCE_PX = 12.0


def _read(name, flags=cv2.IMREAD_GRAYSCALE):
    where = os.environ.get(ENV)
    if not where:
        pytest.skip(f'{ENV} is not set: point it at opencv-doc examples/data')
    path = Path(where) / name
    if not path.is_file():
        pytest.fail(f'{ENV}={where} has no {name} (opencv-doc examples/data)')
    image = cv2.imread(str(path), flags)
    assert image is not None, f'cannot read {path}'
    return image


def test_orb_finds_the_box_in_the_scene():
    box, scene = _read('box.png'), _read('box_in_scene.png')
    matcher = OrbMatcher()
    found = matcher.match(matcher.features(box), matcher.features(scene))
    assert found.inliers >= 15 and found.homography is not None, found
    h, w = box.shape
    corners = cv2.perspectiveTransform(
        np.float32([[0, 0], [w, 0], [w, h], [0, h]]).reshape(-1, 1, 2),
        found.homography).reshape(-1, 2)
    error = np.linalg.norm(corners - BOX_CORNERS_IN_SCENE, axis=1)
    assert error.max() < CORNER_TOLERANCE_PX, corners


def test_orb_finds_no_box_where_there_is_none():
    box, other = _read('box.png'), _read('left01.jpg')
    matcher = OrbMatcher()
    found = matcher.match(matcher.features(box), matcher.features(other))
    assert found.inliers < 8


def test_classifier_uses_local_features_where_colour_cannot_decide():
    """Two grey references (no colour tells them apart): the print names the box.

    The query is the scene crop round the box.
    """
    box = cv2.cvtColor(_read('box.png'), cv2.COLOR_GRAY2RGB)
    other = cv2.cvtColor(_read('blox.jpg'), cv2.COLOR_GRAY2RGB)
    scene = cv2.cvtColor(_read('box_in_scene.png'), cv2.COLOR_GRAY2RGB)
    references = [ReferenceImage('box_sku', box, np.ones(box.shape[:2], bool)),
                  ReferenceImage('other_sku', other, np.ones(other.shape[:2], bool))]
    categories = {'box_sku': 'boxes', 'other_sku': 'boxes'}
    crop = scene[150:310, 85:300]
    mask = np.ones(crop.shape[:2], bool)
    with_orb = ProductClassifier(references, categories, ProductIdConfig(orb_weight=20.0))
    assert with_orb.classify(crop, mask).best_sku == 'box_sku'
    likelihood = dict(with_orb.classify(crop, mask).skus)
    without = ProductClassifier(references, categories, ProductIdConfig(orb_weight=0.0))
    assert likelihood['box_sku'] > dict(without.classify(crop, mask).skus)['box_sku']
