#!/usr/bin/env bash
# Regenerate the committed regression bag bags/easy/bag, and bags/easy/truth.json outside
# the bag folder, with the real simulator from config/scenarios/easy.yaml. Rendering is
# reduced so that the bag stays a few MB: image_scale 0.1 (42x24 depth and colour images)
# at 1 fps, zstd level 19. Deterministic: the same simulator and scenario give the same
# bytes.
set -euo pipefail
cd "$(dirname "$0")/../.."
GO_STORE=${GO_STORE:-.venv/bin/go-store}
"$GO_STORE" simulate config/scenarios/easy.yaml --out bags/easy/bag --truth bags/easy/truth.json --overwrite \
  --image-scale 0.1 --camera-fps 1 --compression-level 19 --quiet
