"""Each check's headline lives with the check (its `yoda_check` marker): renaming a check keeps it."""

import importlib
import inspect
from pathlib import Path

import pytest

from harness import markers

ROOT = Path(__file__).resolve().parents[1]

# The checks that had a headline when the history table kept them by function name (before the
# marker): each must still carry one, whatever it is called now.
HEADLINED = {
    "test_chat_template": ["test_training_text_carries_the_role_markers_in_order"],
    "test_labels": ["test_every_eos_keeps_its_label", "test_collation_keeps_eos_and_labels_for_any_conversation",
                    "test_pad_token_is_not_eos", "test_packed_rows_are_exactly_max_length",
                    "test_packing_cuts_the_rows_this_trl_is_known_to_cut", "test_optimizer_steps_match_the_packing",
                    "test_completion_only_masks_the_prompt"],
    "test_trainable": ["test_only_lora_weights_require_grad", "test_adapters_changed_during_training",
                       "test_trainable_count_is_the_lora_sum", "test_every_adapter_scales_by_alpha_over_r"],
    "test_memory": ["test_footprint_matches_the_prediction", "test_every_linear_layer_but_the_head_is_4bit"],
    "test_training": ["test_reloaded_adapter_holds_the_trained_weights",
                      "test_reloaded_adapter_generates_what_the_trained_model_did"],
    "test_tokens": ["test_the_library_read_the_model_family_special_tokens"],
}


def check_marks(module_name: str) -> dict[str, dict]:
    """Check function name -> its yoda_check marker's kwargs (absent when it has none)."""
    module = importlib.import_module(f"suites.{module_name}")
    found = {}
    for name, function in inspect.getmembers(module, inspect.isfunction):
        for mark in getattr(function, "pytestmark", []):
            if mark.name == markers.CHECK:
                found[name] = mark.kwargs
    return found


@pytest.mark.parametrize("module_name", sorted(HEADLINED))
def test_every_check_that_had_a_headline_still_has_one(module_name):
    marks = check_marks(module_name)
    for name in HEADLINED[module_name]:
        assert name in marks, f"suites/{module_name}.py::{name} lost its yoda_check headline"
        assert marks[name]["headline"].strip(), f"suites/{module_name}.py::{name}: an empty headline"


def test_the_settings_a_check_names_are_recipe_config_fields():
    from harness.recipe.config import RecipeConfig

    known = {f"{section}.{key}" for section, values in RecipeConfig().to_dict().items() for key in values}
    named = {(module_name, name, setting) for module_name in HEADLINED
             for name, kwargs in check_marks(module_name).items() for setting in kwargs.get("settings", ())}
    assert named
    assert [f"suites/{m}.py::{n}: {s}" for m, n, s in sorted(named) if s not in known] == []
