"""harness/recipe/deployed.py: the saved folder read back as serving code reads it, and every difference from
what the model trained with named in one line.

The tiny profile's tokenizer, prepared as the recipe prepares it (pad = unk), is saved the way
`trainer.save_model` saves it (`processing_class.save_pretrained`), with one change made for the save
only; the record of the folder must name that change and nothing else. (The same changes injected
into a real run's `save_model`: tests/test_regressions.py.)
"""

from __future__ import annotations

import copy

import pytest

from harness.recipe import deployed
from tests.saved_folder import saved_record, setting, tiny_checkpoint, trained_tokenizer


@pytest.fixture(scope="module")
def checkpoint(shared_models_dir):
    return tiny_checkpoint(shared_models_dir)


@pytest.fixture
def trained(checkpoint):
    return trained_tokenizer(checkpoint)


def test_the_folder_as_saved_differs_in_nothing(tmp_path, checkpoint, trained):
    saved = saved_record(tmp_path, checkpoint, trained)
    assert deployed.mismatches(saved) == []
    assert saved.tokenizer.saved.eos == "<|endoftext|>" and saved.tokenizer.saved.pad == "<unk>"
    assert saved.tokenizer.fields["eos"] == deployed.TokenField(file="tokenizer_config.json", field="eos_token")
    assert saved.template.file == "chat_template.jinja" and saved.template.same_source
    prompt = saved.template.saved["one user turn"].text
    assert prompt == "<|user|>\nThe Force is strong in you!<|end|>\n<|assistant|>\n"
    assert saved.generation_config.in_folder is False
    assert saved.generation_config.file.startswith("the base checkpoint's generation_config.json")
    assert saved.generation_config.eos_token_id == 32000
    assert "generation_config.json" not in saved.files and "tokenizer_config.json" in saved.files


def test_another_eos_is_named_with_file_field_values_and_writers(tmp_path, checkpoint, trained):
    saved = saved_record(tmp_path, checkpoint, trained, setting("eos_token", lambda t: "<|end|>"))
    rows = deployed.mismatches(saved)
    assert [row["check"] for row in rows] == ["eos"]
    message = deployed.describe(rows[0], saved)
    assert "\n" not in message
    assert message.startswith(
        "adapter/tokenizer_config.json eos_token: trained '<|endoftext|>' (id 32000), saved '<|end|>' (id 32007) "
        "(written by transformers 9.9.9, tokenizers 0.0.1, trl 1.2.3, peft 0.4.5): ")
    assert trained.eos_token == "<|endoftext|>"  # changed for the save only


def test_another_pad_is_named(tmp_path, checkpoint, trained):
    saved = saved_record(tmp_path, checkpoint, trained, setting("pad_token", lambda t: t.eos_token))
    rows = deployed.mismatches(saved)
    assert [row["check"] for row in rows] == ["pad"]
    assert deployed.describe(rows[0], saved).startswith(
        "adapter/tokenizer_config.json pad_token: trained '<unk>' (id 0), saved '<|endoftext|>' (id 32000)")


def test_a_template_that_renders_another_prompt_is_named(tmp_path, checkpoint, trained):
    saved = saved_record(tmp_path, checkpoint, trained, setting("chat_template", lambda t: "{{ bos_token }}" + t.chat_template))
    rows = deployed.mismatches(saved)
    assert [row["check"] for row in rows] == ["template", "template"]  # both prompts
    message = deployed.describe(rows[0], saved)
    assert "\n" not in message
    assert message.startswith("adapter/chat_template.jinja rendered prompt (one user turn, add_generation_prompt=True) "
                              "from character 1: trained '<|user|>\\n")
    assert "saved '<s><|user|>\\n" in message


def test_a_template_that_differs_only_without_the_generation_prompt_is_the_eos_checks_business(tmp_path, checkpoint, trained):
    # The template ends a finished conversation with eos_token: a saved EOS changes that rendering,
    # not the prompts a server renders; the EOS check names it, the template check does not.
    saved = saved_record(tmp_path, checkpoint, trained, setting("eos_token", lambda t: "<|end|>"))
    assert "template" not in {row["check"] for row in deployed.mismatches(saved)}


