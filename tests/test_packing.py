"""harness.recipe.compat.Packing against the installed trl's own packing: rows, and the tokens kept and dropped.

The model (trl's sources at each tag) predicts the step count the packing check compares, and what
the collation property expects. Here it meets the real thing: the tiny trainer's own dataset
preparation on the bundled sentences, at sizes that cross trl's groups (a `map` batch of 1000
examples from trl 0.15 on; ConstantLengthDataset's buffer of 64 x 3.6 x 1024 characters before).
Run under another version set's environment it checks that release (docs/history.md).
"""

from collections import Counter

import pytest

from harness.recipe import compat, profiles, qlora_sft
from harness.recipe.data import load_rows, to_conversation
from harness.run import stages

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def trainer(shared_models_dir):
    options = profiles.ModelOptions(models_dir=shared_models_dir)
    profile = profiles.PROFILES["tiny"]
    return stages.prepare_live(profile, options, profile.recipe_config()).trainer


def _conversations(count: int) -> list[dict]:
    """`count` conversations of the bundled sentences, numbered so that no two are alike."""
    rows, _ = load_rows("bundled")
    examples = []
    for i in range(count):
        row = dict(rows[i % len(rows)])
        row["sentence"] = f"{row['sentence']} ({i})"
        examples.append(to_conversation(row))
    return examples


@pytest.mark.parametrize("count", [40, 1001, 3500])
def test_the_packing_model_predicts_the_installed_trls_rows_and_tokens(trainer, count):
    examples = _conversations(count)
    expected = qlora_sft.expected_packing(trainer, examples)
    rows = qlora_sft.prepare(trainer, examples)
    assert len(rows) == expected.rows, f"trl {compat.version('trl')} packed {count} conversations into {len(rows)} rows"
    kept = Counter(token for row in rows for token in row["input_ids"])
    assert not kept - expected.tokens, f"tokens no template or separator wrote: {(kept - expected.tokens).most_common(3)}"
    assert sum((expected.tokens - kept).values()) == expected.dropped
