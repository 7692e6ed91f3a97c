#!/usr/bin/env bash
# GPU machine, call B (carry .gguf2; after call A): join and check the SmolLM2 GGUF; time the
# structural verdict cold (GGUF conversion included) and with the converted checkpoint cached;
# then, in its own process session (it outlives this call; j_collect.sh waits for it), the full
# suites --yoda-fresh, recording the baseline over two seeds (--yoda-update-baselines --yoda-baseline-seeds 2)
# with the HTML report. This call waits for it while it has time.
set -uo pipefail
root=$PWD
started=$(date +%s)
source /tmp/src/scripts/gpu/env.sh
[ -f "$YODA_HARNESS_SMOLLM2_GGUF" ] || cat /tmp/part_* "$root"/.gguf2/part_* > "$YODA_HARNESS_SMOLLM2_GGUF"
echo "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53  $YODA_HARNESS_SMOLLM2_GGUF" | sha256sum -c - || exit 4
work=/tmp/out-sm; mkdir -p "$work"
suites=(python3 -m pytest suites --yoda-profile smollm2 -p no:cacheprovider -rs)
for label in cold cached; do
  start=$(date +%s)
  "${suites[@]}" -m yoda_structural --yoda-fresh -q > "$work/structural-$label.log" 2>&1
  echo "pytest suites --yoda-profile smollm2 -m yoda_structural --yoda-fresh ($label checkpoint): exit $?, $(( $(date +%s) - start )) s" \
    | tee -a "$work/summary.txt"
  tail -3 "$work/structural-$label.log"
done
cat > "$work/full.sh" <<INNER
cd /tmp/src; source /tmp/src/scripts/gpu/env.sh
start=\$(date +%s)
${suites[*]} --yoda-fresh --yoda-update-baselines --yoda-baseline-seeds 2 --durations=15 --junitxml=$work/smollm2.xml \
  --yoda-report $work/smollm2.html > $work/full.log 2>&1
echo "pytest suites --yoda-profile smollm2 --yoda-fresh --yoda-update-baselines --yoda-baseline-seeds 2: exit \$?, \$(( \$(date +%s) - start )) s" >> $work/summary.txt
cp baselines/smollm2.json $work/
touch $work/done
INNER
setsid nohup bash "$work/full.sh" > "$work/nohup.txt" 2>&1 < /dev/null &
while [ ! -f "$work/done" ] && [ $(( $(date +%s) - started )) -lt "${BUDGET_S:-560}" ]; do sleep 5; done
grep -E "^\[harness\]|done in|step " "$work/full.log" | tail -8
cat "$work/summary.txt"; ls /tmp/out-rec/tiny-sweep 2>/dev/null | wc -l; cat /tmp/out-rec/tiny-sweep/status.txt 2>/dev/null
