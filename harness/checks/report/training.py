"""The "Training" section: steps and loss, packing, the libraries' adaptations and warnings, phase timings."""

from __future__ import annotations

from harness.checks.report.formatting import is_number

# The recipe's phases in run order (run.json stores them sorted by name).
PHASE_ORDER = ("checkpoint", "load", "lora", "data", "trainer", "train", "save", "generate", "reload", "score")


def training_context(record) -> dict:
    training = record.training
    trained = training if record.trained else None  # what only a trained run measured
    history = trained.loss_history if trained else []
    return {
        "global_step": trained and trained.global_step,
        "train_loss": trained and trained.train_loss,
        "train_runtime": trained and trained.train_runtime,
        "loss_first": history[0].loss if history else None,
        "loss_last": history[-1].loss if history else None,
        "logging_steps": record.recipe_config.training.logging_steps,
        "packed_rows": training.packed_rows,
        "train_examples": training.train_examples,
        "train_batch_size": training.train_batch_size,
        "templated_tokens": training.templated_tokens,
        "lora_b_before": trained and trained.lora_b_abs_sum_before,
        "lora_b_after": trained and trained.lora_b_abs_sum_after,
        "adaptations": training.sft_config_adaptations,
        # Every release difference adapted (harness.recipe.compat) and the libraries' deprecation warnings.
        "compat": [entry.description for entry in record.compat],
        "library_warnings": record.library_warnings,
        "config": record.config,
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
