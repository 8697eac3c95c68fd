#!/usr/bin/env bash
# The `easy` scenario at the store's camera resolution (424x240 depth and colour, every
# camera of config/store.yaml) at 5 fps: the tier perception is regression-tested on.
# Too large to commit (about 1.5 GB), so it is made where it is used: `make bags` writes it
# to out/bags/easy_full/, the regression test to a temporary folder. Deterministic: the
# same simulator, scenario and seed give the same bytes.
# Usage: generate.sh [OUT_DIR]   (bag in OUT_DIR/bag, truth in OUT_DIR/truth.json)
set -euo pipefail
cd "$(dirname "$0")/../.."
GO_STORE=${GO_STORE:-.venv/bin/go-store}
OUT=${1:-out/bags/easy_full}
"$GO_STORE" simulate config/scenarios/easy.yaml --out "$OUT/bag" --truth "$OUT/truth.json" \
  --overwrite --camera-fps 5 --compression-level 1 --quiet
