#!/usr/bin/env bash
# GPU machine, started by call B: the training-step benchmark on smollm2, then the phi3-shape suites
# (c_phi3shape.sh), then, with OVERHEAD=1, the harness-overhead benchmark; into $OUT, then touches
# $OUT/done.
set -uo pipefail
source /tmp/src/scripts/gpu/env.sh
python3 benchmarks/train_steps.py --profile smollm2 2>&1 | grep -v -i -E "warn|^\{" | tee "$OUT/train_steps.txt"
bash /tmp/src/scripts/gpu/c_phi3shape.sh
[ "${OVERHEAD:-0}" = 1 ] && python3 benchmarks/overhead.py --profile smollm2 2>&1 | grep -v -i warn | tee "$OUT/overhead.txt"
touch "$OUT/done"
