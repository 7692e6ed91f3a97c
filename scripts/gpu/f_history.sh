#!/usr/bin/env bash
# GPU machine (carry .gpuh; after a_install.sh unpacked the code snapshot into /tmp/src): the
# frozen-adapter pair of the recipe's history, which a CPU cannot show (trl treats 4-bit weights
# on a CPU as sharded QLoRA and skips the step that freezes). The October 2025 set with trl 0.23.0
# (expected BROKEN: "the trainer froze the LoRA adapters") and trl 0.23.1 (expected passed), the
# structural checks on the tiny profile, variant 2025-10; results and the table come back in $OUT.
#   .gpuh/history-site.tgz: scripts/gpu/build_history_site.sh makes it (carried alone: with .gpu and a GGUF part it would pass the 64 MiB a call carries)
set -uo pipefail
mkdir -p /tmp/hist && tar xzf .gpuh/history-site.tgz -C /tmp/hist
cd /tmp/src
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1
for pair in "trl-0.23.0 0.23.0" "seed-2025-10-cpu 0.23.1"; do
  set -- $pair
  start=$(date +%s)
  PYTHONPATH=/tmp/hist/trl-$2:/tmp/hist/site:/tmp/src python3 -m harness history --python python3 --no-swap \
    --set "$1" --yoda-variant 2025-10 --yoda-profile tiny --results-dir "$OUT/history" --yoda-cache-dir /tmp/yh-history 2>&1 \
    | tee -a "$OUT/history.log"
  echo "$1 (trl $2): $(( $(date +%s) - start )) s" | tee -a "$OUT/history.log"
done
PYTHONPATH=/tmp/hist/site:/tmp/src python3 -m harness matrix "$OUT/history" | tee "$OUT/history-table.md"
