#!/usr/bin/env bash
# The `crowd` scenario whole (300 s, seed 4: 31 shoppers, 7 of them tailgaters, 20
# accounts, 2 associates, every behaviour, camera outages) at the store's camera
# resolution (424x240 depth and colour, every camera of config/store.yaml) at 5 fps: the
# densest tier perception is regression-tested on. Too large to commit (about 5 GB), so
# it is made where it is used: `make bags` writes it to out/bags/crowd_full/, the
# regression test to a temporary folder. Deterministic: the same simulator, scenario and
# seed give the same bytes.
# Usage: generate.sh [OUT_DIR]   (bag in OUT_DIR/bag, truth in OUT_DIR/truth.json)
set -euo pipefail
cd "$(dirname "$0")/../.."
GO_STORE=${GO_STORE:-.venv/bin/go-store}
OUT=${1:-out/bags/crowd_full}
"$GO_STORE" simulate config/scenarios/crowd.yaml --out "$OUT/bag" \
  --truth "$OUT/truth.json" --overwrite --camera-fps 5 --compression-level 1 --quiet
