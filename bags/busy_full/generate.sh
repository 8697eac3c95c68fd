#!/usr/bin/env bash
# The `busy` scenario's first 120 s (seed 3: 18 shoppers, 4 of them tailgaters, 2
# associates, hand-offs, returns to other bins, touches, a camera outage) at the store's
# camera resolution (424x240 depth and colour, every camera of config/store.yaml) at 5 fps:
# the crowded tier perception is regression-tested on. Too large to commit (about 4 GB), so
# it is made where it is used: `make bags` writes it to out/bags/busy_full/, the regression
# test to a temporary folder. Deterministic: the same simulator, scenario and seed give the
# same bytes.
# Usage: generate.sh [OUT_DIR]   (bag in OUT_DIR/bag, truth in OUT_DIR/truth.json)
set -euo pipefail
cd "$(dirname "$0")/../.."
GO_STORE=${GO_STORE:-.venv/bin/go-store}
OUT=${1:-out/bags/busy_full}
"$GO_STORE" simulate config/scenarios/busy.yaml --duration 120 --out "$OUT/bag" \
  --truth "$OUT/truth.json" --overwrite --camera-fps 5 --compression-level 1 --quiet
