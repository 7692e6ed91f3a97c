#!/usr/bin/env bash
# Here, once: pack the October 2025 version set for the GPU (Python 3.12 wheels, unpacked), with
# bitsandbytes 0.50.2 (only its CUDA 13 library: the image's CUDA) and trl 0.23.0 and 0.23.1 each
# in a directory of its own, into .gpuh/history-site.tgz (f_history.sh runs the frozen-adapter pair).
# SET=2024: the 2024 set as this CPU runs it (seed-2024-cpu: transformers 4.53.3, peft 0.13.2,
# trl 0.12.1; trl 0.14.0 and 0.16.1 in directories of their own) into .gpuh/history-site-2024.tgz,
# for the tiny seed sweeps under that set and the packing check on the trl releases around it.
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
work=$(mktemp -d)
download() { python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_24_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 -d "$@"; }
if [ "${SET:-2025-10}" = 2024 ]; then  # seed-2024-cpu (versions.toml), trl 0.12.1 in the site itself
  download "$work/whl" transformers==4.53.3 peft==0.13.2 trl==0.12.1 accelerate==1.10.0 datasets==3.1.0 \
    huggingface-hub==0.34.4 safetensors==0.4.5 bitsandbytes==0.50.2 tokenizers==0.21.4 dill==0.3.8 \
    multiprocess==0.70.16 fsspec==2024.9.0 sacrebleu==2.5.1 gguf==0.17.1 aiohttp==3.11.18 aiohappyeyeballs==2.6.1 \
    aiosignal==1.3.2 frozenlist==1.6.0 multidict==6.4.3 propcache==0.3.1 yarl==1.20.0 attrs==25.3.0
  mkdir -p "$work/site" .gpuh
  for w in "$work"/whl/*.whl; do unzip -q -o "$w" -d "$work/site"; done
  find "$work/site/bitsandbytes" -name 'libbitsandbytes_*.so' ! -name '*cuda130*' -delete
  for v in 0.14.0 0.16.1; do  # trl-0.14.0 / trl-0.16.1 (versions.toml): the same site, trl first on PYTHONPATH
    download "$work/trl-$v-whl" "trl==$v"
    mkdir -p "$work/trl-$v" && unzip -q -o "$work/trl-$v-whl"/trl-*.whl -d "$work/trl-$v"
  done
  tar czf .gpuh/history-site-2024.tgz -C "$work" site trl-0.14.0 trl-0.16.1
  echo ".gpuh/history-site-2024.tgz: $(du -h .gpuh/history-site-2024.tgz | cut -f1)"
  exit 0
fi
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
