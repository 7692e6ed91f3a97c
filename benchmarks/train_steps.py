"""Where a training step's time goes: the recipe's trainer, as is and with one setting changed.

    python benchmarks/train_steps.py --profile smollm2 [--epochs 1] [--variant KEY=VALUE ...]

Training is most of a recipe run (80 % of the smollm2 suites on a GPU), so this benchmark times the
trainer the harness builds (qlora_sft.load_quantized_model ... qlora_sft.build_trainer) for a short run
per variant: the recipe as the profile has it, then each `--variant` (a dotted config override, as
`--override` takes it; the defaults: four of the recipe's settings that could cost time). It prints
seconds per optimizer step (the first steps, which warm caches and allocators, are left out) and,
for the recipe as is, a torch.profiler summary of a few steps: operator calls and CUDA kernels per
step, the GPU's busy share of the wall time, and the operators that take the most CPU time. The
variants are measurements, not suggestions: the harness tests the recipe as written.
"""

import argparse
import gc
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

DEFAULT_VARIANTS = (
    "training.gradient_checkpointing=false",
    'quantization.bnb_4bit_compute_dtype="bfloat16"',
    'training.optim="adamw_torch"',
    "lora.lora_dropout=0.0",
)
WARMUP_STEPS = 5
PROFILED_STEPS = 5


def step_timer_callback(times: list[float]):
    from transformers import TrainerCallback

    class StepTimer(TrainerCallback):
        """Wall-clock time of every optimizer step, synchronised so queued GPU work is counted."""

        def on_step_begin(self, args, state, control, **kwargs):
            _synchronize()
            self.started = time.perf_counter()

        def on_step_end(self, args, state, control, **kwargs):
            _synchronize()
            times.append(time.perf_counter() - self.started)

    return StepTimer()


def profiler_callback(summary: dict):
    import torch
    from transformers import TrainerCallback

    class StepProfiler(TrainerCallback):
        """torch.profiler over PROFILED_STEPS steps after the warm-up ones."""

        def on_step_begin(self, args, state, control, **kwargs):
            if state.global_step == WARMUP_STEPS:
                activities = [torch.profiler.ProfilerActivity.CPU]
                if torch.cuda.is_available():
                    activities.append(torch.profiler.ProfilerActivity.CUDA)
                _synchronize()
                self.profiler = torch.profiler.profile(activities=activities)
                self.profiler.__enter__()
                self.started = time.perf_counter()

        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step == WARMUP_STEPS + PROFILED_STEPS and hasattr(self, "profiler"):
                _synchronize()
                wall = time.perf_counter() - self.started
                self.profiler.__exit__(None, None, None)
                summary.update(summarize(self.profiler, wall, PROFILED_STEPS))

    return StepProfiler()


