"""config/go_store.yaml is the one source of parameter values: exactly what nodes declare."""

import importlib

import yaml

from go_store_nodes.core.graph import PROJECT_NODES


def test_every_declared_parameter_has_a_value_and_no_value_is_stale(repo):
    config = yaml.safe_load((repo / 'config' / 'go_store.yaml').read_text())
    assert set(config) == set(PROJECT_NODES), 'one section per project node'
    for name in PROJECT_NODES:
        module = importlib.import_module(f'go_store_nodes.nodes.{name}')
        declared = {spec.name: spec for spec in module.PARAMETERS}
        values = config[name]['ros__parameters']
        assert set(values) == set(declared), name
        for spec in declared.values():
            assert spec.description, f'{name}.{spec.name} has no description'
            if spec.minimum is not None:
                assert spec.minimum <= values[spec.name] <= spec.maximum, spec.name


def test_values_nodes_share_are_equal(repo):
    config = yaml.safe_load((repo / 'config' / 'go_store.yaml').read_text())
    for name in ('store_description', 'database_url'):
        values = {node: section['ros__parameters'][name] for node, section in config.items()
                  if name in section['ros__parameters']}
        assert len(values) >= 2 and len(set(values.values())) == 1, (name, values)
