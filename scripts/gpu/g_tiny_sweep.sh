#!/usr/bin/env bash
# GPU machine, started in the background by a call that also uses the GPU (the tiny profile is a CPU
# profile: CUDA is hidden from it): `pytest suites --yoda-profile tiny` for training seeds 0-9, and once with
# the LoRA scaling halved (lora.lora_alpha=8), each on one CPU thread, in parallel on the machine's
# cores; JUnit XML and logs into $OUT/tiny-sweep/, then python3 scripts/gpu/tiny_sweep_table.py prints
# the table (invariants BROKEN per seed, stop rate, leaks, BLEU, loss). Touches $OUT/tiny-sweep/done.
set -uo pipefail
source /tmp/src/scripts/gpu/env.sh
out="$OUT/tiny-sweep"; mkdir -p "$out"
export CUDA_VISIBLE_DEVICES= OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 YODA_HARNESS_MODELS_DIR=/tmp/yh-tiny-models
# Build the tiny checkpoint once: parallel runs must not race to build it.
python3 -c "from harness import profiles; o = profiles.ModelOptions(models_dir=__import__('pathlib').Path('$YODA_HARNESS_MODELS_DIR')); profiles.PROFILES['tiny'].build_checkpoint(o)"
run_one() {  # NAME OVERRIDE...
  local name=$1; shift
  local args=()
  for override in "$@"; do args+=(--yoda-override "$override"); done
  YODA_HARNESS_CACHE="/tmp/yh-sweep-$name" YODA_HARNESS_QUIET=1 python3 -m pytest suites --yoda-profile tiny \
    "${args[@]}" -p no:cacheprovider -q --junitxml="$out/$name.xml" > "$out/$name.log" 2>&1
  echo "$name exit $?" >> "$out/status.txt"
}
for seed in 0 1 2 3 4 5 6 7 8 9; do run_one "seed$seed" "training.seed=$seed" & done
run_one alpha8 "lora.lora_alpha=8" &
wait
python3 scripts/gpu/tiny_sweep_table.py "$out" | tee "$out/table.md"
touch "$out/done"
