"""Rewrite build-machine paths baked into the ROS 2 wheels' CMake export files.

The `ros-*` wheels on PyPI were built under /opt/python/cp311-cp311; their CMake
config files name that interpreter's include folder and numpy's include folder,
and CMake refuses imported targets whose include paths do not exist. This points
them at the venv's interpreter. Idempotent: a second run changes nothing.
"""

import pathlib
import sys
import sysconfig

import numpy

BUILD_PYTHON_INCLUDE = '/opt/python/cp311-cp311/include/python3.11'
BUILD_NUMPY_INCLUDE = (
    '/opt/python/cp311-cp311/lib/python3.11/site-packages/numpy/_core/include')


def main(prefix: str) -> int:
    """Rewrite every *.cmake file under PREFIX/share; print how many changed."""
    replacements = {
        BUILD_NUMPY_INCLUDE: numpy.get_include(),
        BUILD_PYTHON_INCLUDE: sysconfig.get_paths()['include'],
    }
    changed = 0
    for path in pathlib.Path(prefix, 'share').rglob('*.cmake'):
        text = path.read_text(errors='surrogateescape')
        new_text = text
        for old, new in replacements.items():
            new_text = new_text.replace(old, new)
        if new_text != text:
            path.write_text(new_text, errors='surrogateescape')
            changed += 1
    print(f'fixed include paths in {changed} CMake files under {prefix}/share')
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else sys.prefix))
