"""The "Training" section: steps and loss, packing, the libraries' adaptations and warnings, phase timings."""

from __future__ import annotations

from harness.checks.report.formatting import is_number

# The recipe's phases in run order (run.json stores them sorted by name).
PHASE_ORDER = ("checkpoint", "load", "lora", "data", "trainer", "train", "save", "generate", "reload", "score")


def training_context(manifest: dict) -> dict:
    training = manifest.get("training") or {}
    history = training.get("loss_history") or []
    return {
        "global_step": training.get("global_step"),
        "train_loss": training.get("train_loss"),
        "train_runtime": training.get("train_runtime"),
        "loss_first": history[0]["loss"] if history else None,
        "loss_last": history[-1]["loss"] if history else None,
        "logging_steps": ((manifest.get("config") or {}).get("training") or {}).get("logging_steps"),
        "packed_rows": training.get("packed_rows"),
        "train_examples": training.get("train_examples"),
        "train_batch_size": training.get("train_batch_size"),
        "templated_tokens": training.get("templated_tokens"),
        "lora_b_before": training.get("lora_b_abs_sum_before"),
        "lora_b_after": training.get("lora_b_abs_sum_after"),
        "adaptations": training.get("sft_config_adaptations") or [],
        # Every release difference adapted (harness.recipe.compat) and the libraries' deprecation warnings.
        "compat": [entry.get("description", "") for entry in manifest.get("compat") or []],
        "library_warnings": manifest.get("library_warnings") or [],
        "config": manifest.get("config") or {},
    }


def in_run_order(phases: dict) -> dict:
    """The phases in the recipe's order; a phase it does not name goes last, by name."""
    rank = {name: i for i, name in enumerate(PHASE_ORDER)}
    return dict(sorted(phases.items(), key=lambda item: (rank.get(item[0], len(rank)), item[0])))


def phases_context(phases: dict) -> dict:
    phases = in_run_order(phases)
    total = sum(v for v in phases.values() if is_number(v))
    return {"rows": [{"name": name, "seconds": seconds,
                      "share": seconds / total if total and is_number(seconds) else None}
                     for name, seconds in phases.items()],
            "total": total}
