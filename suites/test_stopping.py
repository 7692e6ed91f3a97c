"""Stopping: outputs end on EOS before max_new_tokens, are not empty, leak no next turn, and
have a plausible length. An empty output that 'stops' proves nothing, so it does not count."""

import pytest

pytestmark = pytest.mark.yoda_quality


def test_non_empty_outputs_stop_on_eos(record, require_threshold):
    tuned = record.metrics.tuned
    floor = require_threshold("min_stop_rate")
    assert tuned.non_empty_stop_rate >= floor, (
        f"only {tuned.non_empty_stop_rate:.0%} of tuned outputs are non-empty and end on EOS "
        f"(floor {floor:.0%}; {tuned.stop_rate:.0%} end on EOS, {tuned.empty_rate:.0%} are empty): "
        "the model did not learn to stop — EOS masked in the labels, or generate() not given eos_token_id"
    )


def test_no_role_marker_or_next_turn_leaks(record, run_artifacts, require_threshold):
    tokens = record.tokens
    end_of_turn = tokens.end_of_turn
    leaks = []
    for row in run_artifacts("generations_tuned.jsonl"):
        if row["stop_reason"] != "eos":
            continue
        body = row["raw"].removesuffix(tokens.eos)
        answer, _, after = body.partition(end_of_turn) if end_of_turn and end_of_turn != tokens.eos else (body, "", "")
        if any(marker in answer for marker in tokens.role_markers) or after.strip():
            leaks.append(row["raw"][:100])
    ceiling = require_threshold("max_leak_rate")
    rows = len(run_artifacts("generations_tuned.jsonl"))
    assert len(leaks) <= ceiling * rows, (
        f"{len(leaks)} of {rows} outputs leak a role marker or a next turn (ceiling {ceiling:.0%}), "
        f"e.g. {leaks[0]!r}: the end-of-turn marker is not followed by EOS — the template's EOS is not learned"
    )


def test_output_length_within_the_band(record, require_threshold):
    tuned = record.metrics.tuned
    reference = record.metrics.reference_mean_words
    band = require_threshold("length_band")
    low, high = reference * (1 - band), reference * (1 + band)
    assert low <= tuned.mean_words <= high, (
        f"tuned outputs average {tuned.mean_words:.1f} words; references {reference:.1f} "
        f"(band {low:.1f}-{high:.1f}): outputs run on or are cut short"
    )
