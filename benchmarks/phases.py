"""Phase breakdown, training throughput and peak memory of finished runs, as a Markdown table.

    python benchmarks/phases.py RUN_DIR [RUN_DIR ...]
"""

import sys
from pathlib import Path

from harness import env, files

PHASES = ("checkpoint", "load", "lora", "data", "trainer", "train", "save", "generate", "reload", "score")


def row(run_dir: Path) -> str:
    manifest = files.read_json(run_dir / "run.json")
    training = manifest["training"]
    seconds = manifest["phase_seconds"]
    tokens = training["packed_rows"] * manifest["config"]["training"]["max_length"] * \
        manifest["config"]["training"]["num_train_epochs"]
    throughput = tokens / training["train_runtime"] if training.get("train_runtime") else float("nan")
    peak = training.get("peak_gpu_allocated_bytes")
    peak_text = f"{peak / 1e6:.0f} MB GPU" if peak else f"{training['peak_rss_bytes'] / 1e6:.0f} MB RSS"
    cells = [manifest["profile"], env.device_kind(manifest["environment"])]
    cells += [f"{seconds.get(p, 0):.1f}" for p in PHASES]
    cells += [f"{sum(seconds.values()):.1f}", f"{training['global_step']}", f"{throughput:,.0f}", peak_text]
    return "| " + " | ".join(cells) + " |"


def main(paths: list[str]) -> None:
    header = ["profile", "device", *PHASES, "total s", "steps", "train tokens/s", "peak memory"]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for path in paths:
        print(row(Path(path)))


if __name__ == "__main__":
    main(sys.argv[1:])
