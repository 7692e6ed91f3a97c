#!/usr/bin/env bash
# GPU machine, one self-contained call (carry .gpu; run from the repo root; about 9 minutes): unpack the
# libraries and the code snapshot as a_install.sh does, start the tiny seed sweep on the CPU cores
# (g_tiny_sweep.sh, CUDA hidden) in the background, record the phi3-shape baseline cold on the GPU
# (`pytest suites --yoda-fresh --yoda-update-baselines`; no GGUF needed, so no second call that could find the
# machine gone cold), then wait for the sweep while the call has time, and bring everything back.
set -uo pipefail
started=$(date +%s)
mkdir -p /tmp/site /tmp/src && tar xzf .gpu/site.tgz -C /tmp/site && tar xzf .gpu/src.tgz -C /tmp/src
source /tmp/src/scripts/gpu/env.sh
work=/tmp/out-rec; mkdir -p "$work"
OUT=$work setsid nohup bash /tmp/src/scripts/gpu/g_tiny_sweep.sh > "$work/sweep-nohup.txt" 2>&1 < /dev/null &
start=$(date +%s)
python3 -m pytest suites --yoda-profile phi3-shape --yoda-fresh --yoda-update-baselines -p no:cacheprovider -rs --durations=10 \
  --junitxml="$work/phi3-shape.xml" --yoda-report "$work/phi3-shape.html" > "$work/phi3-shape.log" 2>&1
echo "pytest suites --yoda-profile phi3-shape --yoda-fresh --yoda-update-baselines: exit $?, $(( $(date +%s) - start )) s" \
  | tee -a "$work/summary.txt"
grep -E "passed|failed" "$work/phi3-shape.log" | tail -1 | tee -a "$work/summary.txt"
grep -E "^\[harness\] .* done in" "$work/phi3-shape.log" | tee -a "$work/summary.txt"
cp baselines/phi3-shape.json "$OUT/"
while [ ! -f "$work/tiny-sweep/done" ] && [ $(( $(date +%s) - started )) -lt "${BUDGET_S:-540}" ]; do sleep 5; done
cp "$work/summary.txt" "$OUT/"
[ -f "$work/tiny-sweep/table.md" ] && cp "$work/tiny-sweep/table.md" "$OUT/tiny-sweep-table.md"
cat "$work/tiny-sweep/status.txt" 2>/dev/null | tee "$OUT/tiny-sweep-status.txt"
tar czf "$OUT/recording.tgz" -C "$work" --exclude '*.json' . 2>/dev/null
cat "$work/summary.txt"; cat "$work/tiny-sweep/table.md" 2>/dev/null
