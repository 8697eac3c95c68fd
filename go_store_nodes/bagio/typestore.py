"""The rosbags type store of go_store: ROS wheels' messages, msg/ and tf2_msgs.

Definitions are read from the ``.msg`` files the ROS wheels install
(``<prefix>/share/<package>/msg``), the package's own ``msg/`` and
``vendor/tf2_msgs/msg``; where a standard package's files cannot be found, rosbags'
bundled ROS 2 Kilted definitions are used. RIHS01 type hashes computed by rosbags
from these definitions equal rosidl's (a test compares them with rclpy's).
"""

from __future__ import annotations

import functools
import os
import pathlib
import sys

from rosbags.typesys import get_types_from_msg, get_typestore, Stores
from rosbags.typesys.store import Typestore

from ..ros.share import share_dir

# Standard packages whose messages go_store bags and the replay use.
STANDARD_PACKAGES = ('builtin_interfaces', 'std_msgs', 'geometry_msgs', 'sensor_msgs',
                     'rosgraph_msgs', 'diagnostic_msgs', 'visualization_msgs')
BUNDLED_STORE = Stores.ROS2_KILTED


def _prefixes() -> list[pathlib.Path]:
    prefixes = [pathlib.Path(p) for p in os.environ.get('AMENT_PREFIX_PATH', '').split(
        os.pathsep) if p]
    prefixes.append(pathlib.Path(sys.prefix))
    return prefixes


def message_dirs(package: str) -> list[pathlib.Path]:
    """Folders that hold ``package``'s .msg files, most specific first."""
    found = []
    if package == 'go_store':
        found.append(share_dir() / 'msg')
    if package == 'tf2_msgs':
        found.append(share_dir() / 'vendor' / 'tf2_msgs' / 'msg')
    found.extend(prefix / 'share' / package / 'msg' for prefix in _prefixes())
    return [d for d in found if d.is_dir() and any(d.glob('*.msg'))]


def _package_types(package: str) -> dict:
    dirs = message_dirs(package)
    if not dirs:
        return {}
    types: dict = {}
    for path in sorted(dirs[0].glob('*.msg')):
        types.update(get_types_from_msg(path.read_text(), f'{package}/msg/{path.stem}'))
    return types


@functools.lru_cache(maxsize=1)
def typestore() -> Typestore:
    """Return the shared type store (built once): standard, tf2_msgs and go_store types."""
    bundled = get_typestore(BUNDLED_STORE)
    store = get_typestore(Stores.EMPTY)
    types: dict = {}
    for package in (*STANDARD_PACKAGES, 'tf2_msgs', 'go_store'):
        found = _package_types(package)
        if not found and package != 'go_store':
            found = {name: definition for name, definition in bundled.fielddefs.items()
                     if name.startswith(f'{package}/')}
        if not found:
            raise FileNotFoundError(f'no message definitions found for {package}')
        types.update(found)
    store.register(types)
    return store


def message_class(msgtype: str) -> type:
    """Return the rosbags message class of a type name like ``sensor_msgs/msg/Image``."""
    return typestore().types[msgtype]


def type_hash(msgtype: str) -> str:
    """Return the RIHS01 type hash of ``msgtype``, as rosidl computes it."""
    return typestore().hash_rihs01(msgtype)
