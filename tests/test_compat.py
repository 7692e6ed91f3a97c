"""harness.recipe.compat: each release difference adapted in one place, and every adaptation recorded."""

import dataclasses
import inspect
import types

import pytest
import torch

from harness.recipe import compat
from harness.recipe.config import RecipeConfig


@dataclasses.dataclass
class OldSFTConfig:  # the shape of trl < 0.19: max_seq_length, no packing_strategy
    output_dir: str = ""
    max_seq_length: int = 1024
    packing: bool = False
    bf16: bool = False
    learning_rate: float = 5e-5


def test_an_old_trl_gets_the_old_name_and_loses_what_it_lacks(monkeypatch):
    import trl

    monkeypatch.setattr(trl, "SFTConfig", OldSFTConfig)
    monkeypatch.setattr(compat, "version", lambda package: "0.14.0")
    with compat.recording() as recorded:
        sft, adaptations = compat.sft_config({"output_dir": "x", "max_length": 64, "packing": True,
                                              "packing_strategy": "wrapped", "completion_only_loss": None})
    assert (sft.max_seq_length, sft.packing) == (64, True)
    assert [a.describe() for a in adaptations] == [
        "max_length passed as max_seq_length (this trl's name)",
        "packing_strategy='wrapped' dropped: this trl's SFTConfig has no such argument"]
    assert all(a.library == "trl 0.14.0" for a in adaptations)
    assert recorded == adaptations  # what the run's manifest lists


def test_a_setting_left_to_the_library_is_not_passed_and_what_it_chose_is_recorded(tmp_path):
    sft, adaptations = compat.sft_config({"output_dir": str(tmp_path), "packing": True, "use_cpu": True,
                                          "packing_strategy": "wrapped", "bf16": True},
                                         left_to_library=("packing_strategy", "bf16"))
    chosen = {a.setting: a.action for a in adaptations}
    assert chosen["packing_strategy"] == f"left to the library: this trl chose {sft.packing_strategy!r}"
    assert sft.packing_strategy != "wrapped"  # current trl's default is 'bfd': the regression the 2024 variant meets
    assert chosen["bf16"].startswith("left to the library: this trl chose")


def test_an_old_trl_without_the_setting_says_so_when_it_is_left_to_the_library(monkeypatch):
    import trl

    monkeypatch.setattr(trl, "SFTConfig", OldSFTConfig)
    _, adaptations = compat.sft_config({"output_dir": "x", "packing_strategy": None}, ("packing_strategy",))
    assert [a.describe() for a in adaptations] == ["packing_strategy left to the library: this trl has no such setting"]


class _Phi3Like(torch.nn.Module):
    def forward(self, input_ids=None, attention_mask=None, **kwargs):  # 4.x: **kwargs are attention kwargs
        return input_ids


class _Bert(torch.nn.Module):
    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None):
        return input_ids


def test_token_type_ids_are_dropped_for_a_model_that_does_not_name_them():
    batch = {"input_ids": 1, "attention_mask": 2, "token_type_ids": 3}
    with compat.recording() as recorded:
        inputs, adaptations = compat.generation_inputs(_Phi3Like(), batch)
        compat.generation_inputs(_Phi3Like(), batch)  # every batch: recorded once
    assert inputs == {"input_ids": 1, "attention_mask": 2}
    assert "token_type_ids dropped" in adaptations[0].describe() and "_Phi3Like.forward" in adaptations[0].describe()
    assert len(recorded) == 1


def test_token_type_ids_stay_for_a_model_that_takes_them_and_nothing_is_recorded_without_them():
    batch = {"input_ids": 1, "token_type_ids": 3}
    assert compat.generation_inputs(_Bert(), batch) == (batch, [])
    assert compat.generation_inputs(_Phi3Like(), {"input_ids": 1}) == ({"input_ids": 1}, [])


def test_generate_batched_goes_through_the_adaptation():
    from harness.recipe import generate

    assert "compat.generation_inputs" in inspect.getsource(generate.generate_batched)


def _small_phi3_config():
    from transformers import Phi3Config

    return Phi3Config(vocab_size=128, hidden_size=64, intermediate_size=128, num_hidden_layers=1, num_attention_heads=4,
                      num_key_value_heads=4, max_position_embeddings=64, pad_token_id=0, torch_dtype="float32")


@pytest.mark.parametrize("release, expected", [("4.53.3", torch.float16), ("4.56.1", torch.float16),
                                               ("5.0.0", torch.float32), ("5.23.0", torch.float32)])
def test_the_unquantized_load_dtype_follows_the_installed_transformers(monkeypatch, release, expected):
    monkeypatch.setattr(compat, "version", lambda package: release)
    dtype, adaptation = compat.unquantized_load_dtype(_small_phi3_config())
    assert dtype == expected
    assert (adaptation is not None) == release.startswith("4.")


