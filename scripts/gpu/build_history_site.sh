#!/usr/bin/env bash
# Here, once: pack the October 2025 version set for the GPU (Python 3.12 wheels, unpacked), with
# bitsandbytes 0.50.2 (only its CUDA 13 library: the image's CUDA) and trl 0.23.0 and 0.23.1 each
# in a directory of its own, into .gpuh/history-site.tgz (f_history.sh runs the frozen-adapter pair).
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
work=$(mktemp -d)
download() { python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_24_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 -d "$@"; }
download "$work/whl" transformers==4.56.1 peft==0.17.0 accelerate==1.10.0 datasets==4.0.0 huggingface-hub==0.34.4 \
  safetensors==0.6.2 bitsandbytes==0.50.2 tokenizers==0.22.1 dill==0.3.8 multiprocess==0.70.16 sacrebleu==2.5.1 gguf==0.17.1
mkdir -p "$work/site" .gpuh
for w in "$work"/whl/*.whl; do unzip -q -o "$w" -d "$work/site"; done
find "$work/site/bitsandbytes" -name 'libbitsandbytes_*.so' ! -name '*cuda130*' -delete
for v in 0.23.0 0.23.1; do
  download "$work/trl-$v-whl" "trl==$v"
  mkdir -p "$work/trl-$v" && unzip -q -o "$work/trl-$v-whl"/trl-*.whl -d "$work/trl-$v"
done
tar czf .gpuh/history-site.tgz -C "$work" site trl-0.23.0 trl-0.23.1
echo ".gpuh/history-site.tgz: $(du -h .gpuh/history-site.tgz | cut -f1)"
