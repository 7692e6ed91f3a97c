"""The Yoda data set: the shipped file, loader errors, hub fallback, split stability, formatting."""

import json
import logging
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness import files
from harness.recipe import data
from harness.recipe.config import RecipeConfig
from harness.recipe.data import DataError

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
    (dict(GOOD, sentence="the cat  sleeps on the warm MAT."), r"row 2: duplicate 'sentence' \(same as row 1\)"),
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
    with caplog.at_level(logging.WARNING, logger="harness.recipe.data"):
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
    with caplog.at_level(logging.WARNING, logger="harness.recipe.data"):
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
        data.format_rows([GOOD], "chatml", data.Columns())


def test_datasheet_matches_the_shipped_file(shipped):
    from harness.recipe.datasheet import render_datasheet

    datasheet = data.bundled_path().with_name("DATASHEET.md").read_text(encoding="utf-8")
    assert datasheet == render_datasheet(shipped), "regenerate it: python scripts/build_dataset.py"


# ------------------------------------------------------------------ columns named by the config
def renamed(rows, keep_plain=False):
    """Bundled rows under other column names (english -> yoda), the plain reference kept or not."""
    return [dict({"english": r["sentence"], "yoda": r["translation_extra"]},
                 **({"translation": r["translation"]} if keep_plain else {})) for r in rows]


def config_for(path, *pairs):
    """The tiny profile's config with `--override`-style pairs, parsed as the plugin and the CLI parse them."""
    from harness.recipe.profiles import PROFILES
    from harness.run.options import parse_overrides

    return PROFILES["tiny"].recipe_config().with_overrides(parse_overrides([f"data.source={path}", *pairs]))


OTHER_COLUMNS = ("data.source_column=english", "data.target_column=yoda")


def test_other_column_names_set_by_overrides_validate_split_and_train(tmp_path, shipped):
    from harness.recipe import qlora_sft

    path = write_jsonl(tmp_path / "mine.jsonl", renamed(shipped[:60]))
    config = config_for(path, *OTHER_COLUMNS)
    split = qlora_sft.load_data(config)
    assert split.columns == data.Columns("english", "yoda", None)  # no `translation` column: no second reference
    assert all(set(row) == {"english", "yoda"} for row in split.train + split.eval)
    # The split is decided by the source text, whatever its column is called.
    same = data.split_rows(shipped[:60], config.data.eval_fraction)
    assert [r["english"] for r in split.eval] == [r["sentence"] for r in same.eval] and split.eval
    assert split.summary()["eval_fingerprint"] == same.summary()["eval_fingerprint"]
    for fmt in data.FORMATS:
        examples = qlora_sft.to_training_dataset(split.train, config.with_overrides({"data.format": fmt}))
        assert [data.from_conversation(ex) for ex in examples] == [(r["english"], r["yoda"]) for r in split.train]
    # The recipe's own columns on that file: the error names the file, the row and what is missing.
    with pytest.raises(DataError) as error:
        qlora_sft.load_data(config_for(path))
    assert (f"{path}: row 1: missing column(s) ['sentence', 'translation_extra'] (the row has 'english', 'yoda'"
            in str(error.value))


@pytest.mark.parametrize("bad, message", [
    ({"english": "A b c d e."}, "row 2: column 'yoda' is missing or null"),
    ({"english": "A b c d e.", "yoda": "", "translation": "B c d e, a."}, "row 2: column 'yoda' is empty"),
    # Some rows with the second reference: every row needs it.
    ({"english": "A b c d e.", "yoda": "B c d e, a. Yes."}, "row 2: column 'translation' is missing or null"),
    ({"english": "the CAT sleeps on the warm mat.", "yoda": "x", "translation": "x"},
     r"row 2: duplicate 'english' \(same as row 1\)"),
])
def test_a_bad_row_under_configured_columns_names_the_file_row_and_column(tmp_path, bad, message):
    good = {"english": GOOD["sentence"], "yoda": GOOD["translation_extra"], "translation": GOOD["translation"]}
    path = write_jsonl(tmp_path / "bad.jsonl", [good, bad])
    with pytest.raises(DataError, match=message) as error:
        data.load_rows(str(path), data.Columns.of(config_for(path, *OTHER_COLUMNS).data))
    assert str(path) in str(error.value)


def test_the_second_reference_is_kept_when_the_data_has_it_and_never_doubles_the_target(tmp_path, shipped):
    from harness.recipe import qlora_sft

    path = write_jsonl(tmp_path / "mine.jsonl", renamed(shipped[:60], keep_plain=True))
    split = qlora_sft.load_data(config_for(path, *OTHER_COLUMNS))
    assert split.columns == data.Columns("english", "yoda", "translation")
    assert all(set(row) == {"english", "yoda", "translation"} for row in split.eval)
    # Trained on and scored against the plain Yoda: it is the target, not a second reference too.
    plain = qlora_sft.load_data(config_for(path, "data.source_column=english", "data.target_column=translation"))
    assert plain.columns == data.Columns("english", "translation", None)
    assert all(set(row) == {"english", "translation"} for row in plain.eval)


