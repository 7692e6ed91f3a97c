#!/usr/bin/env bash
# GPU machine, in the background (setsid, started by call A; CUDA hidden): candidate `tiny` settings
# for issue 13's "9 seeds of 10 learn" target, each as `pytest suites --yoda-profile tiny --yoda-override ...`
# on one CPU thread, WORKERS at a time on the machine's cores (the GPU stays free for smollm2).
# One line of $JOBS_FILE (default scripts/gpu/tiny_candidates.txt) per run: NAME OVERRIDE...; the longest first. JUnit XML and logs into
# $OUT/tiny-sweep/, then the table (scripts/gpu/tiny_sweep_table.py); touches $OUT/tiny-sweep/done.
# TINY_ON_GPU=1 keeps the GPU visible (a screen: many runs share the H200, CUDA kernels, not the CPU
# paths the profile is for); DEADLINE_S stops the runs still going after that many seconds, so a
# foreground call returns its table inside the device's per-call limit.
# A word `env:NAME=VALUE` on a jobs line sets NAME for that run only (an experiment knob such as
# YODA_TINY_SHAPE, or PYTHONPATH with another version set first); the checkpoint of each distinct
# environment is built once before the runs start, so parallel runs never race to build it.
set -uo pipefail
source /tmp/src/scripts/gpu/env.sh
out="$OUT/tiny-sweep"; mkdir -p "$out"
export CUDA_VISIBLE_DEVICES="$([ "${TINY_ON_GPU:-0}" = 1 ] && echo 0)" OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 YODA_HARNESS_MODELS_DIR=/tmp/yh-tiny-models
build_checkpoint() {  # ENV_WORD...: the tiny checkpoint for one environment, before the runs share its models dir
  env "$@" python3 -c "import os, pathlib; from harness import profiles; o = profiles.ModelOptions(models_dir=pathlib.Path(os.environ['YODA_HARNESS_MODELS_DIR'])); profiles.PROFILES['tiny'].build_checkpoint(o)"
}
jobs_file="${JOBS_FILE:-/tmp/src/scripts/gpu/tiny_candidates.txt}"
build_checkpoint
grep -v -E '^\s*(#|$)' "$jobs_file" | while read -r line; do
  echo "$line" | tr ' ' '\n' | grep '^env:' | sed 's/^env://' | paste -sd ' '
done | sort -u | while read -r envs; do [ -n "$envs" ] && build_checkpoint $envs; done
run_one() {  # NAME OVERRIDE...
  local name=$1; shift
  local args=()
  local envs=()  # an `env:NAME=VALUE` word sets NAME for that run only (experiment knobs such as YODA_TINY_SHAPE)
  for override in "$@"; do
    case $override in env:*) envs+=("${override#env:}") ;; *) args+=(--yoda-override "$override") ;; esac
  done
  local start; start=$(date +%s)
  env "${envs[@]}" YODA_HARNESS_CACHE="/tmp/yh-sweep-$name" YODA_HARNESS_QUIET=1 python3 -m pytest suites --yoda-profile tiny \
    "${args[@]}" -p no:cacheprovider -q --junitxml="$out/$name.xml" > "$out/$name.log" 2>&1
  echo "$name exit $? $(( $(date +%s) - start )) s" >> "$out/status.txt"
}
export -f run_one; export out
grep -v -E '^\s*(#|$)' "$jobs_file" \
  | timeout --kill-after=10 "${DEADLINE_S:-86400}" xargs -P "${WORKERS:-13}" -L 1 bash -c 'run_one "$@"' _
echo "runs finished: $(wc -l < "$out/status.txt" 2>/dev/null || echo 0)" >> "$out/status.txt"
python3 scripts/gpu/tiny_sweep_table.py "$out" | tee "$out/table.md"
touch "$out/done"