def test_a_template_that_ignores_the_generation_prompt_is_named(tmp_path, checkpoint, trained):
    def without_generation_prompt(tokenizer):
        return tokenizer.chat_template.replace("add_generation_prompt", "false")
    saved = saved_record(tmp_path, checkpoint, trained, setting("chat_template", without_generation_prompt))
    rows = [row for row in deployed.mismatches(saved) if row["check"] == "template"]
    assert rows and all("add_generation_prompt=True" in row["field"] for row in rows)


def test_a_saved_generation_config_that_does_not_stop_on_the_trained_eos_is_named(tmp_path, checkpoint, trained):
    from transformers import GenerationConfig

    config = GenerationConfig.from_pretrained(str(checkpoint.path))
    config.eos_token_id = 32007
    saved = saved_record(tmp_path, checkpoint, trained, generation_config=config)
    rows = deployed.mismatches(saved)
    assert [row["check"] for row in rows] == ["generation_config"]
    message = deployed.describe(rows[0], saved)
    assert message.startswith("adapter/generation_config.json eos_token_id: trained '<|endoftext|>' (id 32000), saved 32007 "
                              "(written by transformers ")
    assert saved.generation_config.in_folder is True


@pytest.mark.parametrize("eos", [32000, [32000, 32001, 32007]])
def test_a_generation_config_that_covers_the_trained_eos_passes(tmp_path, checkpoint, trained, eos):
    from transformers import GenerationConfig

    config = GenerationConfig.from_pretrained(str(checkpoint.path))
    config.eos_token_id = eos  # Phi-3-mini's hub generation config stops on all three
    assert deployed.mismatches(saved_record(tmp_path, checkpoint, trained, generation_config=config)) == []


def test_another_id_for_a_special_token_is_named(tmp_path, checkpoint, trained):
    saved = saved_record(tmp_path, checkpoint, trained)
    changed = copy.deepcopy(saved)
    changed.tokenizer.saved.ids["<|assistant|>"] = 32099
    rows = deployed.mismatches(changed)
    assert [row["check"] for row in rows] == ["ids"]
    assert deployed.describe(rows[0], changed).startswith(
        "adapter/tokenizer.json id of '<|assistant|>': trained 32001, saved 32099")


def test_the_generation_config_the_deployed_model_uses(checkpoint, tmp_path):
    """The folder's generation config replaces the base's on the deployed model; without one the base's stays."""
    import torch
    from transformers import GenerationConfig

    class Model(torch.nn.Module):
        generation_config = GenerationConfig(eos_token_id=32000)

    model = Model()
    deployed.use_generation_config(model, None)
    assert deployed.deployed_generation_config(model).eos_token_id == 32000
    deployed.use_generation_config(model, GenerationConfig(eos_token_id=[32000, 32007]))
    assert deployed.deployed_generation_config(model).eos_token_id == [32000, 32007]


def test_the_messages_of_a_run_read_back_from_run_json_are_the_same(tmp_path, checkpoint, trained):
    # run.json is written with sorted keys: the messages of a reused run must not change order.
    import json

    saved = saved_record(tmp_path, checkpoint, trained, setting("chat_template", lambda t: "{{ bos_token }}" + t.chat_template))
    from harness.recipe import record

    read_back = record.from_json(deployed.Saved, json.loads(json.dumps(record.to_json(saved), sort_keys=True)))
    assert list(read_back.written_by) != list(saved.written_by)  # the order did change on disk
    messages = [deployed.describe(row, saved) for row in deployed.mismatches(saved)]
    assert [deployed.describe(row, read_back) for row in deployed.mismatches(read_back)] == messages
    assert "(one user turn, add_generation_prompt=True)" in messages[0]
    assert "(written by transformers 9.9.9, tokenizers 0.0.1, trl 1.2.3, peft 0.4.5)" in messages[0]
