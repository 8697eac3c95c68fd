"""Start a go_store store on store hardware: camera drivers and the project's nodes.

    ros2 launch go_store store.launch.py [store_description:=PATH] [params_file:=PATH]
        [use_sim_time:=false] [with_cameras:=true]

The node list (names, namespaces, parameters) comes from go_store_nodes.core.graph,
the same place `go-store run` reads it from, so the two always start the same graph.
"""

import os

from ament_index_python.packages import get_package_share_directory
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from go_store_nodes.core.graph import store_graph
from go_store_nodes.core.store import load_store_description
from launch import LaunchDescription


def _is_true(text: str) -> bool:
    return text.strip().lower() in ('true', '1', 'yes')


def _store_nodes(context):
    store_path = LaunchConfiguration('store_description').perform(context)
    params_file = LaunchConfiguration('params_file').perform(context)
    use_sim_time = _is_true(LaunchConfiguration('use_sim_time').perform(context))
    with_cameras = _is_true(LaunchConfiguration('with_cameras').perform(context))
    specs = store_graph(load_store_description(store_path), store_path,
                        with_cameras=with_cameras)
    return [
        Node(package=spec.package, executable=spec.executable, name=spec.name,
             namespace=spec.namespace,
             parameters=([params_file] if spec.uses_params_file else [])
             + [dict(spec.parameters, use_sim_time=use_sim_time)],
             remappings=list(spec.remappings), output='screen', emulate_tty=True)
        for spec in specs]


def generate_launch_description():
    """Declare the arguments; the nodes are computed from the store description."""
    share = get_package_share_directory('go_store')
    return LaunchDescription([
        DeclareLaunchArgument(
            'store_description', default_value=os.path.join(share, 'config', 'store.yaml'),
            description='store description YAML: cameras, shelves, gates, catalog'),
        DeclareLaunchArgument(
            'params_file', default_value=os.path.join(share, 'config', 'go_store.yaml'),
            description='parameters of every go_store node, keyed by node name'),
        DeclareLaunchArgument(
            'use_sim_time', default_value='false',
            description='true: every node follows /clock (bag replay, simulation)'),
        DeclareLaunchArgument(
            'with_cameras', default_value='true',
            description='start one realsense2_camera driver per camera of the description'),
        OpaqueFunction(function=_store_nodes),
    ])
