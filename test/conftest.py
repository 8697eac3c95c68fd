"""Shared test set-up: ROS logs inside the test run, DDS kept on this machine."""

import os
import pathlib
import random
import tempfile

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]

_LOG_DIR = tempfile.mkdtemp(prefix='go_store_ros_log_')
os.environ['ROS_LOG_DIR'] = _LOG_DIR
# Nodes started with the shipped params keep their ledger under ~/.local/share: give the
# test run a home of its own so it never touches (or depends on) the user's data.
os.environ['HOME'] = tempfile.mkdtemp(prefix='go_store_home_')
os.environ['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'
# A domain of its own, so a concurrent run on this machine cannot cross-talk.
os.environ.setdefault('ROS_DOMAIN_ID', str(random.Random(os.getpid()).randint(1, 100)))


@pytest.fixture(scope='session')
def repo() -> pathlib.Path:
    return REPO


@pytest.fixture(scope='session')
def store_path() -> pathlib.Path:
    return REPO / 'config' / 'store.yaml'


@pytest.fixture(scope='session')
def store(store_path):
    """Return the reference store's description (a module may define a store of its own)."""
    from go_store_nodes.core.store import load_store_description
    return load_store_description(store_path)


@pytest.fixture(scope='session')
def references(store):
    """Return product ID's reference images of the reference store's catalog."""
    from go_store_nodes.core.product_id import load_reference_folder
    images, problems = load_reference_folder(store.product_images, store.catalog)
    assert not problems, problems
    return images


@pytest.fixture(scope='session')
def classifier(store, references):
    """Return product ID's classifier fitted on ``references`` with the default settings."""
    from go_store_nodes.core.product_id import ProductClassifier, ProductIdConfig
    return ProductClassifier(references, {s: p.category for s, p in store.catalog.items()},
                             ProductIdConfig())

# OpenCV's sample images, fetched by `make setup` (tools/fetch_opencv_samples.sh).
_OPENCV_SAMPLES = REPO / 'build' / 'test-data' / 'opencv' / 'usr' / 'share' / 'doc' / \
    'opencv-doc' / 'examples' / 'data'
if _OPENCV_SAMPLES.is_dir():
    os.environ.setdefault('GO_STORE_OPENCV_DATA', str(_OPENCV_SAMPLES))
