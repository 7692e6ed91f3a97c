#!/usr/bin/env bash
# GPU machine, started in the background by a call that also uses the GPU (the tiny profile is a CPU
# profile: CUDA is hidden from it): `pytest suites --yoda-profile tiny` for training seeds 0-9, and once
# with the LoRA scaling halved (lora.lora_alpha=8), each on one CPU thread, in parallel on the machine's
# cores (scripts/gpu/tiny_seeds.txt, run by h_tiny_candidates.sh); JUnit XML and logs into
# $OUT/tiny-sweep/, then the table (tiny_sweep_table.py); touches $OUT/tiny-sweep/done.
JOBS_FILE=/tmp/src/scripts/gpu/tiny_seeds.txt WORKERS="${WORKERS:-11}" exec bash /tmp/src/scripts/gpu/h_tiny_candidates.sh
