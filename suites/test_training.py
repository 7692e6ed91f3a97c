"""Training: the loss falls, matches the baseline; the saved adapter is right and reloads."""

import pytest

from harness.recipe.record import Precision, to_json
from harness.recipe.reload import DEPLOYED_FILE


@pytest.mark.yoda_learning
def test_loss_falls(record, require_threshold):
    history = record.training.loss_history
    assert len(history) >= 2, f"only {len(history)} loss values were logged"
    first, last = history[0].loss, history[-1].loss
    drop = require_threshold("min_loss_drop")
    assert (first - last) / first >= drop, (
        f"loss {first:.3f} -> {last:.3f} fell {(first - last) / first:.0%}, less than {drop:.0%}: "
        "training did not learn (frozen adapters, broken labels or learning rate)"
    )


# `Trainer.save_model` always pickles its TrainingArguments; weights must never be pickled.
NOT_WEIGHTS = {"training_args.bin"}
DTYPE_BYTES = {"F32": 4, "BF16": 2, "F16": 2, "F64": 8}


def test_saved_adapter_is_safetensors_with_its_config(record):
    files = set(record.adapter.files)
    assert {"adapter_config.json", "adapter_model.safetensors"} <= files, f"adapter files: {sorted(files)}"
    pickled = sorted(f for f in files - NOT_WEIGHTS if f.endswith((".bin", ".pt", ".pth", ".pkl")))
    assert not pickled, f"the adapter was saved with pickle files {pickled}; expected safetensors only"


def test_adapter_holds_exactly_the_lora_parameters(record):
    adapter = record.adapter
    expected = record.structure.predicted.trainable_parameters
    assert adapter.tensor_parameters == expected, (
        f"adapter_model.safetensors holds {adapter.tensor_parameters:,} parameters; LoRA "
        f"r={record.recipe_config.lora.r} on the recipe's targets is {expected:,}: "
        "adapters of another rank or set of modules were saved"
    )
    (dtype,) = adapter.dtypes
    assert adapter.safetensors_data_bytes == expected * DTYPE_BYTES[dtype], "file size disagrees with its header"


@pytest.mark.yoda_check(headline="the reloaded adapter is not the trained one")
def test_reloaded_adapter_holds_the_trained_weights(record):
    """Exact: every LoRA tensor and scaling factor of base + saved adapter, cast to the trained
    dtypes (harness/recipe/reload.py), equals the trained model's. A save or load that drops, renames or
    rounds the adapter fails here on any model, learned or random."""
    reload = record.adapter.reload
    assert reload.tensors, "the trained model has no LoRA tensors: nothing was saved to compare"
    assert not reload.missing, (
        f"{len(reload.missing)} of {reload.tensors} trained LoRA tensors are absent after the reload (first: "
        f"{reload.missing[0]}): the saved adapter is not the trained one"
    )
    differing = reload.differing_max_abs
    assert not differing, (
        f"{len(differing)} of {reload.tensors} LoRA tensors differ from the trained ones after save and reload "
        f"(largest |difference| {max(differing.values()):.3g}, first: {next(iter(differing))}; trained in "
        f"{'/'.join(reload.trained_precision.adapter)}, saved as {'/'.join(record.adapter.dtypes or ['?'])}): "
        "the saved adapter is not the trained one"
    )
    scaling = reload.scaling_differs
    assert not scaling, (
        f"{len(scaling)} LoRA layers scale their update differently after the reload (first: "
        f"{next(iter(scaling))}: trained {next(iter(scaling.values()))[0]}, reloaded {next(iter(scaling.values()))[1]}): "
        "adapter_config.json does not carry the trained scaling"
    )


@pytest.mark.yoda_check(headline="the reloaded model generates otherwise")
@pytest.mark.yoda_learning
def test_reloaded_adapter_generates_what_the_trained_model_did(record, run_artifacts, require_threshold):
    """End to end: the reloaded model, at the trained model's precision, generates what it did.
    (The deployed reload computes in the libraries' precision and generates with the saved folder's
    tokenizer; harness/recipe/reload.py and harness/recipe/deployed.py say why that is compared only through the
    quality metrics and suites/test_deployed.py.)"""
    reload = record.adapter.reload
    agreement_file = reload.agreement_file
    reloaded = run_artifacts(agreement_file)
    in_memory = run_artifacts("generations_tuned_in_memory.jsonl")
    base = run_artifacts("generations_base.jsonl")
    eos = record.tokens.eos_id
    agreement = _share_identical(reloaded, in_memory, eos)
    # What a reload that lost the adapter would score: the base model's agreement.
    without_adapter = _share_identical(base, in_memory, eos)
    floor = require_threshold("min_reload_agreement")
    precision = ""
    if agreement_file != DEPLOYED_FILE:
        as_deployed = _share_identical(run_artifacts(DEPLOYED_FILE), in_memory, eos)
        because = reload.agreement_because
        how = []
        if "precision" in because:
            how.append(f"cast from the deployed precision ({_dtypes(reload.deployed_precision)}) to the trained "
                       f"({_dtypes(reload.trained_precision)})")
        if "saved folder" in because:
            how.append("with the trained tokenizer, as the saved folder's differs (suites/test_deployed.py)")
        precision = f"; {', '.join(how)}; as deployed it matches {as_deployed:.0%}"
    assert agreement >= floor and agreement > without_adapter, (
        f"base + reloaded adapter matches the in-memory model on {agreement:.0%} of prompts (floor {floor:.0%}; "
        f"the base model alone matches {without_adapter:.0%}{precision}): the saved adapter is not the trained one"
    )


def _dtypes(precision: Precision) -> str:
    return ", ".join(f"{part} {'/'.join(dtypes)}" for part, dtypes in to_json(precision).items())


def _share_identical(generations: list[dict], reference: list[dict], eos_id: int) -> float:
    """Share of prompts with the same output up to and including the first EOS: what is scored.
    (Whatever a generate() that ignores EOS adds after it is the stopping suite's business.)"""
    same = sum(_until_eos(a["token_ids"], eos_id) == _until_eos(b["token_ids"], eos_id)
               for a, b in zip(generations, reference))
    return same / len(reference)


def _until_eos(ids: list[int], eos_id: int) -> list[int]:
    return ids[:ids.index(eos_id) + 1] if eos_id in ids else ids
