"""`go-store catalog-images` and the store description's `product_images` folder."""

import pathlib

import numpy as np
import yaml

from go_store_nodes.cli import main
from go_store_nodes.core.product_id import load_reference_folder, read_reference_image
from go_store_nodes.core.store import load_store_description, parse_store_description


def test_product_images_is_relative_to_the_store_file(store_path, tmp_path):
    store = load_store_description(store_path)
    assert pathlib.Path(store.product_images) == store_path.parent / 'product_images'
    data = yaml.safe_load(store_path.read_text())
    data.pop('product_images')
    assert parse_store_description(data).product_images == ''
    data['product_images'] = 'elsewhere/images'
    other = tmp_path / 'store.yaml'
    other.write_text(yaml.safe_dump(data))
    assert load_store_description(other).product_images == str(tmp_path / 'elsewhere/images')


def test_command_renders_views_of_the_skus_asked_for(store_path, tmp_path, capsys):
    out = tmp_path / 'images'
    assert main(['catalog-images', '--store', str(store_path), '--out', str(out),
                 '--skus', 'fizz_cola_330ml,crispo_salted_150g']) == 0
    assert 'wrote' in capsys.readouterr().out
    images, problems = load_reference_folder(out, ['fizz_cola_330ml', 'crispo_salted_150g'])
    assert not problems
    for sku in ('fizz_cola_330ml', 'crispo_salted_150g'):
        views = [i for i in images if i.sku == sku]
        assert len(views) >= 20                       # distances x angles, few empty
        sizes = [int(v.mask.sum()) for v in views]
        assert max(sizes) > 4 * min(sizes)            # near and far views
    assert main(['catalog-images', '--store', str(store_path), '--out', str(out),
                 '--skus', 'no_such_sku']) == 2


def test_committed_reference_images_match_the_renderer(store_path, tmp_path):
    """The reference store's folder is what the command writes today (same seed)."""
    store = load_store_description(store_path)
    committed = pathlib.Path(store.product_images)
    assert sorted(p.name for p in committed.iterdir() if p.is_dir()) == sorted(store.catalog)
    sku = 'nordic_yogurt_blueberry_150g'
    assert main(['catalog-images', '--store', str(store_path), '--out', str(tmp_path),
                 '--skus', sku]) == 0
    fresh = sorted((tmp_path / sku).glob('*.png'))
    assert [p.name for p in fresh] == sorted(p.name for p in (committed / sku).glob('*.png'))
    for path in fresh:
        new, old = read_reference_image(path, sku), read_reference_image(committed / sku /
                                                                         path.name, sku)
        assert np.array_equal(new.rgb, old.rgb) and np.array_equal(new.mask, old.mask)