def test_the_memory_prediction_differs_by_the_fp16_rule_exactly_where_it_should(monkeypatch):
    from harness.recipe import metrics

    config = _small_phi3_config()
    monkeypatch.setattr(compat, "version", lambda package: "5.23.0")
    as_checkpoint = metrics.predict_structure(config, 8, ["qkv_proj"])
    monkeypatch.setattr(compat, "version", lambda package: "4.53.3")
    with compat.recording() as recorded:
        as_4x = metrics.predict_structure(config, 8, ["qkv_proj"])
    # Embeddings, head and norms load at 2 bytes instead of 4; prepare_model_for_kbit_training then
    # upcasts them, so the adapted footprint is the same under both rules.
    unquantized = 128 * 64 * 2 + 64 * 3  # embed_tokens, lm_head (untied), 3 RMSNorms
    assert as_checkpoint.footprint_loaded_bytes - as_4x.footprint_loaded_bytes == unquantized * 2
    assert as_checkpoint.footprint_adapted_bytes == as_4x.footprint_adapted_bytes
    assert [a.setting for a in recorded] == ["model dtype", "memory prediction"]


class _ConstantLength(torch.utils.data.IterableDataset):  # old trl's packed dataset: iterable only
    infinite = True

    def __iter__(self):
        yield from ({"input_ids": [i]} for i in range(3))


def test_prepared_rows_reads_an_iterable_packed_dataset_once_through():
    class Trainer:
        processing_class = None

        def _prepare_dataset(self, dataset, processing_class, args, packing, formatting_func, dataset_name):
            return _ConstantLength()

    assert compat.prepared_rows(Trainer(), None, None, True, "check") == [{"input_ids": [i]} for i in range(3)]


def test_the_recipes_sft_config_goes_through_compat(tmp_path):
    sft, adaptations = RecipeConfig().training.to_sft_config(str(tmp_path))
    assert adaptations == [] and sft.packing_strategy == "wrapped"
    left = RecipeConfig().with_overrides({"training.packing_strategy": None, "training.bf16": None})
    sft, adaptations = left.training.to_sft_config(str(tmp_path))
    assert any(a.startswith("packing_strategy left to the library") for a in adaptations)


def test_the_completion_only_probe_switches_the_collators_own_copy_and_restores_it():
    class Collator:
        completion_only_loss = False

        def __call__(self, rows):
            return self.completion_only_loss

    trainer = type("Trainer", (), {"data_collator": Collator()})()
    with compat.recording() as recorded:
        with compat.completion_only_collator(trainer) as collator:
            assert collator([]) is True
    assert trainer.data_collator.completion_only_loss is False
    assert [a.setting for a in recorded] == ["completion-only probe"]
    plain = type("Trainer", (), {"data_collator": staticmethod(lambda rows: rows)})()  # no such attribute
    with compat.completion_only_collator(plain) as collator:
        assert collator([1]) == [1]


@pytest.mark.parametrize("release, name", [("4.53.3", "torch_dtype"), ("4.56.1", "dtype"), ("5.23.0", "dtype")])
def test_the_dtype_argument_is_named_as_the_installed_transformers_names_it(monkeypatch, release, name):
    monkeypatch.setattr(compat, "version", lambda package: release)
    with compat.recording() as recorded:
        assert compat.dtype_argument() == name
    assert bool(recorded) == (name == "torch_dtype")


@pytest.mark.parametrize("returned", [[5, 6, 7], {"input_ids": [5, 6, 7], "attention_mask": [1, 1, 1]}])
def test_template_ids_are_a_list_whatever_apply_chat_template_returns(returned):
    tokenizer = type("T", (), {"apply_chat_template": lambda self, *a, **k: returned})()
    assert compat.template_ids(tokenizer, []) == [5, 6, 7]


def test_prepared_rows_calls_an_old_trls_signature_with_its_settings_one_by_one(monkeypatch):
    import sys
    import types

    formatting = types.ModuleType("trl.extras.dataset_formatting")
    formatting.get_formatting_func_from_dataset = lambda dataset, tokenizer: "format-messages"
    monkeypatch.setitem(sys.modules, "trl.extras.dataset_formatting", formatting)
    seen = {}

    class OldTrainer:  # trl 0.12-0.14
        processing_class = "tokenizer"

        def _prepare_dataset(self, dataset, processing_class, packing, dataset_text_field, max_seq_length,
                             formatting_func, num_of_sequences, chars_per_token, remove_unused_columns=True,
                             append_concat_token=True, add_special_tokens=True, skip_prepare_dataset=False):
            seen.update(packing=packing, max_seq_length=max_seq_length, formatting_func=formatting_func,
                        add_special_tokens=add_special_tokens)
            return _ConstantLength()

    args = types.SimpleNamespace(dataset_kwargs=None, dataset_text_field="text", max_seq_length=64,
                                 num_of_sequences=1024, chars_per_token=3.6, remove_unused_columns=True)
    with compat.recording() as recorded:
        rows = compat.prepared_rows(OldTrainer(), "dataset", args, True, "check")
    assert rows == [{"input_ids": [i]} for i in range(3)]
    # The template is applied by the formatting function, so the tokenizer must not add specials again.
    assert seen == {"packing": True, "max_seq_length": 64, "formatting_func": "format-messages", "add_special_tokens": False}
    assert [a.setting for a in recorded] == ["dataset preparation"]


