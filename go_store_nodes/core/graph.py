"""The node graph of a store, computed in one place for the launch file and `go-store run`.

``store_graph`` lists every node a store runs: one realsense2_camera driver per
camera (store hardware only) and the project's nodes, with their names, namespaces,
parameters and remappings. ``launch/store.launch.py`` turns the list into launch_ros
``Node`` actions; ``go-store run`` starts the project's nodes from the same list.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from .store import StoreDescription

PACKAGE = 'go_store'
REALSENSE_PACKAGE = 'realsense2_camera'
REALSENSE_EXECUTABLE = 'realsense2_camera_node'
CAMERA_NAMESPACE = 'cameras'


@dataclass(frozen=True)
class NodeSpec:
    """One node to start: what to run, under which name, with which settings."""

    package: str
    executable: str
    name: str
    namespace: str = ''
    parameters: Mapping[str, Any] = field(default_factory=dict)
    remappings: tuple[tuple[str, str], ...] = ()
    uses_params_file: bool = True
    hardware_only: bool = False

    @property
    def full_name(self) -> str:
        """Fully qualified node name, e.g. ``/cameras/cam_01``."""
        return f'/{self.namespace}/{self.name}' if self.namespace else f'/{self.name}'


# Project nodes: (executable == node name). Each has a section keyed by its name
# in config/go_store.yaml and a module go_store_nodes.nodes.<name> with main().
PROJECT_NODES: tuple[str, ...] = ('calibration', 'person_locator', 'tracker', 'gate',
                                  'cart_ledger', 'shelf_fusion', 'association', 'pose',
                                  'product_id', 'visualization', 'operator_page')


def realsense_profile(width: int, height: int, fps: float) -> str:
    """realsense2_camera profile string, e.g. '424x240x15'."""
    return f'{width}x{height}x{int(round(fps))}'


def camera_driver_spec(description: StoreDescription, camera_id: str) -> NodeSpec:
    """Describe the realsense2_camera node of one camera, publishing under cameras/<id>/.

    TF is left to the calibration node (``publish_tf: false``) so that each optical
    frame has one parent, map, and the driver's frame names are used as they are.
    """
    camera = description.camera(camera_id)
    model = camera.model
    return NodeSpec(
        package=REALSENSE_PACKAGE, executable=REALSENSE_EXECUTABLE, name=camera_id,
        namespace=CAMERA_NAMESPACE,
        parameters={
            'camera_name': camera_id,
            'camera_namespace': CAMERA_NAMESPACE,
            'serial_no': camera.serial,
            'enable_depth': True,
            'enable_color': True,
            'enable_infra1': False,
            'enable_infra2': False,
            'depth_module.depth_profile': realsense_profile(
                model.depth.width, model.depth.height, model.fps),
            'rgb_camera.color_profile': realsense_profile(
                model.color.width, model.color.height, model.fps),
            'align_depth.enable': False,
            'publish_tf': False,
        },
        uses_params_file=False, hardware_only=True)


def store_graph(description: StoreDescription, store_description_path: str,
                with_cameras: bool = True) -> list[NodeSpec]:
    """Every node of the store, camera drivers first when ``with_cameras``."""
    specs: list[NodeSpec] = []
    if with_cameras:
        specs.extend(camera_driver_spec(description, c.camera_id) for c in description.cameras)
    for name in PROJECT_NODES:
        specs.append(NodeSpec(
            package=PACKAGE, executable=name, name=name,
            parameters={'store_description': store_description_path}))
    return specs
