"""The Yoda data set: the shipped file, loader errors, hub fallback, split stability, formatting."""

import json
import logging
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness import data
from harness.data import DataError

INTERJECTIONS = {"Yes, hrrrm.", "Hmmm.", "Herh herh herh.", "Yes.", "Hrrmmm.", "Mmm, yes.", "Hmm, yes.",
                 "Yesss.", "Hrmm, wise this is.", "Oh, yes."}


@pytest.fixture(scope="module")
def shipped():
    rows, origin = data.load_rows("bundled")
    return rows


def test_shipped_file_has_enough_valid_unique_rows(shipped):
    assert len(shipped) >= 800
    assert len({data.normalise(r["sentence"]) for r in shipped}) == len(shipped)


def test_shipped_rows_follow_the_schema(shipped):
    for row in shipped:
        assert 5 <= len(row["sentence"].split()) <= 16, row
        head, _, interjection = row["translation_extra"].partition(row["translation"] + " ")
        assert head == "" and interjection in INTERJECTIONS, row
    counts = Counter(r["translation_extra"][len(r["translation"]) + 1:] for r in shipped)
    assert max(counts.values()) / len(shipped) <= 0.30, counts


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


GOOD = {"sentence": "The cat sleeps on the warm mat.", "translation": "On the warm mat, the cat sleeps.",
        "translation_extra": "On the warm mat, the cat sleeps. Hmmm."}


def test_local_jsonl_and_csv_load(tmp_path):
    rows, origin = data.load_rows(str(write_jsonl(tmp_path / "ok.jsonl", [GOOD])))
    assert rows == [GOOD] and origin.endswith("ok.jsonl")
    csv = tmp_path / "ok.csv"
    csv.write_text('sentence,translation,translation_extra\n"{0}","{1}","{2}"\n'.format(*GOOD.values()))
    assert data.load_rows(str(csv))[0] == [GOOD]


@pytest.mark.parametrize("bad, message", [
    ({"sentence": "A b c d e.", "translation": "B c d e, a."}, "row 2: column 'translation_extra' is missing or null"),
    (dict(GOOD, sentence="Another fine sentence here.", translation=""), "row 2: column 'translation' is empty"),
    (dict(GOOD, sentence="Another fine sentence here.", translation_extra=7), "row 2: column 'translation_extra' is int"),
    (dict(GOOD, sentence="the cat  sleeps on the warm MAT."), r"row 2: duplicate sentence \(same as row 1\)"),
])
def test_bad_rows_name_the_file_and_row(tmp_path, bad, message):
    path = write_jsonl(tmp_path / "bad.jsonl", [GOOD, bad])
    with pytest.raises(DataError, match=message) as error:
        data.load_rows(str(path))
    assert str(path) in str(error.value)


def test_unparsable_file_is_named(tmp_path):
    path = tmp_path / "broken.jsonl"
    path.write_text(json.dumps(GOOD) + "\n{not json\n")
    with pytest.raises(DataError, match="broken.jsonl"):
        data.load_rows(str(path))


def test_missing_file_and_unknown_type(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        data.load_rows(str(tmp_path / "absent.jsonl"))
    other = tmp_path / "rows.txt"
    other.write_text("x")
    with pytest.raises(DataError, match="unsupported file type"):
        data.load_rows(str(other))


@pytest.fixture
def empty_hub_cache(monkeypatch, tmp_path):
    """A hub cache with nothing in it, so only the network could supply the hub copy."""
    from datasets import config as datasets_config

    monkeypatch.setattr(datasets_config, "HF_DATASETS_CACHE", tmp_path / "datasets")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    return tmp_path


def test_offline_hub_falls_back_with_one_clear_line(monkeypatch, caplog, empty_hub_cache):
    from datasets import config as datasets_config

    monkeypatch.setattr(datasets_config, "HF_HUB_OFFLINE", True)
    with caplog.at_level(logging.WARNING, logger="harness.data"):
        rows, origin = data.load_rows("hub")
    assert origin.startswith("bundled:") and len(rows) >= 800
    (record,) = caplog.records
    assert "offline mode" in record.getMessage() and "bundled" in record.getMessage()


def test_unreachable_hub_falls_back_without_retrying_or_a_traceback(monkeypatch, caplog, empty_hub_cache):
    from datasets import config as datasets_config
    from huggingface_hub import constants

    monkeypatch.setattr(datasets_config, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "ENDPOINT", "http://127.0.0.1:9")  # nothing listens on the discard port
    offline_reads = []
    real_offline = data._offline
    monkeypatch.setattr(data, "_offline", lambda enabled: offline_reads.append(enabled) or real_offline(enabled))
    with caplog.at_level(logging.WARNING, logger="harness.data"):
        rows, origin = data.load_rows("hub")
    assert origin.startswith("bundled:") and len(rows) >= 800
    (record,) = caplog.records
    assert "unreachable" in record.getMessage() and record.exc_info is None
    # After one failed probe only the local cache is read: no hub-client retries with back-off
    # (they took 24 s here before the probe existed).
    assert offline_reads == [True]


def test_split_sizes_are_about_ninety_ten(shipped):
    split = data.split_rows(shipped, 0.1)
    assert len(split.train) + len(split.eval) == len(shipped)
    assert 0.06 <= len(split.eval) / len(shipped) <= 0.14
    summary = split.summary()
    assert summary["eval_rows"] == len(split.eval) and len(summary["eval_fingerprint"]) == 16


@settings(max_examples=25, deadline=None)
@given(st.randoms(use_true_random=False))
def test_split_ignores_row_order(shipped, random):
    shuffled = list(shipped)
    random.shuffle(shuffled)
    original, reordered = data.split_rows(shipped, 0.1), data.split_rows(shuffled, 0.1)
    assert reordered.train == original.train and reordered.eval == original.eval


@given(st.text(min_size=1, max_size=80), st.sampled_from([" ", "  ", "\t", "\n"]))
def test_a_sentence_lands_on_the_same_side_whatever_its_spacing(sentence, space):
    spaced = space + space.join(sentence.split()) + space
    assert data.is_eval_row(sentence, 0.1) == data.is_eval_row(spaced, 0.1)


texts = st.text(min_size=1, max_size=60).filter(str.strip)


@given(texts, texts)
def test_formatting_round_trips(sentence, yoda):
    row = {"sentence": sentence, "translation": yoda, "translation_extra": yoda}
    conversation = data.to_conversation(row)
    assert [m["role"] for m in conversation["messages"]] == ["user", "assistant"]
    assert data.from_conversation(conversation) == (sentence, yoda)
    assert data.from_conversation(data.to_prompt_completion(row)) == (sentence, yoda)


def test_unknown_format_is_named():
    with pytest.raises(ValueError, match="unknown data format 'chatml'"):
        data.format_rows([GOOD], "chatml", "sentence", "translation_extra")


def test_datasheet_matches_the_shipped_file(shipped):
    from harness.datasheet import render_datasheet

    datasheet = data.bundled_path().with_name("DATASHEET.md").read_text(encoding="utf-8")
    assert datasheet == render_datasheet(shipped), "regenerate it: python scripts/build_dataset.py"
