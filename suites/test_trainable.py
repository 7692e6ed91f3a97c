"""Trainable parameters: the LoRA count, only adapters train, and they really trained."""

import pytest


@pytest.mark.yoda_check(headline="trainable count is not the LoRA sum")
@pytest.mark.yoda_structural
def test_trainable_count_is_the_lora_sum(record):
    structure = record.structure
    expected = structure.predicted.trainable_parameters
    r = record.recipe_config.lora.r
    assert structure.trainable_parameters == expected, (
        f"trainable parameters {structure.trainable_parameters:,} != sum of r*(in+out) = {expected:,} "
        f"for the recipe's r={r}: the adapter config did not reach get_peft_model"
    )


@pytest.mark.yoda_check(headline="LoRA scaling is not alpha / r", settings=("lora.lora_alpha", "lora.r"))
@pytest.mark.yoda_structural
def test_every_adapter_scales_by_alpha_over_r(record):
    """The rank shows in the parameter count; the scaling (lora_alpha / r) shows nowhere but in what
    the model learns, where halving it looked like a bad seed (docs/tiny.md)."""
    lora = record.recipe_config.lora
    expected = lora.lora_alpha / lora.r
    scaling = record.structure.lora_scaling
    assert scaling, "no LoRA layer found in the adapted model: the adapters were not added"
    wrong = {name: value for name, value in scaling.items() if abs(value - expected) > 1e-9 * expected}
    assert not wrong, (
        f"{len(wrong)} of {len(scaling)} LoRA layers scale their update by {sorted(set(wrong.values()))}, "
        f"not the recipe's lora_alpha / r = {lora.lora_alpha} / {lora.r} = {expected:g} (first: "
        f"{next(iter(wrong))}): the LoRA scaling did not reach the adapters as configured"
    )


@pytest.mark.yoda_structural
def test_total_count_is_the_architecture_plus_adapters(record):
    structure = record.structure
    assert structure.total_parameters == structure.predicted.total_parameters, (
        f"total parameters {structure.total_parameters:,} != predicted "
        f"{structure.predicted.total_parameters:,}"
    )


@pytest.mark.yoda_structural
def test_the_recipe_parameter_counts_are_reproduced(record, harness_profile):
    reference = harness_profile.reference
    if not reference:
        pytest.skip(f"the recipe's 12.58M / 3833.66M is for Phi-3; profile {harness_profile.name!r} "
                    "reproduces no published figures")
    structure = record.structure
    expected = (reference["trainable_parameters"], reference["total_parameters"])
    assert (structure.trainable_parameters, structure.total_parameters) == expected, (
        f"{structure.trainable_parameters:,} / {structure.total_parameters:,} parameters; the recipe's "
        f"figures are {expected[0]:,} / {expected[1]:,}")


@pytest.mark.yoda_check(headline="the trainer froze the LoRA adapters", settings=("lora.r", "lora.target_modules"))
@pytest.mark.yoda_structural
@pytest.mark.parametrize("moment", ["requires_grad_before_trainer", "requires_grad_after_trainer"])
def test_only_lora_weights_require_grad(record, moment):
    names = getattr(record.structure, moment)
    assert names, (
        f"no parameter requires grad {moment.replace('requires_grad_', '').replace('_', ' ')}: "
        "the trainer froze the LoRA adapters (the trl < 0.23.1 regression) — nothing will train"
    )
    others = [n for n in names if "lora_A" not in n and "lora_B" not in n]
    assert not others, f"non-adapter parameters require grad {moment}: {others[:5]}"


@pytest.mark.yoda_check(headline="the adapters did not train")
def test_adapters_changed_during_training(record):
    training = record.training
    assert training.lora_b_abs_sum_before == 0.0, "lora_B should start at zero (PEFT's init)"
    assert training.lora_b_abs_sum_after > 0.0, (
        "lora_B is still all zero after training: the adapters did not train (frozen, or lr 0)"
    )
