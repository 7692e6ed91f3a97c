# Sourced by every GPU call after A: the environment the harness runs in there. The code runs
# from /tmp/src, a snapshot unpacked by call A (.gpu/src.tgz), so the calls of one session see one
# version of the code whatever happens to the working tree meanwhile.
[ -d /tmp/site ] && [ -d /tmp/src ] || { echo "/tmp/site or /tmp/src missing: the machine went cold, start again at call A" >&2; exit 3; }
cd /tmp/src
export PYTHONPATH=/tmp/site:/tmp/src PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1
export YODA_HARNESS_CACHE=/tmp/yh YODA_HARNESS_SMOLLM2_GGUF=/tmp/SmolLM2-135M-Instruct.Q4_1.gguf
