#!/usr/bin/env bash
# GPU machine, call D: harness overhead against the bare recipe (cold and cached), same epochs both sides.
set -uo pipefail
source /tmp/src/scripts/gpu/env.sh
python3 benchmarks/overhead.py --profile smollm2 --epochs "${EPOCHS:-3}" 2>&1 | grep -v -i warn | tee "$OUT/overhead.txt"
