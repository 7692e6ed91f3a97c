"""A crash of the recipe is one verdict: its line names the phase, the root cause from the exception
chain and the libraries (end to end, with the matrix: tests/test_regressions.py)."""

from harness.checks import crash


def test_root_cause_is_the_innermost_exception_of_the_chain():
    try:
        try:
            {}["text"]
        except KeyError as error:
            raise ValueError("Error occurred while packing the dataset") from error
    except ValueError as outer:
        error = outer
    error.harness_phase = "trainer"
    recorded = crash.RecipeCrash.of(error, "prepared")
    assert recorded.phase == "trainer" and recorded.root == "KeyError: 'text'"
    assert recorded.line.startswith("the recipe failed in phase trainer: KeyError: 'text' (raised as ValueError: "
                                    "Error occurred while packing the dataset) with ")
    assert "trl " in recorded.line and "transformers " in recorded.line
