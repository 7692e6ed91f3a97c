"""Stop accounting: only a row whose first EOS is followed by nothing but padding stopped."""

from hypothesis import given
from hypothesis import strategies as st

from harness.recipe.generate import STOP_EOS, STOP_EOS_THEN_MORE, STOP_LENGTH, classify_row

EOS, PAD = 2, 0


def test_stopped_row():
    assert classify_row([5, 6, EOS, PAD, PAD], EOS, PAD, 5) == (STOP_EOS, 3)


def test_row_without_eos_ran_to_the_limit():
    assert classify_row([5, 6, 7, 8], EOS, PAD, 4) == (STOP_LENGTH, 4)


def test_eos_followed_by_more_tokens_did_not_stop():
    assert classify_row([5, EOS, 7, PAD], EOS, PAD, 4)[0] == STOP_EOS_THEN_MORE


def test_eos_as_first_token_is_an_empty_stop():
    assert classify_row([EOS, PAD, PAD], EOS, PAD, 3) == (STOP_EOS, 1)


words = st.lists(st.integers(min_value=3, max_value=50), max_size=10)


@given(words, st.integers(min_value=0, max_value=5))
def test_eos_then_padding_always_stops_at_the_eos(body, padding):
    reason, used = classify_row(body + [EOS] + [PAD] * padding, EOS, PAD, len(body) + 1 + padding)
    assert (reason, used) == (STOP_EOS, len(body) + 1)


@given(words, words.filter(bool))
def test_tokens_after_eos_mean_no_stop(before, after):
    assert classify_row(before + [EOS] + after, EOS, PAD, 99)[0] == STOP_EOS_THEN_MORE
