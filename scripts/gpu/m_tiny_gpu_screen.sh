#!/usr/bin/env bash
# GPU machine, one foreground call (carry .gpu, and .gpuh for the historical sets; no GGUF needed):
# unpack the libraries and the code snapshot (call A's work; a later call on the warm machine that
# carries nothing reuses them), then run `tiny` jobs WORKERS at a time until DEADLINE_S: a screen of
# candidate settings on the H200 itself (TINY_ON_GPU=1, the default: CUDA's kernels and RNG, not the
# CPU code paths the profile is for, so a candidate that screens well is then confirmed on CPUs), or
# with TINY_ON_GPU=0 on the machine's CPU cores, one thread a run (the seed sweeps under each
# version set: /tmp/h24 holds the 2024 set, /tmp/hist the October 2025 one; build_history_site.sh).
set -euo pipefail
if [ -f .gpu/site.tgz ]; then
  mkdir -p /tmp/site /tmp/src && tar xzf .gpu/site.tgz -C /tmp/site && tar xzf .gpu/src.tgz -C /tmp/src
fi
if [ -f .gpuh/history-site-2024.tgz ]; then mkdir -p /tmp/h24 && tar xzf .gpuh/history-site-2024.tgz -C /tmp/h24; fi
if [ -f .gpuh/history-site.tgz ]; then mkdir -p /tmp/hist && tar xzf .gpuh/history-site.tgz -C /tmp/hist; fi
nproc; nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
TINY_ON_GPU="${TINY_ON_GPU:-1}" WORKERS="${WORKERS:-16}" DEADLINE_S="${DEADLINE_S:-480}" \
  JOBS_FILE="/tmp/src/scripts/gpu/${JOBS:-tiny_screen_capacity.txt}" bash /tmp/src/scripts/gpu/h_tiny_candidates.sh
# Only a few files come back from a call: the table, the status lines, and the JUnit files packed.
rm -rf /tmp/tiny-sweep-done; mv "$OUT/tiny-sweep" /tmp/tiny-sweep-done
cp /tmp/tiny-sweep-done/table.md /tmp/tiny-sweep-done/status.txt "$OUT/"
tar czf "$OUT/junit.tgz" -C /tmp/tiny-sweep-done $(cd /tmp/tiny-sweep-done && ls *.xml)
cat "$OUT/status.txt"
