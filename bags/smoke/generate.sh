#!/usr/bin/env bash
# Regenerate the committed regression bag bags/smoke/bag, and bags/smoke/truth.json
# outside the bag folder, with the real simulator from config/scenarios/smoke.yaml.
# Rendering is reduced so that the bag stays a few MB: image_scale 0.1 (42x24 depth and
# colour images) at 2 fps, zstd level 19. Deterministic: the same simulator and scenario
# give the same bytes.
set -euo pipefail
cd "$(dirname "$0")/../.."
GO_STORE=${GO_STORE:-.venv/bin/go-store}
"$GO_STORE" simulate config/scenarios/smoke.yaml --out bags/smoke/bag --truth bags/smoke/truth.json --overwrite \
  --image-scale 0.1 --camera-fps 2 --compression-level 19 --quiet
