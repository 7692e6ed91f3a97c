#!/usr/bin/env bash
# GPU machine, started by call B: harness overhead against the bare recipe (cold and cached) at the
# profile's own epochs unless EPOCHS is set; into $OUT, then touches $OUT/done.
set -uo pipefail
source /tmp/src/scripts/gpu/env.sh
python3 benchmarks/overhead.py --profile smollm2 ${EPOCHS:+--epochs "$EPOCHS"} 2>&1 | grep -v -i warn | tee "$OUT/overhead.txt"
touch "$OUT/done"
