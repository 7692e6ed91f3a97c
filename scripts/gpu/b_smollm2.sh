#!/usr/bin/env bash
# GPU machine, call B (carry .gguf2; run from the repo root): join and check the GGUF, run the smollm2
# suites cold, record their baseline, and bring back the run directory, baseline, JUnit XML, report,
# log; then collect what the background phi3-shape run of call A left (phi3-shape.tgz).
set -uo pipefail
root=$PWD
source /tmp/src/scripts/gpu/env.sh
[ -f "$YODA_HARNESS_SMOLLM2_GGUF" ] || cat /tmp/part_aa "$root/.gguf2/part_ab" "$root/.gguf2/part_ac" > "$YODA_HARNESS_SMOLLM2_GGUF"
echo "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53  $YODA_HARNESS_SMOLLM2_GGUF" | sha256sum -c - || exit 4
start=$(date +%s)
python3 -m pytest suites --profile smollm2 --update-baselines -p no:cacheprovider -rs \
  --junitxml="$OUT/smollm2.xml" --report "$OUT/smollm2.html" 2>&1 | tee "$OUT/smollm2.log"
echo "pytest suites --profile smollm2 (cold, GGUF conversion included): $(( $(date +%s) - start )) s" | tee -a "$OUT/smollm2.log"
cp baselines/smollm2.json "$OUT/"
tar czf "$OUT/runs-smollm2.tgz" -C /tmp/yh/runs --exclude trainer $(cd /tmp/yh/runs && ls -d smollm2-*)
for _ in $(seq 60); do [ -f /tmp/out-phi3/done ] && break; sleep 2; done
tar czf "$OUT/phi3-shape.tgz" -C /tmp/out-phi3 .
