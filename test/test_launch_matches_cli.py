"""launch/store.launch.py and `go-store` start the same nodes with the same settings.

ROS 2 launch is not installable here, so the launch file runs against small
stand-ins for launch / launch_ros that record what it builds; the records are
compared with the node graph `go-store nodes` prints.
"""

import importlib
import importlib.util
import json
import sys
import types

import pytest

from go_store_nodes.cli import main as go_store
from go_store_nodes.core.store import load_store_description


class _Recorder:
    def __init__(self, *args, **kwargs):
        self.args = args
        self.kwargs = kwargs


class _LaunchConfiguration:
    def __init__(self, name):
        self.name = name

    def perform(self, context):
        return context[self.name]


def _stand_in_modules(share_dir):
    modules = {}
    for name in ('launch', 'launch.actions', 'launch.substitutions', 'launch_ros',
                 'launch_ros.actions', 'ament_index_python', 'ament_index_python.packages'):
        modules[name] = types.ModuleType(name)
    modules['launch'].LaunchDescription = lambda actions: list(actions)
    modules['launch.actions'].DeclareLaunchArgument = _Recorder
    modules['launch.actions'].OpaqueFunction = _Recorder
    modules['launch.substitutions'].LaunchConfiguration = _LaunchConfiguration
    modules['launch_ros.actions'].Node = _Recorder
    modules['ament_index_python.packages'].get_package_share_directory = \
        lambda package: str(share_dir)
    return modules


@pytest.fixture
def launch_file(repo, monkeypatch):
    for name, module in _stand_in_modules(repo).items():
        monkeypatch.setitem(sys.modules, name, module)
    spec = importlib.util.spec_from_file_location('store_launch', repo / 'launch' /
                                                  'store.launch.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _launched_nodes(launch_file, overrides):
    actions = launch_file.generate_launch_description()
    arguments = {a.args[0]: a for a in actions if a.args and isinstance(a.args[0], str)}
    for argument in arguments.values():
        assert argument.kwargs['description'], f'{argument.args[0]} has no description'
    context = {name: a.kwargs['default_value'] for name, a in arguments.items()}
    context.update(overrides)
    opaque = next(a for a in actions if 'function' in a.kwargs)
    return context, opaque.kwargs['function'](context)


@pytest.mark.parametrize('with_cameras', [True, False])
def test_launch_file_and_go_store_agree(launch_file, repo, capsys, with_cameras):
    context, launched = _launched_nodes(
        launch_file, {'with_cameras': str(with_cameras).lower(), 'use_sim_time': 'true'})
    assert context['store_description'] == str(repo / 'config' / 'store.yaml')
    assert context['params_file'] == str(repo / 'config' / 'go_store.yaml')
    argv = ['nodes', '--store', context['store_description']]
    assert go_store(argv + ([] if with_cameras else ['--without-cameras'])) == 0
    graph = json.loads(capsys.readouterr().out)
    assert len(launched) == len(graph)
    for node, spec in zip(launched, graph, strict=True):
        kwargs = node.kwargs
        assert (kwargs['package'], kwargs['executable'], kwargs['name'],
                kwargs['namespace']) == (spec['package'], spec['executable'], spec['name'],
                                         spec['namespace'])
        parameters = kwargs['parameters']
        if spec['uses_params_file']:
            assert parameters[0] == context['params_file']
        assert parameters[-1] == dict(spec['parameters'], use_sim_time=True)
        assert [list(r) for r in kwargs['remappings']] == spec['remappings']
    cameras = [s for s in graph if s['package'] == 'realsense2_camera']
    store = load_store_description(context['store_description'])
    assert len(cameras) == (len(store.cameras) if with_cameras else 0)
    if with_cameras:
        assert cameras[0]['parameters']['depth_module.depth_profile'] == '424x240x15'
        assert cameras[0]['parameters']['publish_tf'] is False


def test_every_project_node_has_an_executable_and_a_module(repo, capsys):
    assert go_store(['nodes', '--without-cameras']) == 0
    for spec in json.loads(capsys.readouterr().out):
        script = repo / 'scripts' / spec['executable']
        assert script.is_file(), f'scripts/{spec["executable"]} missing for ros2 run'
        assert f'go_store_nodes.nodes.{spec["executable"]}' in script.read_text()
        module = importlib.import_module(f'go_store_nodes.nodes.{spec["executable"]}')
        assert module.NODE.__name__.endswith('Node')
