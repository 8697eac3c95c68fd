"""`colcon build` works as on store hardware: build into a temp workspace, import from it.

The package is copied into a fresh workspace and built with colcon (from PyPI) against
the venv's ROS 2 prefix; then, in a shell that sourced install/setup.bash, as an
integrator would, go_store.msg and go_store_nodes import from the install space and
the share files are where `ros2 launch` looks for them.
"""

import os
import pathlib
import shutil
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow
IGNORED = shutil.ignore_patterns('.venv', 'build', 'install', 'log', '.git', '__pycache__',
                                 '.pytest_cache', '.mypy_cache', '.ruff_cache', '*.egg-info')


def test_colcon_build_and_import_from_install_space(repo, tmp_path):
    prefix = pathlib.Path(sys.prefix)
    colcon = prefix / 'bin' / 'colcon'
    assert colcon.exists(), 'colcon is not installed in the venv (requirements.txt)'
    workspace = tmp_path / 'ws'
    shutil.copytree(repo, workspace / 'src' / 'go_store', ignore=IGNORED)
    env = dict(os.environ, AMENT_PREFIX_PATH=str(prefix), CMAKE_PREFIX_PATH=str(prefix),
               PATH=f'{prefix / "bin"}:{os.environ["PATH"]}')
    env.pop('GO_STORE_SHARE', None)
    build = subprocess.run(
        [str(colcon), 'build', '--event-handlers', 'console_direct-',
         '--cmake-args', f'-DPython3_EXECUTABLE={sys.executable}', '-DBUILD_TESTING=OFF',
         '-Wno-dev'],
        cwd=workspace, env=env, capture_output=True, text=True, timeout=900)
    assert build.returncode == 0, build.stdout[-5000:] + build.stderr[-5000:]
    assert 'tf2_msgs' not in build.stdout, 'colcon must never build the vendored tf2_msgs'

    install = workspace / 'install'
    share = install / 'go_store' / 'share' / 'go_store'
    for relative in ('launch/store.launch.py', 'config/store.yaml', 'config/go_store.yaml',
                     'urdf/store.urdf', 'rviz/store.rviz', 'package.xml'):
        assert (share / relative).is_file(), f'{relative} not installed'
    assert (install / 'go_store' / 'lib' / 'go_store' / 'calibration').is_file()
    # Never on a store machine: a private key (the demo one is public) or the harnesses.
    assert (share / 'config' / 'demo_keys' / 'store_app_public.pem').is_file()
    assert not sorted(share.rglob('*private*')), 'a private key was installed'
    assert not sorted(install.rglob('go_store_testing')), 'test harnesses were installed'

    check = (
        'import go_store.msg, go_store.srv, go_store_nodes.cli\n'
        'from go_store.msg import CartEvent, Track\n'
        'from go_store_nodes.ros.share import share_dir\n'
        'print(go_store.msg.__file__)\n'
        'print(go_store_nodes.cli.__file__)\n'
        'print(share_dir())\n'
        'print(CartEvent().quantity_delta, Track.ROLE_ASSOCIATE)\n')
    result = subprocess.run(
        ['bash', '-c', f'source install/setup.bash && cd / && python3 -c "{check}"'],
        cwd=workspace, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    msg_file, nodes_file, share_found, values = result.stdout.strip().splitlines()[-4:]
    assert msg_file.startswith(str(install)), msg_file
    assert nodes_file.startswith(str(install)), nodes_file
    assert pathlib.Path(share_found) == share
    assert values == '0 2'
