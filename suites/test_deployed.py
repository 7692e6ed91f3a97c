"""What users deploy: the folder `trainer.save_model` wrote, read back as serving code reads it.

Its tokenizer's special tokens and ids are the ones the model trained with, its chat template
renders the prompts the training one renders (generation prompt included), and the generation
config the deployed model carries (the folder's, else the base checkpoint's) stops on the trained
EOS. The deployed generations (`generations_tuned.jsonl`, which the quality suites score) use that
tokenizer and generation config (harness/recipe/deployed.py). Each failure is one line: file, field,
trained vs saved value, and the library versions that wrote it. Saving happens in the trained
stage, so these checks read the trained run.
"""

import pytest

from harness.recipe import deployed


def _failures(saved: deployed.Saved, *checks: str) -> list[str]:
    return [deployed.describe(row, saved) for row in deployed.mismatches(saved) if row["check"] in checks]


def _one_line(failures: list[str]) -> str:
    return failures[0] + (f" (and {len(failures) - 1} more)" if len(failures) > 1 else "")


@pytest.mark.parametrize("role", deployed.ROLES)
def test_saved_tokenizer_has_the_trained_special_token(record, role):
    failures = _failures(record.saved, role)
    assert not failures, _one_line(failures)


def test_saved_tokenizer_encodes_special_tokens_as_trained(record):
    failures = _failures(record.saved, "ids")
    assert not failures, _one_line(failures)


def test_saved_chat_template_renders_the_trained_prompt(record):
    failures = _failures(record.saved, "template")
    assert not failures, _one_line(failures)


def test_deployed_generation_config_stops_on_the_trained_eos(record):
    failures = _failures(record.saved, "generation_config")
    assert not failures, _one_line(failures)

