#!/usr/bin/env bash
# GPU machine, call B (carry .gguf2; run from the repo root): join and check the GGUF, run the smollm2
# suites cold (GGUF conversion included) and record their baseline, run them again on the cached run,
# print the phase table, and bring back the run directory, baseline, JUnit XML, report and logs.
# Then start d_background.sh in its own process session (it outlives this call; e_collect.sh waits).
# GENERATION_BENCH=1 also times batched generation against one prompt at a time (about 2 min).
set -uo pipefail
root=$PWD
source /tmp/src/scripts/gpu/env.sh
[ -f "$YODA_HARNESS_SMOLLM2_GGUF" ] || cat /tmp/part_* "$root"/.gguf2/part_* > "$YODA_HARNESS_SMOLLM2_GGUF"
echo "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53  $YODA_HARNESS_SMOLLM2_GGUF" | sha256sum -c - || exit 4
suites=(python3 -m pytest suites --yoda-profile smollm2 -p no:cacheprovider -rs)
start=$(date +%s)
"${suites[@]}" --yoda-update-baselines --durations=25 --junitxml="$OUT/smollm2.xml" --yoda-report "$OUT/smollm2.html" \
  2>&1 | tee "$OUT/smollm2.log"
echo "pytest suites --yoda-profile smollm2 (cold, GGUF conversion included): $(( $(date +%s) - start )) s" | tee -a "$OUT/smollm2.log"
start=$(date +%s)
"${suites[@]}" -q --durations=8 2>&1 | tail -15 | tee "$OUT/smollm2-cached.log"
echo "pytest suites --yoda-profile smollm2 (cached run): $(( $(date +%s) - start )) s" | tee -a "$OUT/smollm2-cached.log"
cp baselines/smollm2.json "$OUT/"
run=$(cd /tmp/yh/runs && ls -d smollm2-* | head -1)
python3 benchmarks/phases.py "/tmp/yh/runs/$run" 2>&1 | tee "$OUT/bench.txt"
[ "${GENERATION_BENCH:-0}" = 1 ] && python3 benchmarks/generation.py "/tmp/yh/runs/$run" --batch-sizes 32,128 2>&1 \
  | grep -v -i warn | tee -a "$OUT/bench.txt"
tar czf "$OUT/runs-smollm2.tgz" -C /tmp/yh/runs --exclude trainer "$run"
mkdir -p /tmp/out-bg
OUT=/tmp/out-bg setsid nohup bash /tmp/src/scripts/gpu/d_background.sh > /tmp/out-bg/nohup.txt 2>&1 < /dev/null &
echo "background benchmarks started"
