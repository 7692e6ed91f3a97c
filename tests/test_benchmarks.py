"""The benchmark scripts run against the installed libraries (they are not timed here).

The bare recipe is a plain script with no harness around it, so a library change that breaks it
(transformers 5 removed `SFTConfig`'s `logging_dir`, which it passed) is found here, not on a GPU.
"""

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

from harness.recipe import profiles
from harness.recipe.data import bundled_path

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


def test_train_steps_times_the_recipe_and_a_variant(shared_models_dir, capsys):
    train_steps = _benchmark_module("train_steps")
    train_steps.main(["--profile", "tiny", "--epochs", "0.1", "--variant", "lora.lora_dropout=0.0",
                      "--models-dir", str(shared_models_dir)])
    printed = capsys.readouterr().out
    rows = [line for line in printed.splitlines() if line.startswith("| the recipe |")
            or line.startswith("| lora.lora_dropout=0.0 |")]
    assert len(rows) == 2, printed
    steps = [int(row.split("|")[2]) for row in rows]
    assert steps[0] == steps[1] > train_steps.WARMUP_STEPS + train_steps.PROFILED_STEPS
    assert "aten operator calls" in printed and "| aten::mm |" in printed


def test_train_steps_rejects_a_bad_variant_before_training(shared_models_dir):
    train_steps = _benchmark_module("train_steps")
    with pytest.raises(SystemExit, match="--variant 'lora.r': expected KEY=VALUE"):
        train_steps.main(["--profile", "tiny", "--variant", "lora.r"])
    with pytest.raises(SystemExit, match="--variant lora.rank=4: unknown recipe config option 'lora.rank'"):
        train_steps.main(["--profile", "tiny", "--variant", "lora.rank=4", "--models-dir", str(shared_models_dir)])


def test_train_steps_refuses_a_run_too_short_to_measure(shared_models_dir):
    train_steps = _benchmark_module("train_steps")
    with pytest.raises(SystemExit, match="--epochs 0.01 gave 2 steps; this benchmark leaves out the first 10"):
        train_steps.main(["--profile", "tiny", "--epochs", "0.01", "--variant", "lora.lora_dropout=0.0",
                          "--models-dir", str(shared_models_dir)])


def _benchmark_module(name: str):
    """A script of benchmarks/ imported as a module (the folder is not a package)."""
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
