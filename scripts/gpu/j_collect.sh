#!/usr/bin/env bash
# GPU machine, call C (and D if C's wait runs out): wait for the smollm2 recording (i_smollm2_full.sh)
# and the tiny candidate sweep (h_tiny_candidates.sh), then bring back what they wrote.
set -uo pipefail
started=$(date +%s)
source /tmp/src/scripts/gpu/env.sh
while { [ ! -f /tmp/out-sm/done ] || [ ! -f /tmp/out-rec/tiny-sweep/done ]; } \
      && [ $(( $(date +%s) - started )) -lt "${BUDGET_S:-560}" ]; do sleep 5; done
cp /tmp/out-sm/summary.txt /tmp/out-sm/smollm2.json /tmp/out-sm/smollm2.xml /tmp/out-sm/smollm2.html "$OUT/" 2>/dev/null
tar czf "$OUT/logs.tgz" -C /tmp out-sm/full.log out-sm/structural-cold.log out-sm/structural-cached.log out-rec 2>/dev/null
[ -f /tmp/out-rec/tiny-sweep/done ] || python3 scripts/gpu/tiny_sweep_table.py /tmp/out-rec/tiny-sweep > /tmp/out-rec/tiny-sweep/table.md
cp /tmp/out-rec/tiny-sweep/table.md "$OUT/tiny-table.md" 2>/dev/null
cat /tmp/out-sm/summary.txt; tail -30 /tmp/out-sm/full.log; cat /tmp/out-rec/tiny-sweep/status.txt; cat "$OUT/tiny-table.md"
[ -f /tmp/out-sm/done ] && [ -f /tmp/out-rec/tiny-sweep/done ] || echo "still running: call again"
