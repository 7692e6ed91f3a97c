#!/usr/bin/env bash
# GPU machine, run by d_background.sh: phi3-shape suites cold + baseline, into $OUT.
set -uo pipefail
source /tmp/src/scripts/gpu/env.sh
start=$(date +%s)
python3 -m pytest suites --yoda-profile phi3-shape --yoda-update-baselines -p no:cacheprovider -rs \
  --junitxml="$OUT/phi3-shape.xml" --yoda-report "$OUT/phi3-shape.html" 2>&1 | tee "$OUT/phi3-shape.log"
echo "pytest suites --yoda-profile phi3-shape (cold, checkpoint build included): $(( $(date +%s) - start )) s" | tee -a "$OUT/phi3-shape.log"
cp baselines/phi3-shape.json "$OUT/"
tar czf "$OUT/runs-phi3-shape.tgz" -C /tmp/yh/runs --exclude trainer --exclude adapter $(cd /tmp/yh/runs && ls -d phi3-shape-*)
