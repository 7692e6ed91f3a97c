#!/usr/bin/env bash
# GPU machine, call B of a recording lease (after a_install.sh; carry .gguf2; run from the repo root):
# join and check the GGUF, then start in the background, in its own process session (it outlives
# this call; e_collect.sh waits for it, with OUT=/tmp/out-bg):
#   - on the GPU: smollm2 then phi3-shape, `pytest suites --fresh --update-baselines` (cold, the
#     baseline entries recorded by the harness's own command), with JUnit XML and the report;
#   - on the CPU cores beside it (CUDA hidden): scripts/gpu/g_tiny_sweep.sh, tiny over ten seeds.
set -uo pipefail
root=$PWD
source /tmp/src/scripts/gpu/env.sh
[ -f "$YODA_HARNESS_SMOLLM2_GGUF" ] || cat /tmp/part_* "$root"/.gguf2/part_* > "$YODA_HARNESS_SMOLLM2_GGUF"
echo "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53  $YODA_HARNESS_SMOLLM2_GGUF" | sha256sum -c - || exit 4
mkdir -p /tmp/out-bg
cat > /tmp/record.sh <<'INNER'
source /tmp/src/scripts/gpu/env.sh
for profile in smollm2 phi3-shape; do
  start=$(date +%s)
  python3 -m pytest suites --profile "$profile" --fresh --update-baselines -p no:cacheprovider -rs --durations=10 \
    --junitxml="$OUT/$profile.xml" --report "$OUT/$profile.html" > "$OUT/$profile.log" 2>&1
  echo "pytest suites --profile $profile --fresh --update-baselines: exit $?, $(( $(date +%s) - start )) s" \
    | tee -a "$OUT/$profile.log" >> "$OUT/summary.txt"
  cp "baselines/$profile.json" "$OUT/"
done
touch "$OUT/gpu-done"
INNER
OUT=/tmp/out-bg setsid nohup bash /tmp/record.sh > /tmp/out-bg/record-nohup.txt 2>&1 < /dev/null &
OUT=/tmp/out-bg setsid nohup bash /tmp/src/scripts/gpu/g_tiny_sweep.sh > /tmp/out-bg/sweep-nohup.txt 2>&1 < /dev/null &
sleep 20; tail -3 /tmp/out-bg/*.txt 2>/dev/null; echo "background recording and sweep started"
