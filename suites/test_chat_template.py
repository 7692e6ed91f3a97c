"""Chat template: the training text is templated, the prompt ends with the assistant marker,
the rendering matches the baseline, and any text survives template -> tokenize -> decode."""

import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st


def _marker_sequence(text: str, markers: list[str]) -> list[str]:
    pattern = "|".join(re.escape(m) for m in markers)
    return re.findall(pattern, text)


@pytest.mark.yoda_check(headline="training text has no role markers", settings=("data.format",))
@pytest.mark.yoda_structural
def test_training_text_carries_the_role_markers_in_order(record, run_artifacts):
    user, assistant = record.tokens.role_markers
    decoded = run_artifacts("collated_batch.json")["decoded"]
    for row, text in enumerate(decoded):
        sequence = _marker_sequence(text, [user, assistant])
        assert sequence, (
            f"row {row} of the training batch has no {user!r}/{assistant!r} markers: the chat template was not "
            f"applied to the training data (the instruction-data regression). Text: {text[:120]!r}"
        )
        for earlier, later in zip(sequence, sequence[1:]):
            assert earlier != later, (
                f"row {row}: two {earlier!r} markers in a row: the template's user/assistant order is broken"
            )


@pytest.mark.yoda_structural
def test_generation_prompt_ends_with_the_assistant_marker(record, run_artifacts):
    assistant = record.tokens.role_markers[1]
    prompt = run_artifacts("template.json")["generation_prompt"]
    assert prompt.rstrip("\n").endswith(assistant), (
        f"the generation prompt ends with {prompt[-30:]!r}, not {assistant!r}: add_generation_prompt is ignored"
    )


message_text = st.text(
    alphabet=st.characters(whitelist_categories=("L", "N", "P", "S", "Zs"), blacklist_characters="<>|{}%"),
    min_size=1, max_size=80,
).map(lambda s: " ".join(s.split())).filter(bool)


@pytest.mark.yoda_structural
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(user=message_text, assistant=message_text)
def test_any_text_survives_template_tokenize_decode(live, user, assistant):
    tokenizer = live.tokenizer
    messages = [{"role": "user", "content": user}, {"role": "assistant", "content": assistant}]
    rendered = tokenizer.apply_chat_template(messages, tokenize=False)
    ids = tokenizer(rendered, add_special_tokens=False)["input_ids"]
    assert tokenizer.decode(ids, skip_special_tokens=False) == rendered
