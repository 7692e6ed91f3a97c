#!/usr/bin/env bash
# Here, once: pack the libraries the GPU image lacks (the 'current' version set, Python 3.12 wheels)
# into .gpu/site.tgz, unpacked, with only bitsandbytes' CUDA 13 library (the image's CUDA), so the
# call that carries it stays under the 64 MiB a call may carry.
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
work=$(mktemp -d)
pin() { grep -i -E "^$1==" requirements/current.txt; }
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_24_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 -d "$work/whl" \
  $(for p in transformers peft trl bitsandbytes datasets tokenizers gguf dill multiprocess sacrebleu; do pin $p; done)
mkdir -p "$work/site" .gpu
for w in "$work"/whl/*.whl; do unzip -q -o "$w" -d "$work/site"; done
find "$work/site/bitsandbytes" -name 'libbitsandbytes_*.so' ! -name '*cuda130*' -delete
tar czf .gpu/site.tgz -C "$work/site" .
echo ".gpu/site.tgz: $(du -h .gpu/site.tgz | cut -f1)"
