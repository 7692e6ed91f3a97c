#!/usr/bin/env bash
# GPU machine, one foreground call (carry .gpu; no GGUF needed): unpack the libraries and the code
# snapshot (call A's work), then screen candidate `tiny` settings on the H200 itself, WORKERS runs at
# a time sharing the GPU, until DEADLINE_S. A screen only: CUDA's kernels and RNG, not the CPU code
# paths the profile is for, so a candidate that screens well is then confirmed on CPUs.
set -euo pipefail
mkdir -p /tmp/site /tmp/src && tar xzf .gpu/site.tgz -C /tmp/site && tar xzf .gpu/src.tgz -C /tmp/src
nproc; nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
TINY_ON_GPU=1 WORKERS="${WORKERS:-16}" DEADLINE_S="${DEADLINE_S:-480}" \
  JOBS_FILE="/tmp/src/scripts/gpu/${JOBS:-tiny_screen_capacity.txt}" bash /tmp/src/scripts/gpu/h_tiny_candidates.sh
# Only a few files come back from a call: the table, the status lines, and the JUnit files packed.
rm -rf /tmp/tiny-sweep-done; mv "$OUT/tiny-sweep" /tmp/tiny-sweep-done
cp /tmp/tiny-sweep-done/table.md /tmp/tiny-sweep-done/status.txt "$OUT/"
tar czf "$OUT/junit.tgz" -C /tmp/tiny-sweep-done $(cd /tmp/tiny-sweep-done && ls *.xml)
cat "$OUT/status.txt"
