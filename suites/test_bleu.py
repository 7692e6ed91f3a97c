"""Translation quality: sacrebleu BLEU/chrF of the tuned model against the Yoda references."""

import pytest

pytestmark = pytest.mark.yoda_quality


def test_tuned_model_beats_the_base_model(record, require_threshold):
    scores, versus = record.metrics, record.columns.target_key
    tuned, base = scores.tuned.versus[versus].bleu, scores.base.versus[versus].bleu
    gain = require_threshold("min_bleu_gain")
    assert tuned - base >= gain, (
        f"BLEU {tuned:.2f} (tuned) vs {base:.2f} (base): gain {tuned - base:.2f} < the profile's minimum {gain}; "
        "the fine-tune taught little (template, labels or adapters broken?)"
    )


def test_scores_are_reproducible_and_per_sentence(record):
    scores = record.metrics.tuned
    signature = scores.versus[record.columns.target_key].signatures.bleu
    assert signature.startswith("nrefs:1|"), f"unexpected sacrebleu signature {signature!r}"
    assert len(scores.sentence_bleu) == record.metrics.eval_rows == record.data.eval_rows
