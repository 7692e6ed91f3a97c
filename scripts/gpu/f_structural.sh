#!/usr/bin/env bash
# GPU machine, call B of a structural-timing lease (after a_install.sh; carry .gguf2; run from the repo
# root): join and check the GGUF, then time the structural verdict, `pytest suites -m yoda_structural --yoda-fresh`
# (the whole pytest process), for smollm2 cold (GGUF conversion included) and with the converted
# checkpoint cached, under each of the recipe's four regressions injected (cached checkpoint), and for
# phi3-shape cold (checkpoint build included) and cached. Logs and timings.tsv into $OUT.
set -uo pipefail
root=$PWD
source /tmp/src/scripts/gpu/env.sh
[ -f "$YODA_HARNESS_SMOLLM2_GGUF" ] || cat /tmp/part_* "$root"/.gguf2/part_* > "$YODA_HARNESS_SMOLLM2_GGUF"
echo "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53  $YODA_HARNESS_SMOLLM2_GGUF" | sha256sum -c - || exit 4
timed() {  # NAME COMMAND...: run, then one line: name, wall seconds, exit status, pytest's last line
  local name=$1; shift
  local start; start=$(date +%s%N)
  "$@" > "$OUT/$name.log" 2>&1
  local status=$? end; end=$(date +%s%N)
  printf '%s\t%d.%01d s\texit %s\t%s\n' "$name" $(( (end - start) / 1000000000 )) $(( (end - start) / 100000000 % 10 )) \
    "$status" "$(grep -E 'passed|failed|error' "$OUT/$name.log" | tail -1)" | tee -a "$OUT/timings.tsv"
}
structural=(python3 -m pytest suites -m yoda_structural --yoda-fresh -p no:cacheprovider -q)
timed smollm2-structural-cold "${structural[@]}" --yoda-profile smollm2
timed smollm2-structural-cached "${structural[@]}" --yoda-profile smollm2
for regression in untemplated eos-masked packing-bfd adapters-frozen; do
  YODA_HARNESS_INJECT=$regression timed "smollm2-structural-$regression" "${structural[@]}" --yoda-profile smollm2 \
    -p tests.regressions
done
timed phi3shape-structural-cold "${structural[@]}" --yoda-profile phi3-shape
timed phi3shape-structural-cached "${structural[@]}" --yoda-profile phi3-shape
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee -a "$OUT/timings.tsv"
