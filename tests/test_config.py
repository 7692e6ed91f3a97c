"""The recipe config: defaults are the recipe, and they reach the library objects unchanged."""

import dataclasses

import pytest
import torch

from harness import files
from harness.recipe.config import RecipeConfig

pytest_plugins = ["pytester"]


def test_defaults_are_the_reference_recipe():
    config = RecipeConfig()
    assert config.quantization.to_bnb().to_dict()["bnb_4bit_quant_type"] == "nf4"
    assert (config.lora.r, config.lora.lora_alpha, config.lora.lora_dropout) == (8, 16, 0.05)
    assert config.lora.target_modules == ["o_proj", "qkv_proj", "gate_up_proj", "down_proj"]
    training = config.training
    assert (training.max_length, training.packing, training.packing_strategy) == (64, True, "wrapped")
    assert (training.num_train_epochs, training.learning_rate, training.optim) == (10, 3e-4, "paged_adamw_8bit")
    assert (training.per_device_train_batch_size, training.gradient_accumulation_steps) == (16, 1)
    assert config.generation.max_new_tokens == 64


def test_quantization_reaches_bitsandbytes_config():
    bnb = RecipeConfig().quantization.to_bnb()
    assert bnb.load_in_4bit and bnb.bnb_4bit_use_double_quant
    assert bnb.bnb_4bit_quant_type == "nf4" and bnb.bnb_4bit_compute_dtype == torch.float32


def test_lora_reaches_peft_config():
    lora = RecipeConfig().with_overrides({"lora.r": 4}).lora.to_peft()
    assert (lora.r, lora.lora_alpha, lora.lora_dropout, lora.bias) == (4, 16, 0.05, "none")
    assert set(lora.target_modules) == {"o_proj", "qkv_proj", "gate_up_proj", "down_proj"}


def test_training_reaches_sft_config(tmp_path):
    sft, adaptations = RecipeConfig().training.to_sft_config(str(tmp_path))
    assert adaptations == []
    assert (sft.max_length, sft.packing, sft.packing_strategy) == (64, True, "wrapped")
    assert (sft.learning_rate, sft.num_train_epochs, sft.optim) == (3e-4, 10, "paged_adamw_8bit")
    assert sft.gradient_checkpointing and sft.gradient_checkpointing_kwargs == {"use_reentrant": False}
    assert sft.per_device_train_batch_size == 16 and sft.auto_find_batch_size
    assert sft.bf16 is (torch.cuda.is_available() and torch.cuda.is_bf16_supported(including_emulation=False))


def test_old_trl_gets_the_old_argument_name_and_the_adaptation_is_recorded(tmp_path, monkeypatch):
    import trl

    @dataclasses.dataclass
    class OldSFTConfig:  # the shape of trl < 0.20: max_seq_length, no packing_strategy
        output_dir: str = ""
        max_seq_length: int = 1024
        packing: bool = False
        learning_rate: float = 5e-5

    monkeypatch.setattr(trl, "SFTConfig", OldSFTConfig)
    sft, adaptations = RecipeConfig().training.to_sft_config(str(tmp_path))
    assert sft.max_seq_length == 64 and sft.packing is True and sft.learning_rate == 3e-4
    assert "max_length passed as max_seq_length (this trl's name)" in adaptations
    assert any(a.startswith("packing_strategy='wrapped' dropped") for a in adaptations)


def test_overrides_and_round_trip():
    config = RecipeConfig().with_overrides({"training.learning_rate": 1e-3, "data.source": "bundled"})
    assert config.training.learning_rate == 1e-3
    assert RecipeConfig.from_dict(config.to_dict()) == config
    assert config.fingerprint() != RecipeConfig().fingerprint()


