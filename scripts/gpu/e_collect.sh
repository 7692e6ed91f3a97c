#!/usr/bin/env bash
# GPU machine, call C (and D, if C's wait runs out): wait for call B's background job and bring back
# what it wrote so far.
set -uo pipefail
source /tmp/src/scripts/gpu/env.sh
for _ in $(seq "${WAIT_S:-560}"); do [ -f /tmp/out-bg/done ] && break; sleep 1; done
cp /tmp/out-bg/* "$OUT/" 2>/dev/null
[ -f /tmp/out-bg/done ] || echo "background job still running: call again"
