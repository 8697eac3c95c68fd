"""The pure core imports no ROS; ruff (ament_flake8 conventions) and mypy pass."""

import ast
import pathlib
import subprocess
import sys

import pytest

FORBIDDEN_IN_CORE = ('rclpy', 'go_store', 'tf2_msgs', 'launch', 'launch_ros', 'cv_bridge',
                     'message_filters', 'ament_index_python')


def _core_files(repo):
    return sorted((repo / 'go_store_nodes' / 'core').rglob('*.py'))


def _imported_roots(path: pathlib.Path):
    tree = ast.parse(path.read_text(), str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name.split('.')[0], node.lineno
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.module.split('.')[0], node.lineno


def test_core_imports_no_ros(repo):
    offenders = [f'{path.relative_to(repo)}:{line} imports {name}'
                 for path in _core_files(repo) for name, line in _imported_roots(path)
                 if name in FORBIDDEN_IN_CORE or name.endswith('_msgs')
                 or name.endswith('_srvs')]
    assert not offenders, '\n'.join(offenders)


def test_core_modules_load_without_rclpy(repo):
    modules = [
        '.'.join(path.relative_to(repo).with_suffix('').parts).removesuffix('.__init__')
        for path in _core_files(repo) if 'migrations' not in path.parts]
    code = ('import importlib, sys\n'
            f'for name in {modules!r}:\n'
            '    importlib.import_module(name)\n'
            "loaded = sorted(m for m in sys.modules if m.split('.')[0] in "
            f"{FORBIDDEN_IN_CORE!r} or m.split('.')[0].endswith('_msgs'))\n"
            'print(loaded)\n'
            'sys.exit(1 if loaded else 0)\n')
    result = subprocess.run([sys.executable, '-c', code], cwd=repo, capture_output=True,
                            text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_ament_flake8_conventions(repo):
    result = subprocess.run([sys.executable, '-m', 'ruff', 'check', '--no-cache', '.'],
                            cwd=repo, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_on_the_core(repo):
    pytest.importorskip('mypy')
    result = subprocess.run(
        [sys.executable, '-m', 'mypy', '--cache-dir', '/dev/null', 'go_store_nodes/core'],
        cwd=repo, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