def test_generation_is_greedy_and_a_recorded_do_sample_is_read_without_it():
    from pathlib import Path


    assert "do_sample" not in RecipeConfig().to_dict()["generation"]
    recorded = files.read_json(Path(__file__).parent / "fixtures" / "run_tiny" / "run.json")["config"]
    assert recorded["generation"]["do_sample"] is False  # a run recorded before the field was retired
    config = RecipeConfig.from_dict(recorded)
    assert config.generation.max_new_tokens == recorded["generation"]["max_new_tokens"]
    assert recorded["generation"]["do_sample"] is False  # reading it changed nothing in the record
    with pytest.raises(ValueError, match="'generation.do_sample' no longer exists: generation is greedy"):
        RecipeConfig().with_overrides({"generation.do_sample": True})


@pytest.mark.parametrize("key", ["training.learnin_rate", "nosuch.field", "lora"])
def test_unknown_override_is_named(key):
    with pytest.raises(ValueError, match="unknown recipe config option"):
        RecipeConfig().with_overrides({key: 1})


@pytest.mark.parametrize("name", ["smollm2", "phi3", "phi3-shape"])
def test_gpu_profiles_generate_the_evaluation_split_in_one_batch(name):
    # A batch decodes until its slowest row stops; on a GPU one batch costs about what one of its
    # rows does, so the evaluation split goes in one (docs/gpu.md has the before/after).
    from harness.recipe import data
    from harness.recipe.profiles import PROFILES

    config = PROFILES[name].recipe_config()
    assert config.generation.batch_size >= len(data.load_split("bundled", config.data.eval_fraction).eval)


@pytest.mark.parametrize("override, message", [
    ({"training.learning_rate": "abc"}, "training.learning_rate='abc': expected float, got str"),
    ({"training.per_device_train_batch_size": 2.5}, "training.per_device_train_batch_size=2.5: expected int"),
    ({"training.packing": 1}, "training.packing=1: expected bool, got int"),
    ({"lora.target_modules": ["o_proj", 3]}, "lora.target_modules=['o_proj', 3]: expected a list of str"),
    ({"data.format": "chat"}, "data.format='chat': expected one of 'conversational'"),
    ({"training.bf16": 1}, "training.bf16=1: expected one of 'auto', True, False, None"),
])
def test_a_value_of_the_wrong_type_or_choice_is_refused_naming_the_option(override, message):
    with pytest.raises(ValueError) as error:
        RecipeConfig().with_overrides(override)
    assert message in str(error.value)


def test_choices_are_kept_with_their_fields():
    import dataclasses

    config = RecipeConfig()
    declared = {f"{section.name}.{item.name}": item.metadata["choices"]
                for section in dataclasses.fields(config)
                for item in dataclasses.fields(getattr(config, section.name)) if "choices" in item.metadata}
    assert declared == {
        "quantization.bnb_4bit_quant_type": ("nf4", "fp4"),
        "quantization.bnb_4bit_compute_dtype": ("float32", "bfloat16", "float16"),
        "lora.bias": ("none", "all", "lora_only"),
        "data.format": ("conversational", "prompt_completion", "instruction"),
        "training.packing_strategy": ("wrapped", "bfd", "ffd", None),
        "training.bf16": ("auto", True, False, None),
    }
    for dotted, choices in declared.items():  # the default is the first choice, and every choice is accepted
        section, _, key = dotted.partition(".")
        assert getattr(getattr(config, section), key) == choices[0]
        for value in choices:
            config.with_overrides({dotted: value})


@pytest.mark.parametrize("override", [{"training.learning_rate": 1}, {"training.bf16": False},
                                      {"training.completion_only_loss": None}, {"lora.target_modules": ["o_proj"]}])
def test_values_of_the_declared_type_are_accepted(override):
    RecipeConfig().with_overrides(override)


def test_a_bad_override_is_a_usage_error_before_any_model_loads(pytester):
    pytester.makepyfile("def test_nothing(): pass")
    result = pytester.runpytest("--yoda-override", "training.learning_rate=abc")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--yoda-override: training.learning_rate='abc': expected float, got str*"])
