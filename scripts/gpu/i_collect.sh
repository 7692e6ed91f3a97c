#!/usr/bin/env bash
# GPU machine, the call after h_record.sh (and again if its wait runs out): wait for the recording
# and the tiny sweep, then bring back the baseline files, the summaries and a tarball of the rest
# (logs, JUnit XML, reports, the sweep's files): few files, since a call returns at most eight.
set -uo pipefail
for _ in $(seq "${WAIT_S:-540}"); do
  [ -f /tmp/out-bg/gpu-done ] && [ -f /tmp/out-bg/tiny-sweep/done ] && break; sleep 1
done
cd /tmp/out-bg
cp smollm2.json phi3-shape.json summary.txt "$OUT/" 2>/dev/null
cp tiny-sweep/table.md "$OUT/tiny-sweep-table.md" 2>/dev/null
tar czf "$OUT/recording.tgz" --exclude='*.json' . 2>/dev/null
cat summary.txt 2>/dev/null; cat tiny-sweep/table.md 2>/dev/null; cat tiny-sweep/status.txt 2>/dev/null
[ -f gpu-done ] && [ -f tiny-sweep/done ] || echo "still running: call again"
