"""Our own checks, written against the harness's fixtures (docs/fixtures.md), beside its suites."""

import json
from pathlib import Path

import pytest

OUR_DATA = Path(__file__).with_name("sentences.jsonl")
# Words of our domain that must reach the model as text the tokenizer can give back.
OUR_TERMS = ["airlock", "thrusters", "reentry", "coolant", "asteroid"]


@pytest.mark.yoda_structural
def test_the_run_trained_on_our_sentences(record):
    """Not the bundled Yoda set (a data path that silently fell back would pass every other check)."""
    ours = [json.loads(line) for line in OUR_DATA.read_text().splitlines() if line.strip()]
    assert record.data.source == str(OUR_DATA.resolve())
    assert record.data.train_rows + record.data.eval_rows == len(ours)


@pytest.mark.yoda_structural
def test_our_rank_is_what_trains(record):
    """Rank 4 on the tiny model's four target modules: every adapter matrix has 4 rows or columns."""
    assert record.recipe_config.lora.r == 4
    assert 0 < record.structure.trainable_parameters < record.structure.total_parameters / 100


@pytest.mark.yoda_structural
@pytest.mark.parametrize("term", OUR_TERMS)
def test_our_terms_survive_the_tokenizer(live, term):
    sentence = f"Check the {term} before the shift."
    ids = live.tokenizer(sentence, add_special_tokens=False)["input_ids"]
    assert live.tokenizer.decode(ids) == sentence