EOS = 32000
EXAMPLES = [[5, 6, EOS], [7, 8], [9, EOS]]  # two end with EOS, one does not
OLD_ARGS = types.SimpleNamespace(max_seq_length=4, chars_per_token=1.0, num_of_sequences=5)  # buffers of 20 chars
NEW_ARGS = types.SimpleNamespace(max_length=4)


def _packing(monkeypatch, release: str) -> compat.Packing:
    monkeypatch.setattr(compat, "version", lambda package: release)
    return compat.packing(OLD_ARGS if release < "0.15" else NEW_ARGS)


@pytest.mark.parametrize("release, added", [("0.12.1", 3), ("0.14.0", 3), ("0.15.0", 0), ("0.16.0", 1),
                                            ("0.16.1", 1), ("0.17.0", 0), ("0.19.0", 0), ("1.16.0", 0)])
def test_the_tokens_packing_adds_follow_the_installed_trl(monkeypatch, release, added):
    """trl's sources at each tag (ConstantLengthDataset's EOS before 0.15, EOS-if-missing in 0.16)."""
    with compat.recording() as adaptations:
        assert compat.packing_added_tokens(EXAMPLES, EOS, _packing(monkeypatch, release)) == added
    notes = [a.describe() for a in adaptations]
    assert any(f"{added} tokens more to pack" in note for note in notes) == bool(added)
    assert any("ConstantLengthDataset" in note for note in notes) == (release < "0.15")


def test_trl_0_15_on_keeps_each_thousand_examples_shorter_row(monkeypatch):
    # 2,500 examples of 3 tokens into rows of 4: batches of 1000, 1000 and 500 examples (3000, 3000,
    # 1500 tokens) give 750 + 750 + 375 rows; one concatenation of all would give 1875 too, so
    # make each batch end on a shorter row: 5 tokens an example -> 1250 + 1250 + 625 rows.
    packing = _packing(monkeypatch, "1.16.0")
    assert packing.rows([[1, 2, 3]] * 2500, [0] * 2500, EOS) == 1875
    assert packing.rows([[1, 2, 3, 4, 5]] * 2500, [0] * 2500, EOS) == 1250 + 1250 + 625
    assert packing.rows([[1, 2, 3, 4, 5]] * 999, [0] * 999, EOS) == -(-4995 // 4)
    assert packing.rows([[1, 2, 3, 4, 5]] * 1001, [0] * 1001, EOS) == 1250 + 2  # 5 tokens left: 2 rows
    assert packing.dropped_tokens([[1, 2, 3, 4, 5]] * 1001, [0] * 1001, EOS) == 0


def test_trl_0_14_and_older_pack_buffers_of_characters_and_drop_their_shorter_rows(monkeypatch):
    packing = _packing(monkeypatch, "0.12.1")
    examples, chars = [[1, 2, 3]] * 6, [10, 9, 1, 10, 10, 3]  # buffers close at 20 characters: [0, 1, 2], [3, 4], [5]
    assert packing.groups(examples, chars) == [examples[:3], examples[3:5], examples[5:]]
    # With the EOS it appends: 12, 8 and 4 tokens -> rows of 4: 3 + 2 + 1, nothing dropped.
    assert packing.rows(examples, chars, EOS) == 6 and packing.dropped_tokens(examples, chars, EOS) == 0
    shorter = [[1, 2]] * 6  # 9, 6 and 3 tokens: 2 + 1 + 0 rows, 1 + 2 + 3 tokens dropped
    assert packing.rows(shorter, chars, EOS) == 3 and packing.dropped_tokens(shorter, chars, EOS) == 6


def test_the_step_count_prediction_meets_trl_0_12_on_tiny(monkeypatch):
    """Measured (docs/tiny.md): trl 0.12.1 took 357 steps on tiny's 786 examples, 29,639 templated
    tokens, where wrapped packing of those alone gives 348."""
    from harness.recipe.metrics import expected_optimizer_steps

    assert expected_optimizer_steps(-(-29639 // 64), 4, 3) == 348
    assert expected_optimizer_steps((29639 + 786) // 64, 4, 3) == 357
