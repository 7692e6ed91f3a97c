#!/usr/bin/env bash
# Here (a developer's CPU): a tiny-profile candidate over several seeds, every check, for issue 13
# item 7 (docs/tiny.md): another shape (YODA_TINY_SHAPE, unset: the shipped one) and/or recipe
# overrides (OVERRIDES, --yoda-override words), under the project's environment (./dev) or another
# version set's (PYTHON: that virtual environment's python, the harness importable from it). THREADS
# threads a run (default 1), PARALLEL runs at a time (default 2: this machine's cores). Measured here
# on 2026-12-06 (seed-2024-cpu, every check): THREADS=2 PARALLEL=1, 274 s a run; the defaults, two
# runs of one thread side by side, 1,594 and 1,646 s: use THREADS=2 PARALLEL=1 on two cores.
# JUnit XML and logs into OUT_DIR, then scripts/gpu/tiny_sweep_table.py's table.
#   YODA_TINY_SHAPE=12,256,1024,4 SEEDS="3 4 5" scripts/tiny_shape_sweep.sh [OUT_DIR]
#   OVERRIDES="training.learning_rate=2e-3" NAME=lr2e-3 SEEDS="2 3" scripts/tiny_shape_sweep.sh [OUT_DIR]
#   PYTHON=/tmp/venv-2024/bin/python NAME=h24 scripts/tiny_shape_sweep.sh [OUT_DIR]
set -uo pipefail
cd "$(git rev-parse --show-toplevel)"
shape="${YODA_TINY_SHAPE:-}"
out="${1:-/tmp/tiny-shape-sweep}"; mkdir -p "$out"
export OUT_DIR="$out" OVERRIDES="${OVERRIDES:-}" NAME="${NAME:-${shape:+d${shape//,/x}}}"; NAME="${NAME:-tiny}" OMP_NUM_THREADS="${THREADS:-1}" MKL_NUM_THREADS="${THREADS:-1}"
[ -n "$shape" ] && export YODA_TINY_SHAPE="$shape"
export PYTHON="${PYTHON:-./dev python}"
export YODA_HARNESS_MODELS_DIR="${YODA_HARNESS_MODELS_DIR:-/tmp/yh-tiny-models}" SWEEP_CACHES="$out/cache-{name}/runs"
# The checkpoint first, so the parallel runs never race to build it.
$PYTHON -c "import os, pathlib; from harness import profiles; o = profiles.ModelOptions(models_dir=pathlib.Path(os.environ['YODA_HARNESS_MODELS_DIR'])); profiles.PROFILES['tiny'].build_checkpoint(o)"
run_seed() {
  local name="$NAME-s$1" start extra=(); start=$(date +%s)
  for override in $OVERRIDES; do extra+=(--yoda-override "$override"); done
  YODA_HARNESS_CACHE="$OUT_DIR/cache-$name" YODA_HARNESS_QUIET=1 $PYTHON -m pytest suites --yoda-profile tiny \
    --yoda-override "training.seed=$1" "${extra[@]}" -p no:cacheprovider -q --junitxml="$OUT_DIR/$name.xml" > "$OUT_DIR/$name.log" 2>&1
  echo "$name exit $? $(( $(date +%s) - start )) s" >> "$OUT_DIR/status.txt"
}
export -f run_seed
printf '%s\n' ${SEEDS:-0 1 2 3 4 5 6 7 8 9} | xargs -P "${PARALLEL:-2}" -I{} bash -c 'run_seed {}'
$PYTHON scripts/gpu/tiny_sweep_table.py "$out" | tee "$out/table.md"
