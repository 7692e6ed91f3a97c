#!/usr/bin/env bash
# GPU machine, call B of a recording lease, everything in this one call (after a_install.sh; carry
# .gguf2; run from the repo root; about 9 minutes): join and check the GGUF; start the tiny seed sweep
# on the CPU cores (g_tiny_sweep.sh, CUDA hidden) in the background; record the smollm2 and phi3-shape
# baselines cold on the GPU (`pytest suites --fresh --update-baselines`); then wait for the sweep
# while the call has time left, and bring back the baseline files, the summaries and a tarball of
# the logs, JUnit XML and reports.
set -uo pipefail
root=$PWD
started=$(date +%s)
source /tmp/src/scripts/gpu/env.sh
[ -f "$YODA_HARNESS_SMOLLM2_GGUF" ] || cat /tmp/part_* "$root"/.gguf2/part_* > "$YODA_HARNESS_SMOLLM2_GGUF"
echo "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53  $YODA_HARNESS_SMOLLM2_GGUF" | sha256sum -c - || exit 4
work=/tmp/out-rec; mkdir -p "$work"
OUT=$work setsid nohup bash /tmp/src/scripts/gpu/g_tiny_sweep.sh > "$work/sweep-nohup.txt" 2>&1 < /dev/null &
for profile in smollm2 phi3-shape; do
  start=$(date +%s)
  python3 -m pytest suites --profile "$profile" --fresh --update-baselines -p no:cacheprovider -rs --durations=10 \
    --junitxml="$work/$profile.xml" --report "$work/$profile.html" > "$work/$profile.log" 2>&1
  echo "pytest suites --profile $profile --fresh --update-baselines: exit $?, $(( $(date +%s) - start )) s" \
    | tee -a "$work/summary.txt"
  grep -E "passed|failed" "$work/$profile.log" | tail -1 | tee -a "$work/summary.txt"
  cp "baselines/$profile.json" "$OUT/"
done
while [ ! -f "$work/tiny-sweep/done" ] && [ $(( $(date +%s) - started )) -lt "${BUDGET_S:-560}" ]; do sleep 5; done
cp "$work/summary.txt" "$OUT/"
[ -f "$work/tiny-sweep/table.md" ] && cp "$work/tiny-sweep/table.md" "$OUT/tiny-sweep-table.md"
cat "$work/tiny-sweep/status.txt" 2>/dev/null | tee "$OUT/tiny-sweep-status.txt"
tar czf "$OUT/recording.tgz" -C "$work" --exclude '*.json' . 2>/dev/null
cat "$work/summary.txt"; cat "$work/tiny-sweep/table.md" 2>/dev/null
