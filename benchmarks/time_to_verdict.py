"""Time to the structural verdict: `pytest suites -m yoda_structural --yoda-fresh`, clean and under each of the
recipe's four regressions (injected through the libraries' seams, tests/regressions.py).

    python benchmarks/time_to_verdict.py [--profile tiny] [--full]

Prints a Markdown table: case, wall seconds of the whole pytest process (start-up and the
prepared stage included), exit status, checks failed, and whether a failure names the expected
cause. `--full` adds one cold full run (`pytest suites --yoda-fresh`) for comparison. Each case uses a
fresh cache (the built model checkpoint is shared, as a real cache would be): nothing is reused.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# injection -> words the failure must contain (as in tests/test_regressions.py)
CASES = {
    "": None,
    "untemplated": "chat template was not applied",
    "eos-masked": "the collator masked EOS",
    "packing-bfd": "the packing strategy changed",
    "adapters-frozen": "froze the LoRA adapters",
}


def time_case(profile: str, inject: str, models: Path, extra: list[str]) -> dict:
    cache = Path(tempfile.mkdtemp(prefix="verdict-"))
    env = dict(os.environ, YODA_HARNESS_MODELS_DIR=str(models), YODA_HARNESS_INJECT=inject, YODA_HARNESS_QUIET="1")
    command = [sys.executable, "-m", "pytest", "suites", *extra, "--yoda-profile", profile, "--yoda-fresh",
               "--yoda-cache-dir", str(cache), "-p", "tests.regressions", "-p", "no:cacheprovider", "-q",
               "--yoda-baselines-dir", str(ROOT / "baselines")]
    start = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    failed = re.search(r"(\d+) failed", done.stdout)
    cause = CASES.get(inject)
    return {"case": inject or "clean", "seconds": seconds, "exit": done.returncode,
            "failed": int(failed.group(1)) if failed else 0,
            "named": "-" if cause is None else ("yes" if cause in done.stdout else "NO")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="tiny")
    parser.add_argument("--full", action="store_true", help="also time one cold full run")
    args = parser.parse_args()
    models = Path(tempfile.mkdtemp(prefix="verdict-models-"))
    # Build the checkpoint once first, as a user's cache has it: the cases time the recipe, not the build.
    time_case(args.profile, "", models, ["-m", "yoda_structural"])
    rows = [time_case(args.profile, inject, models, ["-m", "yoda_structural"]) for inject in CASES]
    if args.full:
        rows.append(dict(time_case(args.profile, "", models, []), case="clean, full run (no -m)"))
    print(f"device: {platform.machine()} CPU, {os.cpu_count()} cores (torch CPU); profile {args.profile}\n")
    print("| case | wall s | exit | checks failed | cause named |")
    print("|---|---|---|---|---|")
    for row in rows:
        print(f"| {row['case']} | {row['seconds']:.1f} | {row['exit']} | {row['failed']} | {row['named']} |")


if __name__ == "__main__":
    main()
