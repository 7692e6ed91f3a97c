"""The benchmark scripts run against the installed libraries (they are not timed here).

The bare recipe is a plain script with no harness around it, so a library change that breaks it
(transformers 5 removed `SFTConfig`'s `logging_dir`, which it passed) is found here, not on a GPU.
"""

import json
import subprocess
import sys
from pathlib import Path

from harness import profiles
from harness.data import bundled_path

ROOT = Path(__file__).resolve().parents[1]


def test_bare_recipe_trains_saves_and_generates(shared_models_dir, tmp_path):
    checkpoint = profiles.PROFILES["tiny"].build_checkpoint(profiles.ModelOptions(models_dir=shared_models_dir))
    done = subprocess.run(
        [sys.executable, "benchmarks/bare_recipe.py", str(checkpoint.path), str(bundled_path()),
         "--epochs", "0.03", "--batch-size", "4", "--seed", "0", "--eval-limit", "3",
         "--output", str(tmp_path / "adapter")],
        cwd=ROOT, capture_output=True, text=True,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert set(summary["phases"]) == {"load", "lora", "data", "train", "save", "generate"}
    assert summary["steps"] > 0 and summary["eval_rows"] == 3
    assert (tmp_path / "adapter" / "adapter_model.safetensors").is_file()
