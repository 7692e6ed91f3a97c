#!/usr/bin/env bash
# GPU machine, call A (carry .gpu and .gguf1; run from the repo root): unpack the libraries the image
# lacks into /tmp/site and the code snapshot into /tmp/src, park the first part of the SmolLM2 GGUF,
# report what the image has, and start the phi3-shape suites in the background (their own process
# session, so they outlive this call) while call B brings the rest of the GGUF.
#   .gpu/site.tgz: transformers, peft, trl, bitsandbytes (CUDA 13 libraries only), datasets, tokenizers,
#                  gguf, dill, multiprocess, sacrebleu: unpacked wheels of the 'current' version set
#   .gpu/src.tgz:  the project as it is to run (scripts/gpu/snapshot.sh makes it)
set -euo pipefail
mkdir -p /tmp/site /tmp/src && tar xzf .gpu/site.tgz -C /tmp/site && tar xzf .gpu/src.tgz -C /tmp/src
cp .gguf1/part_aa /tmp/part_aa
python3 -m pip list 2>/dev/null | grep -i -E "^(torch|accelerate|huggingface.hub|pyarrow|safetensors|numpy|jinja2|matplotlib|hypothesis|pytest) " || true
nproc; free -g | head -2
source /tmp/src/scripts/gpu/env.sh
python3 -m harness doctor
mkdir -p /tmp/out-phi3
OUT=/tmp/out-phi3 setsid nohup bash /tmp/src/scripts/gpu/c_phi3shape.sh > /tmp/out-phi3/nohup.txt 2>&1 < /dev/null &
echo "phi3-shape suites started in the background"
