"""Analytic predictions (from configs alone, no weights) and scoring."""

from harness.recipe.metrics import corpus_scores, expected_optimizer_steps, predict_structure, sentence_bleu
from harness.recipe.models.phi3 import phi3_mini_config


def test_phi3_prediction_gives_the_recipe_figures():
    prediction = predict_structure(phi3_mini_config(), 8, ["o_proj", "qkv_proj", "gate_up_proj", "down_proj"])
    assert round(prediction.footprint_loaded_bytes / 1e6, 2) == 2206.34
    assert round(prediction.footprint_adapted_bytes / 1e6, 2) == 2651.07
    # Exactly what the GPU measured under current libraries (see docs/gpu.md).
    assert prediction.footprint_loaded_bytes == 2_206_341_504
    assert prediction.footprint_adapted_bytes == 2_651_074_944
    assert prediction.trainable_parameters == 12_582_912
    assert prediction.total_parameters == 3_833_662_464
    assert len(prediction.quantized_modules) == 32 * 4 == len(prediction.lora_modules)


def test_rank_changes_only_the_adapter_terms():
    r8 = predict_structure(phi3_mini_config(), 8, ["o_proj"])
    r16 = predict_structure(phi3_mini_config(), 16, ["o_proj"])
    assert r16.trainable_parameters == 2 * r8.trainable_parameters == 2 * 32 * 8 * (3072 + 3072)
    assert r16.footprint_loaded_bytes == r8.footprint_loaded_bytes


def test_wrapped_packing_step_count():
    # 22,528 tokens -> 352 rows of 64 -> 22 batches of 16 -> 220 steps over 10 epochs (the recipe's figure).
    assert expected_optimizer_steps(352, 16, 10) == 220
    assert expected_optimizer_steps(353, 16, 10) == 230
    assert expected_optimizer_steps(352, 16, 10, accumulation=2) == 110


def test_scores_carry_signatures():
    scores = corpus_scores(["Strong in you, the Force is."], ["Strong in you, the Force is."])
    assert scores["bleu"] == 100.0 and scores["signatures"]["bleu"].startswith("nrefs:1|")
    assert sentence_bleu("Strong the Force is.", "Strong in you, the Force is.") < 100