def test_the_recipe_columns_load_the_bundled_rows_as_before(shipped):
    # The cache key hashes the rows as loaded: the default columns must load them unchanged.
    split = data.load_split("bundled", 0.1, data.Columns.of(RecipeConfig().data))
    assert split.columns == data.DEFAULT_COLUMNS and split.train + split.eval
    assert split.content_digest() == data.split_rows(shipped, 0.1).content_digest()
    assert sorted(split.train[0]) == ["sentence", "translation", "translation_extra"]


def fake_generations(texts, stop="eos"):
    from harness.recipe.generate import Generation

    return [Generation(prompt="p", text=t, raw=t, stop_reason=stop, new_tokens=len(t.split()), token_ids=[])
            for t in texts]


def test_scores_are_against_the_configured_columns():
    from harness.recipe import metrics

    rows = [{"english": f"Sentence number {i} is here.", "yoda": f"Here, sentence number {i} is. Yes.",
             "translation": f"Here, sentence number {i} is."} for i in range(6)]
    perfect = fake_generations([r["yoda"] for r in rows])
    echo = fake_generations([r["english"] for r in rows], stop="max_new_tokens")
    scores = metrics.quality_scores(rows, echo, perfect, data.Columns("english", "yoda", None))
    assert set(scores["tuned"]) == {"vs_yoda", "stop_rate", "non_empty_stop_rate", "empty_rate", "mean_new_tokens",
                                    "mean_words", "sentence_bleu"}
    assert scores["tuned"]["vs_yoda"]["bleu"] == 100.0 and scores["base"]["vs_yoda"]["bleu"] < 50
    assert scores["tuned"]["sentence_bleu"] == [100.0] * 6
    assert (scores["tuned"]["stop_rate"], scores["base"]["stop_rate"]) == (1.0, 0.0)
    assert scores["reference_mean_words"] == 6.0
    both = metrics.quality_scores(rows, echo, perfect, data.Columns.named("english", "yoda"))
    assert both["tuned"]["vs_yoda"] == scores["tuned"]["vs_yoda"]
    assert 0 < both["tuned"]["vs_translation"]["bleu"] < 100.0  # the plain reference lacks the "Yes."
    assert data.Columns.named("english", "yoda").reference_record(rows[0]) == {
        "source": rows[0]["english"], "reference": rows[0]["yoda"], "reference_plain": rows[0]["translation"]}
    assert data.Columns("english", "yoda", None).reference_record(rows[0]) == {
        "source": rows[0]["english"], "reference": rows[0]["yoda"]}


def test_a_runs_scores_are_read_under_its_columns():
    """The readers (baselines, the CLI summary, the report) take the score keys from the run's config."""
    import copy
    from pathlib import Path

    from harness import cli
    from harness.checks import baselines
    from harness.checks.report.quality import quality_context
    from harness.recipe.record import load

    fixture = files.read_json(Path(__file__).parent / "fixtures" / "run_tiny" / "run.json")
    manifest = copy.deepcopy(fixture)
    manifest["config"]["data"].update(source_column="english", target_column="yoda")
    for which in ("base", "tuned"):
        scores = manifest["metrics"][which]
        scores["vs_yoda"] = scores.pop("vs_translation_extra")
        del scores["vs_translation"]  # the user's data had no second reference
    fixture, manifest = load(fixture), load(manifest)
    original, _ = baselines.measure(fixture)
    values, absent = baselines.measure(manifest)
    assert {k: values[k] for k in ("bleu", "chrf", "ter", "base_bleu", "bleu_signature")} == {
        k: original[k] for k in ("bleu", "chrf", "ter", "base_bleu", "bleu_signature")}
    assert "bleu_plain" in original and "bleu_plain" not in values
    assert "no second reference" in absent["bleu_plain"]
    assert cli.summary(manifest, Path("run")).splitlines()[5] == cli.summary(fixture, Path("run")).splitlines()[5]
    quality = quality_context(manifest.metrics, manifest.columns)
    labels = [row["label"] for row in quality["rows"] if row["reference"]]
    assert labels == ["BLEU vs yoda", "chrF vs yoda", "TER vs yoda"] and quality["target"] == "yoda"
    assert [row["tuned"] for row in quality["rows"] if row["reference"]] == [
        original[k] for k in ("bleu", "chrf", "ter")]
    assert {s["where"] for s in quality["signatures"]} == {"every score"}
    default = quality_context(fixture.metrics, fixture.columns)
    assert [row["reference"] for row in default["rows"] if row["reference"]] == ["vs_translation_extra"] * 3 + [
        "vs_translation"] * 3