def summarize(profiler, wall_s: float, steps: int) -> dict:
    """Per-step operator and kernel counts, GPU busy share, and the top operators by CPU time."""
    from torch.autograd import DeviceType

    operators = [e for e in profiler.key_averages() if e.key.startswith("aten::")]
    # What ran on the GPU: kernels and device copies (runtime API entries, named cuda*, are the host's).
    kernels = [e for e in profiler.events() if e.device_type == DeviceType.CUDA and not e.key.startswith("cuda")]
    gpu_busy_us = sum(k.device_time_total for k in kernels)
    top = sorted(operators, key=lambda e: e.self_cpu_time_total, reverse=True)[:8]
    return {
        "wall_s_per_step": wall_s / steps,
        "operators_per_step": sum(e.count for e in operators) / steps,
        "kernels_per_step": len(kernels) / steps,
        "gpu_busy_share": gpu_busy_us / 1e6 / wall_s if kernels else None,
        "top_cpu_operators": [(e.key, e.count // steps, e.self_cpu_time_total / 1e3 / steps) for e in top],
    }


def time_variant(profile, options, overrides: dict, epochs: float, profile_steps: bool) -> dict:
    """Build the recipe's trainer with `overrides`, train `epochs`, and time its steps."""
    from harness.recipe import qlora_sft

    config = profile.recipe_config().with_overrides({**overrides, "training.num_train_epochs": epochs})
    checkpoint = profile.build_checkpoint(options)
    model, tokenizer = qlora_sft.load_quantized_model(checkpoint, config)
    qlora_sft.prepare_tokenizer(tokenizer)
    peft_model = qlora_sft.add_adapters(model, config)
    split = qlora_sft.load_data(config)
    with tempfile.TemporaryDirectory() as out:
        trainer = qlora_sft.build_trainer(peft_model, tokenizer, qlora_sft.to_training_dataset(split.train, config),
                                       config, Path(out))
        times, summary = [], {}
        trainer.add_callback(step_timer_callback(times))
        if profile_steps:
            trainer.add_callback(profiler_callback(summary))
        qlora_sft.train(trainer)
    del trainer, peft_model, model
    gc.collect()
    _empty_cuda_cache()
    skipped = WARMUP_STEPS + (PROFILED_STEPS if profile_steps else 0)
    if len(times) <= skipped:  # the figures would be warm-up steps, or missing: not a measurement
        raise SystemExit(f"--epochs {epochs:g} gave {len(times)} steps; this benchmark leaves out the first "
                         f"{skipped}: train longer")
    measured = times[skipped:]
    return {"steps": len(times), "median_s_per_step": statistics.median(measured), "profile": summary}


def main(argv=None):
    from harness.recipe import profiles
    from harness.run.options import default_cache_dir

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="smollm2", choices=sorted(profiles.PROFILES))
    parser.add_argument("--epochs", type=float, default=1.0, help="epochs each variant trains (default 1)")
    parser.add_argument("--variant", action="append", default=None, metavar="KEY=VALUE",
                        help="a dotted config override to time against the recipe (repeatable)")
    parser.add_argument("--smollm2-gguf", default=os.environ.get("YODA_HARNESS_SMOLLM2_GGUF"))
    parser.add_argument("--models-dir", default=None)
    args = parser.parse_args(argv)
    profile = profiles.PROFILES[args.profile]
    options = profiles.ModelOptions(models_dir=Path(args.models_dir or default_cache_dir() / "models"),
                                    smollm2_gguf=args.smollm2_gguf)
    # Every variant is checked before any trains: a typo fails now, not after the others ran.
    variants = [("the recipe", {})] + [(text, parse_variant(text, profile)) for text in args.variant or DEFAULT_VARIANTS]
    results = [(name, time_variant(profile, options, overrides, args.epochs, profile_steps=not overrides))
               for name, overrides in variants]
    print_table(args.profile, results)


def parse_variant(text: str, profile) -> dict:
    """A `--variant` as config overrides, checked against the profile's recipe config."""
    from harness.run.options import OptionError, parse_overrides

    try:
        overrides = parse_overrides([text], option="--variant")
    except OptionError as error:
        raise SystemExit(str(error)) from None
    try:
        profile.recipe_config().with_overrides(overrides)
    except ValueError as error:
        raise SystemExit(f"--variant {text}: {error}") from None
    return overrides


def print_table(profile_name: str, results: list) -> None:
    from harness import env

    base = results[0][1]["median_s_per_step"]
    print(f"profile {profile_name} on {env.device_kind(env.fingerprint())}")
    print("| variant | steps | median s/step | vs the recipe |")
    print("|---|---|---|---|")
    for name, result in results:
        print(f"| {name} | {result['steps']} | {result['median_s_per_step']:.3f} | "
              f"{result['median_s_per_step'] / base:.2f} |")
    summary = results[0][1]["profile"]
    if summary:
        busy = summary["gpu_busy_share"]
        gpu = "no GPU" if busy is None else \
            f"{summary['kernels_per_step']:,.0f} GPU kernels per step, the GPU busy {busy:.0%} of the wall time"
        print(f"\nthe recipe, {PROFILED_STEPS} profiled steps: {summary['wall_s_per_step']:.3f} s/step, "
              f"{summary['operators_per_step']:,.0f} aten operator calls per step; {gpu}")
        print("| operator | calls/step | CPU self ms/step |")
        print("|---|---|---|")
        for key, calls, ms in summary["top_cpu_operators"]:
            print(f"| {key} | {calls} | {ms:.1f} |")


def _synchronize():
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()


def _empty_cuda_cache():
    import torch

    if torch.cuda.is_available():
        torch.cuda.empty_cache()


if __name__ == "__main__":
    sys.exit(main())
