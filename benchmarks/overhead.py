"""Harness overhead: the bare recipe script vs `pytest suites` on the same profile, same machine.

    python benchmarks/overhead.py --profile smollm2 [--epochs N] [--smollm2-gguf PATH]

Runs (1) benchmarks/bare_recipe.py on the profile's checkpoint and data, (2) `pytest suites`
cold (fresh cache dir, `--yoda-fresh`), (3) `pytest suites` again on the cached run; prints a table
with the wall times and the ratio (2)/(1). Both sides train with the same epochs.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def wall(command: list[str], env: dict, accepted=(0,)) -> tuple[float, str]:
    """Seconds `command` took and its stdout; any exit status outside `accepted` stops the benchmark."""
    start = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode not in accepted:
        sys.stderr.write(done.stdout[-3000:] + done.stderr[-3000:])
        raise SystemExit(f"{' '.join(command[:3])} ... exited {done.returncode}: no timing")
    return seconds, done.stdout


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--profile", default="smollm2")
    parser.add_argument("--epochs", type=float, default=None, help="override the profile's epochs on both sides")
    parser.add_argument("--smollm2-gguf", default=os.environ.get("YODA_HARNESS_SMOLLM2_GGUF"))
    args = parser.parse_args()

    from harness.recipe import profiles
    from harness.recipe.data import bundled_path

    cache = Path(tempfile.mkdtemp(prefix="overhead-"))
    env = dict(os.environ, YODA_HARNESS_CACHE=str(cache), YODA_HARNESS_QUIET="1")
    profile = profiles.PROFILES[args.profile]
    config = profile.recipe_config()
    epochs = args.epochs or config.training.num_train_epochs
    options = profiles.ModelOptions(models_dir=cache / "models", smollm2_gguf=args.smollm2_gguf)
    checkpoint = profile.build_checkpoint(options)  # built once, outside both timings

    bare_s, bare_out = wall([sys.executable, "benchmarks/bare_recipe.py", str(checkpoint.path), str(bundled_path()),
                             "--targets", ",".join(config.lora.target_modules), "--epochs", str(epochs),
                             "--lr", str(config.training.learning_rate),
                             "--batch-size", str(config.training.per_device_train_batch_size),
                             "--seed", str(config.training.seed)], env)
    suite = [sys.executable, "-m", "pytest", "suites", "-q", "-p", "no:cacheprovider", "--yoda-profile", args.profile,
             "--yoda-override", f"training.num_train_epochs={json.dumps(epochs)}"]
    if args.smollm2_gguf:
        suite += ["--yoda-smollm2-gguf", args.smollm2_gguf]
    # pytest exits 1 when a check fails: the run still did all its work, so it is still a timing.
    cold_s, cold_out = wall(suite + ["--yoda-fresh"], env, accepted=(0, 1))
    cached_s, _ = wall(suite, env, accepted=(0, 1))
    print("| profile | epochs | bare recipe s | pytest suites cold s | ratio | suites cached s |")
    print("|---|---|---|---|---|---|")
    print(f"| {args.profile} | {epochs:g} | {bare_s:.1f} | {cold_s:.1f} | {cold_s / bare_s:.3f} | {cached_s:.1f} |")
    print(json.dumps({"profile": args.profile, "epochs": epochs, "bare_s": round(bare_s, 2),
                      "suites_cold_s": round(cold_s, 2), "ratio": round(cold_s / bare_s, 3),
                      "suites_cached_s": round(cached_s, 2), "bare": json.loads(bare_out.strip().splitlines()[-1]),
                      "suites_tail": cold_out.strip().splitlines()[-1]}))


if __name__ == "__main__":
    main()
