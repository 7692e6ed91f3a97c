"""Special tokens as the libraries read them, against the model family's known facts.

A library release that reads a tokenizer differently (transformers 5.17 reads SmolLM2's GGUF with
`eos = <|im_start|>`) must be told, even where the harness corrected the tokens so that the recipe
could run at all: the run records what was read, and what was corrected, and this check fails on it.
"""

import pytest


@pytest.mark.yoda_check(headline="special tokens misread", detail_after="differently from the family's facts: ")
@pytest.mark.yoda_structural
def test_the_library_read_the_model_family_special_tokens(record):
    tokens = record.tokens
    as_read, facts = tokens.as_read, tokens.facts
    read_by = ", ".join(f"{name} {version}" for name, version in sorted(as_read.read_by.items()) if version)
    wrong = [f"{role}_token {read!r} (expected {fact!r})"
             for role, read, fact in tokens.roles_as_read() if read != fact]
    wrong += [f"id of {text!r} {as_read.ids.get(text)} (expected {expected})"
              for text, expected in facts.ids.items() if as_read.ids.get(text) != expected]
    corrected = [correction.token for correction in tokens.corrections]
    assert not wrong, (
        f"{read_by} read the model's special tokens differently from the family's facts: {'; '.join(wrong)}"
        + (f". The harness corrected {', '.join(corrected)} to run the recipe; a user's own code on this "
           "release would train and generate with the misread tokens" if corrected else "")
    )
