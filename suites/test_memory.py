"""Memory: what is quantized, and the footprint against the analytic prediction and the recipe."""

import pytest

from harness.recipe.metrics import MB


@pytest.mark.yoda_check(headline="layers not 4-bit")
@pytest.mark.yoda_structural
def test_every_linear_layer_but_the_head_is_4bit(record):
    structure = record.structure
    quantized = set(structure.quantized_linear_modules)
    expected = set(structure.predicted_quantized_modules)
    missing = sorted(expected - quantized)
    assert not missing, (
        f"{len(missing)} linear layers are not bitsandbytes Linear4bit after loading "
        f"(e.g. {missing[:3]}): the 4-bit quantization_config did not reach from_pretrained"
    )
    for target in structure.target_modules:
        assert any(name.endswith("." + target) for name in quantized), (
            f"LoRA target {target!r} is not a 4-bit layer: the recipe's target_modules do not match the model"
        )


@pytest.mark.yoda_structural
def test_embeddings_and_head_stay_unquantized(record):
    classes = record.structure.unquantized_modules
    for role, class_name in classes.items():
        assert "4bit" not in class_name and "8bit" not in class_name, (
            f"{role} became {class_name}: embeddings and lm_head must stay unquantized"
        )


@pytest.mark.yoda_check(headline="memory footprint differs from the prediction")
@pytest.mark.yoda_structural
@pytest.mark.parametrize("figure", ["footprint_loaded_bytes", "footprint_adapted_bytes"])
def test_footprint_matches_the_prediction(record, figure):
    structure = record.structure
    measured, predicted = getattr(structure, figure), getattr(structure.predicted, figure)
    relative = abs(measured - predicted) / predicted
    assert relative <= 0.001, (
        f"{figure}: measured {measured / MB:.6f} MB, predicted {predicted / MB:.6f} MB from the configs "
        f"({relative:.3%} apart; limit 0.1%). Likely cause: a layer left unquantized, "
        "prepare_model_for_kbit_training not upcasting to fp32, or adapters of another size"
    )


@pytest.mark.yoda_structural
def test_the_recipe_figures_are_reproduced(record, harness_profile):
    reference = harness_profile.reference
    if not reference:
        pytest.skip(f"the recipe's published footprints are for Phi-3; profile {harness_profile.name!r} "
                    "reproduces no published figures")
    for figure, measured_bytes in (("footprint_loaded", record.structure.footprint_loaded_bytes),
                                   ("footprint_adapted", record.structure.footprint_adapted_bytes)):
        measured = round(measured_bytes / MB, 2)
        assert measured == reference[f"{figure}_mb"], (
            f"{figure}: {measured} MB, the recipe's figure is {reference[f'{figure}_mb']} MB")
