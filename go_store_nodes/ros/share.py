"""Where the package's share files (config/, launch/, urdf/, bags/) are."""

from __future__ import annotations

import os
import pathlib

PACKAGE = 'go_store'


def share_dir() -> pathlib.Path:
    """Return the go_store share folder.

    ``GO_STORE_SHARE`` when set; else the source checkout this module runs from (an
    editable install, where package.xml sits beside go_store_nodes/); else the
    installed share/go_store found through the ament index (colcon install space).
    """
    override = os.environ.get('GO_STORE_SHARE')
    if override:
        return pathlib.Path(override)
    checkout = pathlib.Path(__file__).resolve().parents[2]
    if (checkout / 'package.xml').is_file() and (checkout / 'config').is_dir():
        return checkout
    from ament_index_python.packages import get_package_share_directory
    return pathlib.Path(get_package_share_directory(PACKAGE))


def default_store_description() -> pathlib.Path:
    """Return the reference store description shipped with the package."""
    return share_dir() / 'config' / 'store.yaml'


def default_params_file() -> pathlib.Path:
    """Return the node parameter file shipped with the package."""
    return share_dir() / 'config' / 'go_store.yaml'
