#!/usr/bin/env bash
# GPU machine, call A (carry .gpu and .gguf1; run from the repo root): unpack the libraries the image
# lacks into /tmp/site and the code snapshot into /tmp/src, park the first part of the SmolLM2 GGUF,
# and report what the image has.
#   .gpu/site.tgz: scripts/gpu/build_site.sh makes it
#   .gpu/src.tgz:  the project as it is to run (scripts/gpu/snapshot.sh makes it)
set -euo pipefail
mkdir -p /tmp/site /tmp/src && tar xzf .gpu/site.tgz -C /tmp/site && tar xzf .gpu/src.tgz -C /tmp/src
cp .gguf1/part_* /tmp/
python3 -m pip list 2>/dev/null | grep -i -E "^(torch|accelerate|huggingface.hub|pyarrow|safetensors|numpy|jinja2|matplotlib|hypothesis|pytest) " || true
nproc; free -g | head -2
source /tmp/src/scripts/gpu/env.sh
python3 -m harness doctor
