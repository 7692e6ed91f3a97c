#!/usr/bin/env bash
# GPU machine, call B after a_install.sh (carry .gguf2): record the smollm2 baseline over two seeds
# with each seed's run in its own process, at the same time on the one GPU (each process's peak GPU
# memory is its own run's; smollm2 leaves the H200 mostly idle), then the recording session, which
# reuses both runs: `pytest suites --yoda-update-baselines --yoda-baseline-seeds 2` with the report.
set -uo pipefail
root=$PWD
source /tmp/src/scripts/gpu/env.sh
[ -f "$YODA_HARNESS_SMOLLM2_GGUF" ] || cat /tmp/part_* "$root"/.gguf2/part_* > "$YODA_HARNESS_SMOLLM2_GGUF"
echo "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53  $YODA_HARNESS_SMOLLM2_GGUF" | sha256sum -c - || exit 4
python3 -c "from harness import profiles; profiles.PROFILES['smollm2'].build_checkpoint(profiles.ModelOptions(models_dir=__import__('pathlib').Path('/tmp/yh/models'), smollm2_gguf='$YODA_HARNESS_SMOLLM2_GGUF'))" 2>&1 | tail -2
start=$(date +%s)
YODA_HARNESS_QUIET=1 python3 -m pytest suites --yoda-profile smollm2 --yoda-fresh -p no:cacheprovider -q --junitxml="$OUT/seed42.xml" > "$OUT/seed42.log" 2>&1 &
YODA_HARNESS_QUIET=1 python3 -m harness run --profile smollm2 --fresh --override training.seed=43 > "$OUT/seed43.log" 2>&1 &
wait
echo "both seeds (in parallel): $(( $(date +%s) - start )) s"; tail -2 "$OUT/seed42.log"; tail -9 "$OUT/seed43.log"
start=$(date +%s)
python3 -m pytest suites --yoda-profile smollm2 --yoda-update-baselines --yoda-baseline-seeds 2 -p no:cacheprovider -q -rs \
  --junitxml="$OUT/smollm2.xml" --yoda-report "$OUT/smollm2.html" > "$OUT/record.log" 2>&1
echo "recording session: exit $?, $(( $(date +%s) - start )) s"; tail -25 "$OUT/record.log"
cp baselines/smollm2.json "$OUT/"
