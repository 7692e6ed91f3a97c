"""Which of MKL's code paths give the same sgemm results on this CPU as on another: prints, for each
`MKL_CBWR` branch, a digest of two products (the tiny profile's LM-head shape and an odd one) and
the seconds of five head products, with torch's dispatch pinned to AVX2 and 2 threads as tiny runs.
Compare the digests across machines (docs/devices.md); each branch runs in a fresh process, since
MKL reads the variable once.

    python benchmarks/mkl_branches.py
"""

from __future__ import annotations

import os
import subprocess
import sys

BRANCHES = ("", "AVX2", "AVX512", "AVX2,STRICT", "COMPATIBLE")
PROBE = """
import hashlib, time, torch
torch.manual_seed(0); torch.set_num_threads(2)
head_in, head = torch.randn(256, 1024), torch.randn(1024, 32064)
odd_a, odd_b = torch.randn(777, 333), torch.randn(333, 555)
start = time.perf_counter()
for _ in range(5):
    product = head_in @ head
seconds = time.perf_counter() - start
digest = hashlib.sha256(product.numpy().tobytes() + (odd_a @ odd_b).numpy().tobytes()).hexdigest()[:12]
print(torch.backends.cpu.get_cpu_capability(), digest, f"{seconds:.2f}")
"""


def main() -> int:
    print(f"{'MKL_CBWR':<14} {'dispatch':<9} {'digest':<13} seconds")
    for branch in BRANCHES:
        env = dict(os.environ, ATEN_CPU_CAPABILITY="avx2")
        env.pop("MKL_CBWR", None)
        if branch:
            env["MKL_CBWR"] = branch
        done = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True)
        print(f"{branch or '(unset)':<14} {done.stdout.strip() or done.stderr.strip()[-200:]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
