#!/usr/bin/env bash
# GPU machine, call E: tiny-profile variants on the machine's CPU cores (CUDA hidden, so the CPU
# code paths of bitsandbytes and torch run as on a developer's machine), 8 at a time, 2 threads each.
set -uo pipefail
source /tmp/src/scripts/gpu/env.sh
export CUDA_VISIBLE_DEVICES= OMP_NUM_THREADS=2 MKL_NUM_THREADS=2 YODA_HARNESS_QUIET=1
B="training.per_device_train_batch_size=4"
cat > /tmp/variants.txt <<VARIANTS
e5-s1 $B training.learning_rate=0.003 training.num_train_epochs=5 training.seed=1
e5-s2 $B training.learning_rate=0.003 training.num_train_epochs=5 training.seed=2
e5-s3 $B training.learning_rate=0.003 training.num_train_epochs=5 training.seed=3
h8-s1 $B training.learning_rate=0.003 num_attention_heads=8 training.seed=1
h8-s2 $B training.learning_rate=0.003 num_attention_heads=8 training.seed=2
h8-s3 $B training.learning_rate=0.003 num_attention_heads=8 training.seed=3
b2-s1 training.per_device_train_batch_size=2 training.learning_rate=0.002 training.seed=1
b2-s2 training.per_device_train_batch_size=2 training.learning_rate=0.002 training.seed=2
b2-s3 training.per_device_train_batch_size=2 training.learning_rate=0.002 training.seed=3
l6-s1 $B training.learning_rate=0.003 num_hidden_layers=6 training.seed=1
l6-s2 $B training.learning_rate=0.003 num_hidden_layers=6 training.seed=2
l6-s3 $B training.learning_rate=0.003 num_hidden_layers=6 training.seed=3
e5lr2-s1 $B training.learning_rate=0.002 training.num_train_epochs=5 training.seed=1
e5lr2-s2 $B training.learning_rate=0.002 training.num_train_epochs=5 training.seed=2
base-s3 $B training.learning_rate=0.003 training.seed=3
base-s4 $B training.learning_rate=0.003 training.seed=4
VARIANTS
run_one() { name=$1; shift; EXP_DIR=/tmp/exp-$name timeout 420 python3 scripts/gpu/tiny_variant.py "$@" > "/tmp/sweep-$name.txt" 2>&1; }
export -f run_one
start=$(date +%s)
xargs -P 8 -L 1 bash -c 'run_one "$@"' _ < /tmp/variants.txt
for f in /tmp/sweep-*.txt; do echo "=== $f"; grep -v -i -E "warn|Loading|Tokeniz|Packing|Building|Dropping|gemm_4bit|return fn|state\[|^\{'" "$f" | tail -10; done > "$OUT/tiny_sweep.txt"
echo "sweep wall $(( $(date +%s) - start )) s" >> "$OUT/tiny_sweep.txt"
grep -E "^===|^steps|^tuned" "$OUT/tiny_sweep.txt"
