"""The in-process graph (`go-store run`, replay) honours the launch file's node specs.

Each node is created with its own ``cli_args``: the spec's name, namespace, params file,
parameters and remappings, the same arguments a node process gets. Checked on the live
graph: node names, a remapped topic and a value from the params file.
"""

import dataclasses
import time

import pytest
import rclpy

from go_store_nodes.core.graph import store_graph
from go_store_nodes.core.store import load_store_description
from go_store_nodes.nodes.runner import graph_in_process, ros_arguments

pytestmark = pytest.mark.slow


def _specs(store_path, tmp_path):
    specs = [s for s in store_graph(load_store_description(store_path), str(store_path),
                                    with_cameras=False) if not s.hardware_only]
    database = f'sqlite:///{tmp_path / "ledger.sqlite"}'
    result = []
    for spec in specs:
        if spec.name == 'calibration':
            spec = dataclasses.replace(
                spec, remappings=(('calibration/status', 'calibration/status_remapped'),))
        if spec.name in ('gate', 'cart_ledger'):
            spec = dataclasses.replace(spec, parameters={**spec.parameters,
                                                         'database_url': database})
        result.append(spec)
    return result


def test_nodes_run_under_the_specs_names_remappings_and_params(
        repo, store_path, tmp_path):
    params_file = str(repo / 'config' / 'go_store.yaml')
    specs = _specs(store_path, tmp_path)
    with graph_in_process(specs, params_file, use_sim_time=False) as nodes:
        probe = rclpy.create_node('graph_probe')
        nodes.append(probe)
        names = {f'{ns.rstrip("/")}/{name}' for name, ns in
                 probe.get_node_names_and_namespaces()}
        deadline = time.monotonic() + 10.0
        while not {'/calibration', '/gate', '/cart_ledger'} <= names:
            assert time.monotonic() < deadline, f'nodes seen: {sorted(names)}'
            rclpy.spin_once(probe, timeout_sec=0.1)
            names = {f'{ns.rstrip("/")}/{name}' for name, ns in
                     probe.get_node_names_and_namespaces()}
        by_name = {node.get_fully_qualified_name(): node for node in nodes}
        calibration = by_name['/calibration']
        topics = {name for name, _ in calibration.get_topic_names_and_types()}
        assert '/calibration/status_remapped' in topics
        assert '/calibration/status' not in topics
        # Values come from the params file's section of each node's name.
        assert by_name['/cart_ledger'].get_parameter('grace_period_s').value == 30.0
        assert by_name['/gate'].get_parameter('database_url').value.endswith('ledger.sqlite')
        assert by_name['/gate'].get_parameter('use_sim_time').value is False


def test_process_and_in_process_nodes_get_the_same_arguments(store_path):
    (spec, *_) = store_graph(load_store_description(store_path), str(store_path),
                             with_cameras=False)
    spec = dataclasses.replace(spec, namespace='ns', remappings=(('a', 'b'),))
    args = ros_arguments('/p.yaml', spec, use_sim_time=True)
    assert args[:3] == ['--ros-args', '-r', f'__node:={spec.name}']
    assert ['-r', '__ns:=/ns'] == args[3:5]
    assert args[args.index('--params-file') + 1] == '/p.yaml'
    assert args[-2:] == ['-r', 'a:=b'] and 'use_sim_time:=true' in args


def test_every_node_follows_sim_time(repo, store_path, tmp_path):
    # A node that replaces rclpy's own bookkeeping (e.g. assigns self._subscriptions) loses
    # its /clock subscription: under replay its clock stays at 0 and it never acts.
    params_file = str(repo / 'config' / 'go_store.yaml')
    specs = _specs(store_path, tmp_path)
    for spec in specs:
        if 'outbox_path' in spec.parameters or spec.name == 'association':
            spec_params = {**spec.parameters,
                           'outbox_path': str(tmp_path / 'association_outbox.sqlite')}
            specs[specs.index(spec)] = dataclasses.replace(spec, parameters=spec_params)
    with graph_in_process(specs, params_file, use_sim_time=True) as nodes:
        missing = [node.get_name() for node in nodes
                   if '/clock' not in {s.topic_name for s in node.subscriptions}]
        assert missing == []
        assert all(node.get_parameter('use_sim_time').value for node in nodes)
